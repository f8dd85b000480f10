"""Markdown tables of ``stabletune-evaluate`` results, one row per run, one column per language.

    python benchmarks/results_table.py [--together f1,exact_match] [--title T] NAME=RESULTS_DIR[,RESULTS_DIR...] ...

Without ``--together``: one table per metric of the results. With it: one table whose cells hold
those metrics joined by " / " (e.g. QA's F1 / EM). A run given several folders (one per seed) shows the
mean ± sample standard deviation over them, and, below, its paired difference from the first run (seed by
seed, the folders taken in the order given: the same seeds for every run).
"""

import argparse
import json
import statistics
from pathlib import Path


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _rows(result: dict) -> dict:
    """Per language (stabletune-evaluate, Tatoeba, BUCC) or per track (STS)."""
    return result["per_language"] if "per_language" in result else result["per_track"]


def _scores(results: list[dict], lang: str | None, metric: str) -> list[float]:
    return [(r["average"] if lang is None else _rows(r)[lang])[metric] for r in results]


def table(runs: dict, metrics: list[str], baseline: str | None = None) -> list[str]:
    """Rows of mean ± std per language; with ``baseline``, of the paired differences from that run."""
    langs = list(_rows(next(iter(runs.values()))[0]))
    lines = ["| run | " + " | ".join(langs) + " | average |", "|---|" + "---|" * (len(langs) + 1)]
    for name, results in runs.items():
        if baseline is not None and name == baseline:
            continue

        def cell(lang, results=results):  # bound now: the loop moves on
            parts = []
            for m in metrics:
                values = _scores(results, lang, m)
                if baseline is not None:
                    values = [v - b for v, b in zip(values, _scores(runs[baseline], lang, m))]
                parts.append(_mean_std(values))
            return " / ".join(parts)

        label = name if baseline is None else f"{name} − {baseline}"
        lines.append(f"| {label} | " + " | ".join(cell(lang) for lang in langs) + f" | {cell(None)} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=RESULTS_DIR[,RESULTS_DIR...] (folders holding results.json)")
    parser.add_argument("--together", default=None, help="comma-separated metrics shown in one table")
    parser.add_argument("--title", default="", help="printed above the tables")
    args = parser.parse_args()
    runs = {}
    for item in args.runs:
        name, folders = item.split("=", 1)
        runs[name] = [json.loads((Path(f) / "results.json").read_text(encoding="utf-8")) for f in folders.split(",")]
    counts = {len(r) for r in runs.values()}
    if len(counts) != 1:
        parser.error(f"every run needs the same number of result folders (seeds), got {sorted(counts)}")
    seeds = counts.pop()
    first = next(iter(runs.values()))[0]
    groups = (
        [args.together.split(",")]
        if args.together
        else [[m] for m in (first["metrics"] if "metrics" in first else [first["metric"]])]
    )
    for metrics in groups:
        print(
            f"\n{args.title}{' / '.join(metrics)}" + (f", mean ± std over {seeds} seeds" if seeds > 1 else "") + ":\n"
        )
        print("\n".join(table(runs, metrics)))
        if seeds > 1 and len(runs) > 1:
            baseline = next(iter(runs))
            print(f"\nPaired difference from {baseline} (same seed), mean ± std over {seeds} seeds:\n")
            print("\n".join(table(runs, metrics, baseline)))
    print("\nn per row:", {lang: scores.get("n", scores.get("gold_pairs")) for lang, scores in _rows(first).items()})


if __name__ == "__main__":
    main()
