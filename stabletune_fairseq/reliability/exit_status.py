"""The exit statuses of every command and recipe, and the error type behind status 2.

A requeue script reads them: 0 done; 1 failed (a bug, a crash, a full disk: look at the log); 2 bad input
or arguments (fix the command; re-running it unchanged fails the same way); 75 preempted (a SIGTERM or
SIGUSR1 arrived, checkpoint_last.pt holds the last update: re-run the same command to resume). 75 is
``EX_TEMPFAIL`` of sysexits.h, "try again later". Needs nothing but the standard library: the shell
recipes' helpers import it by path.
"""

DONE = 0
FAILED = 1
BAD_INPUT = 2
PREEMPTED = 75


class BadInput(Exception):
    """Input that is not what it should be (a file of another kind, another task's checkpoint, a save dir
    in use). Its message is one line naming the file and what it is instead; commands exit with 2."""
