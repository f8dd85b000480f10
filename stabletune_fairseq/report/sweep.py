"""The report of a run_sweep.sh folder: every configuration's statistics over seeds (``summary.build_report`` on its
run_seeds.sh folder), the configuration a stated rule chooses on dev and its test numbers, the per-language
(XLM-style) choice as a second view, and how much the choice moves the reported number.

Selection (``select``): ``avg``, the configuration with the best mean over seeds of the dev average, each run's
checkpoint chosen by the dev average (rule ``best-avg``); ``en``, the best mean English dev score, checkpoints by
English dev (``best-en``): true zero-shot, no target-language data used. Ties (equal means to 1e-9): more seeds
first, then the grid's order (the first configuration listed). The reported number is the chosen configuration's
average on ``test`` where the test sets are labelled (selection and reporting on different data), on ``valid``
otherwise (said so). Failed runs (a status other than ``done``) are listed and counted, never averaged.
"""

from __future__ import annotations

import json
import os
import statistics

from .runs import find_runs, is_seed_folder
from .summary import build_report

SELECT = {"avg": ("best-avg", "average"), "en": ("best-en", "en")}  # rule -> (checkpoint rule, dev cell)
TIE_RULE = "ties (means equal to 1e-9): the configuration with more seeds, then the first in the grid's order"
XLM_VIEW = (
    "per-language selection (XLM's, facebookresearch/XLM#110): each language takes the configuration with its own "
    "best mean dev score; uses every language's dev data, so it is neither zero-shot nor one model"
)


def is_sweep_folder(target: str) -> bool:
    """run_sweep.sh's output: ``sweep.json``, or sub-folders named ``KEY=value,...`` holding run_seeds.sh folders."""
    if os.path.isfile(os.path.join(target, "sweep.json")):
        return True
    return os.path.isdir(target) and any(
        "=" in name and os.path.isdir(os.path.join(target, name)) and is_seed_folder(os.path.join(target, name))
        for name in os.listdir(target)
    )


def find_configurations(target: str) -> list[tuple[str, dict[str, str]]]:
    """(folder name, settings) of each configuration that has a folder, in the grid's order (``sweep.json``; without
    it, by name)."""
    record = os.path.join(target, "sweep.json")
    if os.path.isfile(record):
        with open(record, encoding="utf-8") as handle:
            try:
                listed = [(c["name"], c["settings"]) for c in json.load(handle)["configurations"]]
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{record}: not run_sweep.sh's record ({error})") from None
    else:
        names = sorted(n for n in os.listdir(target) if "=" in n)
        listed = [(n, dict(part.split("=", 1) for part in n.split(","))) for n in names]
    return [(n, s) for n, s in listed if os.path.isdir(os.path.join(target, n))]


def _better(candidate: tuple, best: tuple | None) -> bool:
    """(mean, n, grid index): the higher mean, then more seeds, then the earlier configuration."""
    if best is None:
        return True
    if abs(candidate[0] - best[0]) > 1e-9:
        return candidate[0] > best[0]
    if candidate[1] != best[1]:
        return candidate[1] > best[1]
    return candidate[2] < best[2]


def choose(cells: dict[str, dict | None], order: list[str]) -> str | None:
    """The configuration whose summary (``{"mean", "n"}``) is best by the stated rule (``_better``)."""
    best, chosen = None, None
    for name in order:
        s = cells.get(name)
        if s is None:
            continue
        key = (s["mean"], s["n"], order.index(name))
        if _better(key, best):
            best, chosen = key, name
    return chosen


def build_sweep_report(target: str, select: str = "avg") -> dict:
    if select not in SELECT:
        raise ValueError(f"--select must be avg or en (got '{select}')")
    configs = find_configurations(target)
    if not configs:
        raise ValueError(f"{target}: no configuration folders (KEY=value,...) of run_sweep.sh")
    order = [name for name, _ in configs]
    per_config, failed, counts = {}, [], {}
    for name, _ in configs:
        runs = find_runs(os.path.join(target, name))
        bad = [run for run in runs if run.status and run.status.get("status") != "done"]
        failed += [f"{name} {run.name}: {run.status.get('status')} (exit {run.status.get('exit')})" for run in bad]
        good = [run for run in runs if run not in bad]
        counts[name] = {"runs": len(runs), "failed": len(bad)}
        if any(run.results for run in good):
            per_config[name] = build_report(good, os.path.join(target, name))
    if not per_config:
        raise ValueError(f"{target}: no configuration has evaluated runs (eval/<rule>-<split>/results.json)")
    first = next(iter(per_config.values()))
    metric, languages = first["metric"], first["languages"]
    splits = sorted({s for r in per_config.values() for s in r["splits"]}, key=["valid", "test"].index)
    reported_split = "test" if "test" in splits else "valid"
    stages = list(dict.fromkeys(s for r in per_config.values() for s in r["stages"]))
    report = {
        "target": target,
        "task": first["task"],
        "metric": metric,
        "languages": languages,
        "configurations": [{"name": n, "settings": s, **counts[n]} for n, s in configs],
        "select": select,
        "tie_rule": TIE_RULE,
        "xlm_view": XLM_VIEW,
        "reported_split": reported_split,
        "splits": splits,
        "stages": stages,
        "scores": {},  # [stage][split][checkpoint rule][configuration][lang | average] = summary
        "selection": {},  # [stage][select rule] = {...}
        "per_language": {},  # [stage] = {...}
        "spread": {},  # [stage] = {...}
        "failed": failed,
    }

    def cells(name, split, rule, stage):
        return per_config.get(name, {}).get("scores", {}).get(split, {}).get(rule, {}).get(stage, {}).get(metric)

    for stage in stages:
        scores = report["scores"].setdefault(stage, {})
        for split in splits:
            for rule in ("best-avg", "best-en", "last"):
                table = {n: cells(n, split, rule, stage) for n in order if cells(n, split, rule, stage)}
                if table:
                    scores.setdefault(split, {})[rule] = table
        for how, (rule, cell) in SELECT.items():
            dev = {n: (cells(n, "valid", rule, stage) or {}).get(cell) for n in order}
            chosen = choose(dev, order)
            if chosen is None:
                continue
            reported = cells(chosen, reported_split, rule, stage) or {}
            report["selection"].setdefault(stage, {})[how] = {
                "rule": rule,
                "dev_cell": cell,
                "chosen": chosen,
                "dev": dev[chosen],
                "dev_average": (cells(chosen, "valid", rule, stage) or {}).get("average"),
                "reported": reported,
            }
        report["per_language"][stage] = _per_language(order, languages, stage, reported_split, cells, select)
        report["spread"][stage] = _spread(order, stage, reported_split, cells, report["selection"].get(stage, {}))
    return report


def _per_language(order, languages, stage, reported_split, cells, select) -> dict:
    rule = SELECT[select][0]
    chosen, values = {}, {}
    for lang in languages:
        dev = {n: (cells(n, "valid", rule, stage) or {}).get(lang) for n in order}
        name = choose(dev, order)
        if name is None:
            continue
        value = (cells(name, reported_split, rule, stage) or {}).get(lang)
        if value is not None:
            chosen[lang], values[lang] = name, value
    average = statistics.fmean(v["mean"] for v in values.values()) if values else None
    return {"rule": rule, "chosen": chosen, "reported": values, "average": average}


def _spread(order, stage, reported_split, cells, selection) -> dict:
    """How much the choice moves the reported number (the average on the reported split, rule of each selection)."""
    out = {}
    for how, chosen in selection.items():
        rule = chosen["rule"]
        means = {n: (cells(n, reported_split, rule, stage) or {}).get("average") for n in order}
        means = {n: s for n, s in means.items() if s is not None}
        if not means:
            continue
        oracle = choose(means, order)
        runs = [v for s in means.values() for v in s["values"]]
        honest = chosen["reported"].get("average")
        out[how] = {
            "rule": rule,
            "grid_min": min(s["mean"] for s in means.values()),
            "grid_max": max(s["mean"] for s in means.values()),
            "oracle": oracle,
            "oracle_mean": means[oracle]["mean"],
            "honest_mean": honest["mean"] if honest else None,
            "optimism": means[oracle]["mean"] - honest["mean"] if honest else None,
            "best_single_run": max(runs),
            "configuration_means": {n: s["mean"] for n, s in means.items()},
            "seed_values": {n: s["values"] for n, s in means.items()},
        }
    return out
