"""Print what run_xtreme.sh needs to know before it builds a command, in one process (each Python start
with torch costs seconds): the ``stabletune_xlmr`` architecture matching a pretrained ``model.pt``, and the
number of GPUs torch sees.

    python -m stabletune_fairseq.cli.inspect_model <model.pt>     ->  <architecture> <number of GPUs>
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m stabletune_fairseq.cli.inspect_model <model.pt>", file=sys.stderr)
        return 2
    import torch

    import stabletune_fairseq  # noqa: F401  (allows fairseq checkpoint types)
    from ..checkpoint_safety import UnsafeCheckpoint
    from ..models.pretrained import architecture_of

    try:
        architecture = architecture_of(argv[0])
    except (UnsafeCheckpoint, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(architecture, torch.cuda.device_count())
    return 0


if __name__ == "__main__":
    sys.exit(main())
