"""One run per save dir: ``<save_dir>/train.lock``, held by the training process for as long as it lives.

Two runs writing the same checkpoints would corrupt each other silently. The lock is an ``flock`` on the
file, which the kernel releases when its holder dies, however it dies: a file left by a killed run is
therefore recognised as stale (it exists, nobody holds it) and taken over with a warning. The file says
who holds it (process id, host, start time, command), for the message a second run prints.
Standard library only: ``run_mlm.sh`` runs this file by path (the other recipes call ``check_free``) to refuse a
busy save dir before it touches the dir (``python save_dir_lock.py <save_dir>``: exit 2 and the holder when it is
in use).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time

if __package__:
    from .exit_status import BAD_INPUT, BadInput
else:
    from exit_status import BAD_INPUT, BadInput

logger = logging.getLogger(__name__)

LOCK_FILE = "train.lock"


class SaveDirInUse(BadInput, RuntimeError):
    pass


def _holder(handle) -> dict:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except ValueError:
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return (
        f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('started')}: "
        f"{holder.get('command', '')[:200]})"
    )


def _in_use(save_dir: str, handle) -> SaveDirInUse:
    return SaveDirInUse(
        f"save dir {save_dir} is in use by {_describe(_holder(handle))}: one run per save dir (wait "
        "for it to end, or choose another save dir)"
    )


class SaveDirLock:
    """Held from ``acquire`` until ``release`` or the end of the process."""

    def __init__(self, save_dir: str):
        self.path = os.path.join(save_dir, LOCK_FILE)
        self.handle = None

    def _open_locked(self):
        """The lock file, opened and flock-ed; ``SaveDirInUse`` when a live process holds it."""
        while True:
            handle = open(self.path, "a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy = _in_use(os.path.dirname(self.path), handle)
                handle.close()
                raise busy from None
            try:  # the holder may have removed the file between our open and our flock: lock the file in place
                if os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino:
                    return handle
            except FileNotFoundError:
                pass
            handle.close()

    def acquire(self) -> "SaveDirLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = self._open_locked()
        stale = _holder(self.handle)
        if stale:
            logger.warning("%s was left by %s, which is no longer running: taking it over", self.path, _describe(stale))
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "command": " ".join(sys.argv),
                }
            )
        )
        self.handle.flush()
        return self

    def release(self) -> None:
        if self.handle is not None:
            os.unlink(self.path)  # while still holding it: nobody can take over a file that is going away
            self.handle.close()
            self.handle = None


def check_free(save_dir: str) -> None:
    """``SaveDirInUse`` when a live process holds the save dir's lock (does not take it)."""
    path = os.path.join(save_dir, LOCK_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(save_dir, handle) from None


if __name__ == "__main__":
    try:
        check_free(sys.argv[1])
    except SaveDirInUse as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(BAD_INPUT)
