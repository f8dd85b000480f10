"""Markdown tables of ``stabletune-evaluate`` results, one row per run, one column per language.

    python benchmarks/results_table.py [--together f1,exact_match] [--title T] NAME=RESULTS_DIR ...

Without ``--together``: one table per metric of the results. With it: one table whose cells hold
those metrics joined by " / " (e.g. QA's F1 / EM).
"""
import argparse
import json
from pathlib import Path


def table(runs: dict, metrics: list[str]) -> list[str]:
    langs = list(next(iter(runs.values()))["per_language"])
    lines = ["| run | " + " | ".join(langs) + " | average |", "|---|" + "---|" * (len(langs) + 1)]
    for name, r in runs.items():
        cell = lambda scores: " / ".join(f"{scores[m]:.2f}" for m in metrics)  # noqa: E731
        lines.append(f"| {name} | " + " | ".join(cell(r["per_language"][l]) for l in langs) + f" | {cell(r['average'])} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=RESULTS_DIR (a folder holding results.json)")
    parser.add_argument("--together", default=None, help="comma-separated metrics shown in one table")
    parser.add_argument("--title", default="", help="printed above the tables")
    args = parser.parse_args()
    runs = {}
    for item in args.runs:
        name, folder = item.split("=", 1)
        runs[name] = json.loads((Path(folder) / "results.json").read_text(encoding="utf-8"))
    first = next(iter(runs.values()))
    groups = [args.together.split(",")] if args.together else [[m] for m in first.get("metrics", [first["metric"]])]
    for metrics in groups:
        print(f"\n{args.title}{' / '.join(metrics)}:\n")
        print("\n".join(table(runs, metrics)))
    print("\nn per language:", {lang: scores["n"] for lang, scores in first["per_language"].items()},
          "(last checkpoint of each run)")


if __name__ == "__main__":
    main()
