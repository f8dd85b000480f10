"""The table of benchmarks/contrastive_distillation_evidence.sh: zero-shot dev accuracy (checkpoint by English dev)
per language, mean ± sample sd over seeds, and the wall time of each arm (training and evaluation; the SCL arm's
includes its SCL run), from the runs' ``eval/best-en-valid/results.json`` and ``run_seeds.sh`` status files.

    python benchmarks/contrastive_summary.py <OUT of the evidence script>
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ARMS = (
    ("plain fine-tuning", "runs", "plain", None),
    ("KD + PKD (T 10, alpha 0.5, mu 100)", "runs", "kd", None),
    ("layer-wise contrast, then KD (T 1, alpha 0.2) + contrast", "runs-lcon", "kd", None),
    ("SCL alone, then KD from its checkpoint (T 1, alpha 0.5)", "runs-scl", "kd", "scl"),
)


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main(out: Path) -> int:
    rows, languages = [], None
    for title, root, stage, before in ARMS:
        scores: dict[str, list[float]] = {}
        walls, seeds = [], []
        for seed_dir in sorted((out / root).glob("seed*")):
            results = seed_dir / stage / "eval" / "best-en-valid" / "results.json"
            status = seed_dir / "status" / f"{stage}.json"
            if not results.is_file() or not status.is_file():
                continue
            record = json.loads(results.read_text(encoding="utf-8"))
            languages = languages or list(record["per_language"])
            for lang, row in record["per_language"].items():
                scores.setdefault(lang, []).append(row["accuracy"])
            scores.setdefault("average", []).append(record["average"]["accuracy"])
            wall = json.loads(status.read_text(encoding="utf-8"))["wall_s"]
            if before:  # the SCL run this KD started from
                wall += int((out / before / seed_dir.name / ".done").read_text().strip())
            walls.append(wall)
            seeds.append(seed_dir.name[4:])
        rows.append((title, scores, walls, seeds))
    if languages is None:
        print("no evaluated run yet")
        return 1
    columns = [*languages, "average"]
    print("| run | seeds | " + " | ".join(columns) + " | wall s per run |")
    print("|---|---|" + "---|" * len(columns) + "---|")
    for title, scores, walls, seeds in rows:
        cells = [cell(scores.get(name, [])) for name in columns]
        wall = cell([float(w) for w in walls])
        print(f"| {title} | {','.join(seeds) or '–'} | " + " | ".join(cells) + f" | {wall} |")
    print()
    print("Per seed, average accuracy:")
    for title, scores, _, seeds in rows:
        values = ", ".join(f"seed {s} {v:.2f}" for s, v in zip(seeds, scores.get("average", [])))
        print(f"- {title}: {values or '–'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
