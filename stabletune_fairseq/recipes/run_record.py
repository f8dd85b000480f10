"""run_seeds.sh's status files, and the record of settings it compares to decide that a run was made "with the same
settings": the recipe's arguments parsed (task, model, data, save dir, KEY=VALUE settings, fairseq arguments), not
the printed command, so that quoting it another way is not read as other settings.

Standard library only: run_seeds.sh runs this file by path (no fairseq import per run)::

    python run_record.py status <status.json>                  # prints the run's status (exit 1: no file)
    python run_record.py same <status.json> -- <train command>  # exit 0: same settings, 1: other settings
    python run_record.py write <status.json> <status> <exit> <wall_s> <command line> -- <train command>
"""

from __future__ import annotations

import json
import os
import shlex
import sys

NOT_SETTINGS = {"DRY_RUN", "PROGRESS"}  # how a run is shown, not what it trains


def settings_record(command: list[str]) -> dict | None:
    """``bash <recipe>.sh TASK <model> <data> <save_dir> [KEY=VALUE ...] [-- fairseq args]`` -> its settings: the
    task as the recipe reads it (STS-B = STSB), the later of two KEY= wins, fairseq's arguments in their order.
    None when ``command`` is not a recipe's."""
    scripts = [i for i, word in enumerate(command) if word.endswith(".sh")]
    if not scripts or len(command) < scripts[0] + 5:
        return None
    start = scripts[0]
    task, model, data, save_dir = command[start + 1 : start + 5]
    settings, fairseq_args = {}, []
    rest = command[start + 5 :]
    for i, word in enumerate(rest):
        if word == "--":
            fairseq_args = rest[i + 1 :]
            break
        key, _, value = word.partition("=")
        settings[key] = value
    return {
        "recipe": os.path.basename(command[start]),
        "task": task.upper().replace("-", ""),
        "model": os.path.normpath(model),
        "data": os.path.normpath(data),
        "save_dir": os.path.normpath(save_dir),
        "settings": {k: settings[k] for k in sorted(settings) if k not in NOT_SETTINGS},
        "fairseq_args": fairseq_args,
    }


def recorded_settings(status: dict) -> dict | None:
    """A status file's record; files written before records were kept have only the command line (bash's
    ``printf %q``), which is parsed."""
    if "settings" in status:
        return status["settings"]
    try:
        return settings_record(shlex.split(status.get("command", "")))
    except ValueError:  # a quoting shlex does not read ($'...'): not comparable
        return None


def read_status(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_status(path: str, status: str, exit_code: int, wall_s: int, command_line: str, command: list[str]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    record = {
        "status": status,
        "exit": exit_code,
        "wall_s": wall_s,
        "command": command_line,
        "settings": settings_record(command),
    }
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        json.dump(record, out, indent=1)
    os.replace(path + ".tmp", path)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "status":
        status = read_status(argv[1])
        if status is None:
            return 1
        print(status["status"])
        return 0
    if len(argv) >= 3 and argv[0] == "same" and argv[2] == "--":
        status = read_status(argv[1])
        return 0 if status is not None and recorded_settings(status) == settings_record(argv[3:]) else 1
    if len(argv) >= 7 and argv[0] == "write" and argv[6] == "--":
        write_status(argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5], argv[7:])
        return 0
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
