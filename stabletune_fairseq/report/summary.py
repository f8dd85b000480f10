"""report.json: every number of a report, computed from the runs' results and predictions.

Layout (``S`` is a summary ``{"mean", "sd", "n", "values"}``, ``D`` a paired difference: ``S`` plus ``ci95``):

- ``scores[split][rule][stage][metric][lang | "average" | "gap"] = S`` over seeds;
- ``differences[split][rule][stage][metric][...] = D``: stage minus plain fine-tuning, seed by seed;
- ``agreement[split][rule][stage][lang | "mean"] = S`` (percent; parallel dev sets only), and
  ``agreement_differences[...]= D``, stage minus plain fine-tuning, seed by seed;
- ``checkpoints[stage][rule] = {seed: update}``: the update each rule chose; ``wall_s[stage] = S``.

``gap`` is English minus the mean of the other languages (absent without English or without another
language: GLUE's single ``en`` dev set, MNLI's ``m``/``mm``). ``average`` is the mean over languages that
``stabletune-evaluate`` reports. Stages: ``plain``, ``stage1``, ``stage2``, ``rdrop``, ``r3f`` (``runs.py``);
every stage but ``plain`` is compared with ``plain``.
"""

from __future__ import annotations

import statistics

from .agreement import agreement
from .runs import Run
from .selection import RULE_TITLES, RULES
from .statistics import cross_lingual_gap, paired_difference, summarize

INTERVAL = "95% t interval over seeds: mean ± t(0.975, n−1)·sd/√n of the per-seed differences (paired by seed)"


def _cells(results: dict, metric: str) -> dict[str, float]:
    """Per language, the average and the gap of one results.json for one metric (labelled languages only)."""
    per_language = {lang: row[metric] for lang, row in results["per_language"].items() if metric in row}
    cells = dict(per_language)
    if per_language:
        cells["average"] = statistics.fmean(per_language.values())
    gap = cross_lingual_gap(per_language)
    if gap is not None:
        cells["gap"] = gap
    return cells


def build_report(runs: list[Run], target: str) -> dict:
    evaluated = [run for run in runs if run.results]
    if not evaluated:
        raise ValueError(f"{target}: no evaluation results (eval/<rule>-<split>/results.json) in any run")
    first = next(iter(evaluated[0].results.values()))
    stages = list(dict.fromkeys(run.stage for run in runs))
    seeds = sorted({run.seed for run in runs if run.seed is not None})
    keys = sorted({key for run in evaluated for key in run.results})
    splits = sorted({key.rsplit("-", 1)[1] for key in keys}, key=["valid", "test"].index)
    rules = [rule for rule in RULES if any(key.rsplit("-", 1)[0] == rule for key in keys)]  # "best" is no "best-en"
    report = {
        "target": target,
        "task": first["task"],
        "metric": first["metric"],
        "metrics": first["metrics"],
        "languages": list(first["per_language"]),
        "seeds": seeds,
        "stages": stages,
        "rules": rules,
        "rule_titles": {r: RULE_TITLES[r] for r in rules},
        "splits": splits,
        "interval": INTERVAL,
        "scores": {},
        "differences": {},
        "agreement": {},
        "agreement_differences": {},
        "checkpoints": {},
        "wall_s": {},
        "missing": [],
    }
    by_stage = {stage: [run for run in runs if run.stage == stage] for stage in stages}
    agreements = {}  # (split, rule, stage) -> {seed: {lang | "mean": percent}}
    for run in runs:
        if run.status and run.status.get("status") != "done":
            report["missing"].append(f"{run.name}: {run.status.get('status')} (exit {run.status.get('exit')})")
    for split in splits:
        for rule in rules:
            key = f"{rule}-{split}"
            for stage, stage_runs in by_stage.items():
                have = [run for run in stage_runs if key in run.results]
                report["missing"] += [f"{run.name}: no {key} results" for run in stage_runs if key not in run.results]
                if not have:
                    continue
                scores = report["scores"].setdefault(split, {}).setdefault(rule, {}).setdefault(stage, {})
                for metric in report["metrics"]:
                    cells = [_cells(run.results[key], metric) for run in have]
                    names = [name for name in cells[0] if all(name in c for c in cells)]
                    scores[metric] = {name: summarize([c[name] for c in cells]) for name in names}
                found = {run.seed: agreement(f"{run.path}/eval/{key}", run.results[key]) for run in have}
                found = {seed: a for seed, a in found.items() if a}
                if found:
                    langs = [lang for lang in next(iter(found.values())) if all(lang in a for a in found.values())]
                    per_seed = {
                        seed: {
                            **{lang: a[lang]["agreement"] for lang in langs},
                            "mean": statistics.fmean(a[lang]["agreement"] for lang in langs),
                        }
                        for seed, a in found.items()
                    }
                    agreements[(split, rule, stage)] = per_seed
                    report["agreement"].setdefault(split, {}).setdefault(rule, {})[stage] = {
                        name: summarize([cells[name] for cells in per_seed.values()]) for name in [*langs, "mean"]
                    }
            _differences(report, by_stage, split, rule)
            _agreement_differences(report, agreements, split, rule)
    for stage, stage_runs in by_stage.items():
        for run in stage_runs:
            for key, results in run.results.items():
                rule = key.rsplit("-", 1)[0]
                report["checkpoints"].setdefault(stage, {}).setdefault(rule, {})[str(run.seed)] = results.get(
                    "num_updates"
                )
        walls = [run.status["wall_s"] for run in stage_runs if run.status and run.status.get("status") == "done"]
        if walls:
            report["wall_s"][stage] = summarize(walls)
    return report


def _differences(report: dict, by_stage: dict, split: str, rule: str) -> None:
    """Each stage minus plain fine-tuning of the same seed, over the seeds both have."""
    key = f"{rule}-{split}"
    baseline = {run.seed: run.results[key] for run in by_stage.get("plain", []) if key in run.results}
    for stage, stage_runs in by_stage.items():
        if stage == "plain":
            continue
        pairs = [
            (run.results[key], baseline[run.seed]) for run in stage_runs if key in run.results and run.seed in baseline
        ]
        if not pairs:
            continue
        out = report["differences"].setdefault(split, {}).setdefault(rule, {}).setdefault(stage, {})
        for metric in report["metrics"]:
            cells = [(_cells(a, metric), _cells(b, metric)) for a, b in pairs]
            names = [n for n in cells[0][0] if all(n in a and n in b for a, b in cells)]
            out[metric] = {n: paired_difference([a[n] for a, _ in cells], [b[n] for _, b in cells]) for n in names}


def _agreement_differences(report: dict, agreements: dict, split: str, rule: str) -> None:
    baseline = agreements.get((split, rule, "plain"))
    if not baseline:
        return
    for (s, r, stage), per_seed in agreements.items():
        if (s, r) != (split, rule) or stage == "plain":
            continue
        seeds = [seed for seed in per_seed if seed in baseline]
        if not seeds:
            continue
        names = [n for n in per_seed[seeds[0]] if n in baseline[seeds[0]]]
        report["agreement_differences"].setdefault(split, {}).setdefault(rule, {})[stage] = {
            n: paired_difference([per_seed[seed][n] for seed in seeds], [baseline[seed][n] for seed in seeds])
            for n in names
        }
