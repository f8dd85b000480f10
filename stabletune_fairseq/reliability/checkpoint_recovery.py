"""Resume from a sound checkpoint after a crash, never silently from scratch.

fairseq writes a checkpoint atomically (``.tmp`` then rename) but then *copies* it to
``checkpoint_last.pt`` and ``checkpoint_best.pt`` with a plain, non-atomic file copy: a crash during
that copy leaves a truncated ``checkpoint_last.pt``, and fairseq then fails on load. A crash before the
first copy leaves interval checkpoints but no ``checkpoint_last.pt``, and fairseq would silently start
over from the pretrained weights. Before training starts we therefore check ``checkpoint_last.pt`` (the
CRC of every member of torch's zip format), and when it is missing or damaged while other checkpoints
exist, put the newest sound one in its place, saying so; the damaged file is kept aside, never deleted.
(``models/pretrained.py`` then opens ``checkpoint_last.pt`` weights-only and checks what it was trained on.)
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import zipfile

logger = logging.getLogger(__name__)

LAST = "checkpoint_last.pt"
_RESUMABLE = re.compile(r"^checkpoint(\d+|_\d+_\d+)\.pt$")  # epoch and interval checkpoints


class CheckpointDamaged(RuntimeError):
    pass


def checkpoint_problem(path: str) -> str | None:
    """Why ``path`` cannot be a sound torch checkpoint, or None when every stored byte checks out."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"not a complete torch checkpoint ({err})"
    if bad is not None:
        return f"member {bad} fails its CRC check"
    return None


def resumable_checkpoints(save_dir: str) -> list[str]:
    """Epoch and interval checkpoints of ``save_dir``, newest first."""
    paths = [os.path.join(save_dir, f) for f in os.listdir(save_dir) if _RESUMABLE.match(f)]
    return sorted(paths, key=os.path.getmtime, reverse=True)


def recover_last_checkpoint(save_dir: str, is_master: bool = True) -> str | None:
    """Make ``save_dir/checkpoint_last.pt`` sound when the run has checkpoints at all; return what was
    restored (None when nothing had to be done). Only the master process moves files."""
    if not save_dir or not os.path.isdir(save_dir):
        return None
    last = os.path.join(save_dir, LAST)
    if os.path.exists(last):
        problem = checkpoint_problem(last)
        if problem is None:
            return None
        reason = f"{last} is damaged: {problem}"
    else:
        reason = f"{save_dir} has checkpoints but no {LAST}"
    candidates = resumable_checkpoints(save_dir)
    if not os.path.exists(last) and not candidates:
        return None  # a fresh run
    for candidate in candidates:
        problem = checkpoint_problem(candidate)
        if problem is None:
            break
        logger.warning("%s is damaged too (%s)", candidate, problem)
    else:
        raise CheckpointDamaged(
            f"{reason}, and no sound checkpoint to resume from in {save_dir} "
            f"(looked at {len(candidates)}). Move the damaged file away to start over."
        )
    logger.warning("%s: resuming from %s instead", reason, candidate)
    if is_master:
        if os.path.exists(last):
            os.replace(last, f"{last}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copyfile(candidate, last + ".tmp")
        os.replace(last + ".tmp", last)
    return candidate
