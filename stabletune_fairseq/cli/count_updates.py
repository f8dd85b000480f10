"""Count the updates a ``fairseq-train`` command will make, from the dataset it actually trains on
(``recipes/updates.py``).

    python -m stabletune_fairseq.cli.count_updates <fairseq-train arguments ...>

Prints one line: ``rows=<training items of epoch 1> per_epoch=<updates of each epoch: one number when all are
equal, else 1,2,...> total=<their sum, capped by --max-update>``.
"""

from __future__ import annotations

import sys

from ..recipes.updates import count_updates, shown_per_epoch


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    import logging

    logging.disable(logging.WARNING)  # only the one line below; the training run logs the rest
    try:
        rows, per_epoch, total = count_updates(argv)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"rows={rows} per_epoch={shown_per_epoch(per_epoch)} total={total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
