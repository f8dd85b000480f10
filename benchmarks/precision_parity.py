"""fp32 against bf16 training, side by side: what ``precision_evidence.sh`` ran, as a markdown table and a plot.

    python benchmarks/precision_parity.py TASK OUT

Reads ``OUT/{fp32,bf16}``: for run_seeds.sh tasks every ``runs/seed<N>/plain`` run (the ``last`` checkpoint scored
on dev, its log, its wall time); for qa the one ``plain`` run of ``qa_evidence.sh`` on XQuAD and MLQA dev. Writes
``OUT/parity.md`` and ``OUT/losses.png`` and prints the table. Per language: mean ± sd over seeds of each precision,
and the paired difference bf16 - fp32 (same seed) with its 95% t interval.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import sys

from stabletune_fairseq.report.statistics import format_difference, format_summary, paired_difference, summarize

PRECISIONS = ("fp32", "bf16")
TRAIN_LINE = re.compile(r"\| train_inner \| .*?loss=(?P<loss>[0-9.]+).*?num_updates=(?P<update>\d+)")


def losses(log_file: str) -> list[tuple[int, float]]:
    """(update, training loss) of fairseq's ``train_inner`` lines; a resumed run's repeated update: the later one."""
    points = {}
    with open(log_file, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if match := TRAIN_LINE.search(line):
                points[int(match["update"])] = float(match["loss"])
    return sorted(points.items())


def seed_runs(out: str, precision: str) -> dict[str, dict]:
    """``{"seed<N>": {"results": {set: results.json}, "log": path, "wall_s": s}}`` of one precision."""
    runs = {}
    root = os.path.join(out, precision)
    for seed_dir in sorted(glob.glob(os.path.join(root, "runs", "seed*"))):
        results = os.path.join(seed_dir, "plain", "eval", "last-valid", "results.json")
        if not os.path.exists(results):
            continue
        status = json.load(open(os.path.join(seed_dir, "status", "plain.json"), encoding="utf-8"))
        runs[os.path.basename(seed_dir)] = {
            "results": {"dev": json.load(open(results, encoding="utf-8"))},
            "log": os.path.join(seed_dir, "logs", "plain.log"),
            "wall_s": status.get("seconds") or status.get("wall_s"),
        }
    qa = {
        name: os.path.join(root, f"results-plain-{name}", "results.json")
        for name in ("xquad", "mlqa")
        if os.path.exists(os.path.join(root, f"results-plain-{name}", "results.json"))
    }
    if qa:
        runs["seed"] = {
            "results": {name: json.load(open(path, encoding="utf-8")) for name, path in qa.items()},
            "log": os.path.join(root, "plain.log"),
            "wall_s": None,
        }
    return runs


def table(runs: dict[str, dict[str, dict]]) -> list[str]:
    seeds = sorted(set(runs["fp32"]) & set(runs["bf16"]))
    if not seeds:
        raise SystemExit("no seed finished in both precisions")
    lines = []
    first = runs["fp32"][seeds[0]]["results"]
    for name, results in first.items():
        metric = results["metric"]
        languages = list(results["per_language"])
        lines += [
            f"**{name}, {metric}** (last checkpoint; {len(seeds)} seed(s): {', '.join(seeds)})",
            "",
            "| | " + " | ".join([*languages, "average"]) + " |",
            "|---" * (len(languages) + 2) + "|",
        ]
        cells = {p: {} for p in PRECISIONS}
        for precision in PRECISIONS:
            for lang in [*languages, "average"]:
                values = []
                for seed in seeds:
                    scored = runs[precision][seed]["results"][name]
                    row = scored["average"] if lang == "average" else scored["per_language"][lang]
                    values.append(row[metric])
                cells[precision][lang] = values
            row = [format_summary(summarize(cells[precision][lang])) for lang in [*languages, "average"]]
            lines.append(f"| {precision} | " + " | ".join(row) + " |")
        row = [
            format_difference(paired_difference(cells["bf16"][lang], cells["fp32"][lang]))
            for lang in [*languages, "average"]
        ]
        lines += ["| bf16 - fp32 (paired) | " + " | ".join(row) + " |", ""]
    walls = {p: [runs[p][s]["wall_s"] for s in seeds if runs[p][s]["wall_s"]] for p in PRECISIONS}
    if all(walls.values()):
        lines.append(
            "Wall time per run (training and its evaluation): "
            + ", ".join(f"{p} {format_summary(summarize(walls[p]), 0)} s" for p in PRECISIONS)
        )
    return lines


def plot(runs: dict[str, dict[str, dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # the package's logging set-up lets its DEBUG through
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.0, 4.0), dpi=110)
    colours = {"fp32": "tab:blue", "bf16": "tab:orange"}
    for precision in PRECISIONS:
        for i, (_seed, run) in enumerate(sorted(runs[precision].items())):
            points = losses(run["log"]) if os.path.exists(run["log"]) else []
            if points:
                axes.plot(
                    *zip(*points), color=colours[precision], alpha=0.75, lw=1.1, label=precision if i == 0 else None
                )
    axes.set_xlabel("updates")
    axes.set_ylabel("training loss (fairseq's, every 10 updates)")
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title("fp32 and bf16 training, one line per seed")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    task, out = argv
    runs = {precision: seed_runs(out, precision) for precision in PRECISIONS}
    lines = [f"# {task}: fp32 and bf16 training", "", *table(runs), "", "![training losses](losses.png)", ""]
    plot(runs, os.path.join(out, "losses.png"))
    text = "\n".join(lines)
    with open(os.path.join(out, "parity.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
