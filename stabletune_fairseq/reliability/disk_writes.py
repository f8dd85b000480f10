"""Writes that never leave a cut-short checkpoint behind, and a full disk said as such.

fairseq writes a new checkpoint to ``<name>.tmp`` and renames it, but then copies it to the other names
(``checkpoint_last.pt``, ``checkpoint_best.pt``) with a plain copy, which truncates the target first: a
crash or a full disk during that copy destroys the previous ``checkpoint_last.pt``. ``atomic_copy``
copies to ``<target>.tmp`` and renames, so the target is always either the old file or the new one.

On a full disk (ENOSPC, or EDQUOT: a quota) torch reports a ``RuntimeError`` from its zip writer, three
times (fairseq retries), and fairseq leaves the partial ``.tmp`` file. ``DiskFull`` says what happened,
where, and that the previous checkpoints are intact; the partial files are removed.

``guarded_copy`` is what fairseq-train's ``PathManager.copy`` becomes under the plugin (``train_guard``): the
atomic copy for plain local paths, fairseq's own file layer (iopath's handlers) for anything with a scheme
(``s3://``, ``manifold://``, ...), which a local rename cannot serve.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import re
import shutil

logger = logging.getLogger(__name__)

FULL = (errno.ENOSPC, errno.EDQUOT)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # what iopath dispatches to a handler other than its native one


class DiskFull(RuntimeError):
    pass


def atomic_copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
    """Copy through ``<dst_path>.tmp`` and a rename. Like fairseq's ``PathManager.copy`` (iopath), an existing
    ``dst_path`` is left alone unless ``overwrite``: an error is logged and False returned. Failures to write
    raise (a full disk must be seen, not logged)."""
    src_path, dst_path = os.fspath(src_path), os.fspath(dst_path)
    if not overwrite and os.path.exists(dst_path):
        logger.error("not copying %s to %s: the destination exists (overwrite=False)", src_path, dst_path)
        return False
    tmp = dst_path + ".tmp"
    try:
        shutil.copyfile(src_path, tmp)
        os.replace(tmp, dst_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def is_local_path(path) -> bool:
    return not SCHEME.match(os.fspath(path))


def guarded_copy(file_layer_copy):
    """A ``PathManager.copy``: ``atomic_copy`` when both paths are plain local paths, else ``file_layer_copy``
    (fairseq's original) unchanged."""

    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if is_local_path(src_path) and is_local_path(dst_path):
            return atomic_copy(src_path, dst_path, overwrite)
        return file_layer_copy(src_path, dst_path, overwrite=overwrite)

    copy.stabletune = True
    copy.original = file_layer_copy
    return copy


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` or one of the errors it came from is ENOSPC/EDQUOT."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in FULL:
            return True
        error = error.__cause__ or error.__context__
    return False


def megabytes(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def disk_full_error(save_dir: str, update: int) -> DiskFull:
    """Remove the partial files of a failed save; the error to report."""
    for partial in glob.glob(os.path.join(save_dir, "*.pt.tmp")):
        os.unlink(partial)
    free = shutil.disk_usage(save_dir).free
    last = os.path.join(save_dir, "checkpoint_last.pt")
    size = f"; a checkpoint here is {megabytes(os.path.getsize(last))}" if os.path.exists(last) else ""
    kept = f"{last} is intact" if os.path.exists(last) else "no checkpoint was written"
    return DiskFull(
        f"no space left on the device of {save_dir} while saving the checkpoint of update {update} "
        f"({megabytes(free)} free{size}): {kept}; free some space and re-run the same command to resume"
    )
