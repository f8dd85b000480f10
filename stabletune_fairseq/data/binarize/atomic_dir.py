"""Build an output folder beside its final place and move it there only once it is complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def check_replaceable(final: str | Path, marker: str) -> None:
    """Refuse an output folder that ``atomic_output_dir`` would replace but that holds something else than an
    earlier output (recognised by its ``marker`` file): a user naming an existing folder of their own."""
    final = Path(final)
    if final.exists() and (not final.is_dir() or (any(final.iterdir()) and not (final / marker).is_file())):
        from ...reliability.exit_status import BadInput

        raise BadInput(
            f"{final}: exists and is not an earlier output of this command (no {marker}); name a new or empty folder"
        )


@contextlib.contextmanager
def atomic_output_dir(final: str | Path):
    """Yield a temporary folder; on success it replaces ``final``, on error it is removed and
    ``final`` (a previous complete output, if any) is left untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide the output from the other users of a shared machine
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
