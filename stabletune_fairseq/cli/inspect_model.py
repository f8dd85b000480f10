"""Print the ``stabletune_xlmr`` architecture that matches a pretrained ``model.pt`` (used by run_xtreme.sh)."""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m stabletune_fairseq.cli.inspect_model <model.pt>", file=sys.stderr)
        return 2
    import stabletune_fairseq  # noqa: F401  (allows fairseq checkpoint types)
    from ..checkpoint_safety import UnsafeCheckpoint
    from ..models.pretrained import architecture_of

    try:
        print(architecture_of(argv[0]))
    except (UnsafeCheckpoint, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
