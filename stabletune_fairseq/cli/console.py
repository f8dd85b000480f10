"""Console output a person reads: the whole log in a file, on the console only our own lines and warnings."""

from __future__ import annotations

import logging
import os

OURS = ("stabletune_fairseq.evaluate", "stabletune_fairseq.report")


def quiet_logging(log_file: str) -> None:
    """INFO and above of every library to ``log_file`` (appended); the console gets our own INFO lines
    (progress, per language) and anyone's warnings and errors, but not library warnings
    (``warnings.warn``, e.g. torch's pin_memory note on CPU), which go to the file only."""
    os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s | %(message)s"))
    to_console = logging.StreamHandler()
    to_console.setFormatter(logging.Formatter("%(message)s"))
    to_console.addFilter(
        lambda record: (
            record.name.startswith(OURS) or (record.levelno >= logging.WARNING and record.name != "py.warnings")
        )
    )
    logging.basicConfig(level=logging.INFO, handlers=[to_file, to_console], force=True)
    logging.captureWarnings(True)


def log_to_stderr() -> None:
    """INFO and above to the stderr of now, replacing any handler set before: a command run in-process after
    another (tests, notebooks) must not log to a stream the earlier one closed ("--- Logging error ---")."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)


def add_precision_option(parser) -> None:
    """``--precision fp32|bf16`` of the commands that run a model (``models/precision.py``)."""
    from ..models.precision import PRECISIONS

    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="bf16: the model's matrix products in bfloat16 under torch's CPU autocast (CPUs with bf16 "
        "instructions; docs/precision.md); fp32 otherwise (default)",
    )


def bad_input_as_one_line(program: str, action, *args, also=()):
    """``(action(*args), 0)``; input that is not what it should be (``BadInput``, and the exception types in
    ``also``) is instead ``<program>: <message>`` on stderr and ``(None, 2)``, the exit status for bad input."""
    import sys

    from ..reliability.exit_status import BAD_INPUT, BadInput

    try:
        return action(*args), 0
    except (BadInput, *also) as error:
        print(f"{program}: {error}", file=sys.stderr)
        return None, BAD_INPUT
