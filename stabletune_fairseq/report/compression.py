"""The report of ``run_seeds.sh COMPRESS``: a compressed student's Tatoeba and STS after each stage, over seeds.

Layout read (written by run_seeds.sh): ``<out_root>/seed<N>/compress/`` is one run_compress_embeddings.sh output
(``stage<k>/run/``), ``seed<N>/compress/eval/stage<k>-<task>/results.json`` stabletune-embed-eval's results of
stage k's ``checkpoint_best.pt`` (task ``tatoeba`` or ``sts``), ``seed<N>/status/compress.json`` the run's status.

report.json (``S`` a summary ``{"mean", "sd", "n", "values"}``, ``D`` a paired difference, ``S`` plus ``ci95``):
``scores[task][metric][stage][row | "average"] = S`` over seeds; ``differences[task][metric][stage][...] = D``, the
stage minus stage 1 (the assistant, uncompressed) of the same seed: what compression costs; ``wall_s = S``.
"""

from __future__ import annotations

import glob
import os
import re

from .runs import _read_json
from .statistics import paired_difference, summarize

RUN = "compress"
METRICS = {"tatoeba": ("mean", "x_to_en", "en_to_x"), "sts": ("spearman",)}
STAGE_TITLES = {
    "1": "stage 1: the assistant learns the teacher (MSE)",
    "2": "stage 2: the bottleneck embedding layer learns the assistant's",
    "3": "stage 3: recurrent layers learn the assistant",
    "4": "stage 4: MCL with the teacher (the compressed student)",
}
_EVAL = re.compile(r"stage([1-4])-(tatoeba|sts)")


def is_compression_folder(target: str) -> bool:
    return bool(glob.glob(os.path.join(target, "seed*", RUN)))


def _cells(results: dict, metric: str) -> dict[str, float]:
    rows = results.get("per_language") or results.get("per_track") or {}
    cells = {name: row[metric] for name, row in rows.items() if metric in row}
    if metric in results.get("average", {}):
        cells["average"] = results["average"][metric]
    return cells


def build_compression_report(target: str) -> dict:
    seeds = sorted(int(m.group(1)) for name in os.listdir(target) if (m := re.fullmatch(r"seed(\d+)", name)))
    found: dict[str, dict[str, dict[int, dict]]] = {}  # task -> stage -> seed -> results.json
    walls, missing = [], []
    for seed in seeds:
        status_file = os.path.join(target, f"seed{seed}", "status", f"{RUN}.json")
        if os.path.exists(status_file):
            status = _read_json(status_file)
            if status.get("status") == "done":
                walls.append(status["wall_s"])
            else:
                missing.append(f"seed {seed}: {status.get('status')} (exit {status.get('exit')})")
        for path in sorted(glob.glob(os.path.join(target, f"seed{seed}", RUN, "eval", "*", "results.json"))):
            match = _EVAL.fullmatch(os.path.basename(os.path.dirname(path)))
            if match:
                stage, task = match.groups()
                found.setdefault(task, {}).setdefault(stage, {})[seed] = _read_json(path)
    if not found:
        raise ValueError(f"{target}: no evaluation results (seed<N>/{RUN}/eval/stage<k>-<task>/results.json)")
    report = {
        "target": target,
        "seeds": seeds,
        "stages": sorted({stage for by_stage in found.values() for stage in by_stage}),
        "stage_titles": STAGE_TITLES,
        "tasks": sorted(found),
        "scores": {},
        "differences": {},
        "wall_s": summarize(walls) if walls else None,
        "missing": missing,
    }
    for task, by_stage in found.items():
        for stage, by_seed in sorted(by_stage.items()):
            missing += [f"seed {s}: no stage {stage} {task} results" for s in seeds if s not in by_seed]
            for metric in METRICS[task]:
                cells = [_cells(r, metric) for r in by_seed.values()]
                names = [n for n in cells[0] if all(n in c for c in cells)]
                scores = report["scores"].setdefault(task, {}).setdefault(metric, {})
                scores[stage] = {n: summarize([c[n] for c in cells]) for n in names}
                baseline = by_stage.get("1", {})
                paired = [seed for seed in by_seed if seed in baseline]
                if stage == "1" or not paired:
                    continue
                pairs = [(_cells(by_seed[s], metric), _cells(baseline[s], metric)) for s in paired]
                names = [n for n in pairs[0][0] if all(n in a and n in b for a, b in pairs)]
                report["differences"].setdefault(task, {}).setdefault(metric, {})[stage] = {
                    n: paired_difference([a[n] for a, _ in pairs], [b[n] for _, b in pairs]) for n in names
                }
    return report
