"""``stabletune-report``: the report of a run_seeds.sh output folder, or of one training run.

    stabletune-report <out_root | save_dir> [--out <dir>] [--data <task folder>] [--select avg|en]

A ``run_seeds.sh COMPRESS`` folder (``seed<N>/compress``) gets ``compression.md`` and ``compression.json``
(``report/compression.py``): the compressed student's Tatoeba and STS after each stage, mean ± sd over seeds, and each
stage minus stage 1 (the uncompressed assistant), paired by seed.

A run_sweep.sh folder (``sweep.json``, configurations ``KEY=value,...``) gets ``sweep.md``, ``sweep.json`` and
``sweep.png`` instead (``report/sweep.py``): per configuration mean ± sd, the configuration chosen on dev by
``--select`` and its test numbers, the per-language view, and the spread across the grid.

Writes ``report.md``, ``report.json``, ``scores.png`` (per-language bars, ± sd over seeds) and
``curves.png`` (task loss, R1, R2, dev average from each run's train.log) to ``--out`` (default
``<target>/report``). A single training run that was not evaluated yet is evaluated first, every
selection rule on every labelled split (``report/selection.py``), into ``<save_dir>/eval/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .console import quiet_logging


def write_sweep_report(target: str, out: str, select: str = "avg") -> dict:
    from ..report.plots import sweep_spread
    from ..report.render import sweep_markdown
    from ..report.sweep import build_sweep_report

    report = build_sweep_report(target, select)
    os.makedirs(out, exist_ok=True)
    images = ["sweep.png"] if sweep_spread(report, os.path.join(out, "sweep.png")) else []
    with open(os.path.join(out, "sweep.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "sweep.md"), "w", encoding="utf-8") as handle:
        handle.write(sweep_markdown(report, images))
    return report


def write_compression_report(target: str, out: str) -> dict:
    from ..report.compression import build_compression_report
    from ..report.render import compression_markdown

    report = build_compression_report(target)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "compression.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "compression.md"), "w", encoding="utf-8") as handle:
        handle.write(compression_markdown(report))
    return report


def write_report(target: str, out: str, data: str | None = None, select: str = "avg") -> dict:
    from ..report.curves import read_curves
    from ..report.plots import score_bars, training_curves
    from ..report.render import markdown
    from ..report.runs import find_runs
    from ..report.selection import evaluate_rules
    from ..report.summary import build_report

    kind = _kind(target)
    if kind == "sweep":
        return write_sweep_report(target, out, select)
    if kind == "compression":
        return write_compression_report(target, out)
    runs = find_runs(target)
    if len(runs) == 1 and runs[0].stage == "run" and not runs[0].results:
        evaluate_rules(target, data)
        runs = find_runs(target)
    report = build_report(runs, target)
    os.makedirs(out, exist_ok=True)
    images = []
    split = report["splits"][0]
    rule = "best-avg" if "best-avg" in report["rules"] else report["rules"][0]
    if score_bars(report, split, rule, os.path.join(out, "scores.png")):
        images.append("scores.png")
    curves = {
        run.name: (run.stage, read_curves(os.path.join(run.path, "train.log")))
        for run in runs
        if os.path.exists(os.path.join(run.path, "train.log"))
    }
    if training_curves(curves, os.path.join(out, "curves.png")):
        images.append("curves.png")
    with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown(report, images))
    return report


def _kind(target: str) -> str:
    """Which report a folder gets, by the name of the file written: sweep, compression or report."""
    from ..report.compression import is_compression_folder
    from ..report.sweep import is_sweep_folder

    if os.path.isdir(target) and is_sweep_folder(target):
        return "sweep"
    return "compression" if os.path.isdir(target) and is_compression_folder(target) else "report"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", help="a run_seeds.sh output folder (seed<N>/...), or one training run's save dir")
    parser.add_argument(
        "--out", default=None, help="folder for report.md, report.json and the PNGs (default <target>/report)"
    )
    parser.add_argument(
        "--data", default=None, help="task folder, to evaluate a single run (default: its checkpoint's)"
    )
    parser.add_argument(
        "--select",
        choices=("avg", "en"),
        default="avg",
        help="a sweep (run_sweep.sh's folder): choose the configuration by mean dev average over seeds (avg) or by "
        "mean English dev (en, true zero-shot)",
    )
    args = parser.parse_args(argv)
    out = args.out or os.path.join(args.target, "report")
    quiet_logging(os.path.join(out, "report.log"))
    try:
        write_report(args.target, out, args.data, args.select)
    except (FileNotFoundError, ValueError) as error:
        print(f"stabletune-report: {error}", file=sys.stderr)
        return 2
    name = _kind(args.target)
    with open(os.path.join(out, f"{name}.md"), encoding="utf-8") as handle:
        print(handle.read())
    print(f"written: {out}/{name}.md, {name}.json and the PNGs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
