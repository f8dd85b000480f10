"""Evaluate the checkpoint of every selection rule of a training run (``report/selection.py``):

    python -m stabletune_fairseq.cli.evaluate_rules <run_dir> [--data <task folder>] [--splits valid,test]

writes ``<run_dir>/eval/<rule>-<split>/`` (``stabletune-evaluate``'s results.json, results.md and predictions/)
for every rule and split, skipping what is already evaluated; ``run_seeds.sh`` runs it after each training run.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..report.selection import evaluate_rules
from .console import quiet_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a training run's save dir (holds checkpoint_last.pt)")
    parser.add_argument("--data", default=None, help="the task folder (default: the one the checkpoint was trained on)")
    parser.add_argument(
        "--splits", default=None, help="comma-separated, e.g. valid,test (default: those the folder has)"
    )
    args = parser.parse_args(argv)
    quiet_logging(os.path.join(args.run_dir, "eval", "evaluate.log"))
    try:
        results = evaluate_rules(args.run_dir, args.data, args.splits.split(",") if args.splits else None)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, result in results.items():
        average = result["average"].get(result["metric"], "no labels")
        print(f"{args.run_dir} {name}: {result['metric']} average {average}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
