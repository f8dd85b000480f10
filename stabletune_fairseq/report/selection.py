"""The checkpoint of each selection rule of a training run, and their evaluation.

Rules of the XTREME tasks: ``best-avg`` (best average dev score), ``best-en`` (best English dev score: true
zero-shot selection), ``last``. ``run_xtreme.sh`` keeps ``checkpoint_best.pt`` for its SELECT rule and
``checkpoint_best_<metric>_<other>.pt`` for the other (``tasks/checkpoint_selection.py``); which update
each one holds is read from ``valid_history.jsonl``, so a checkpoint that two rules share is evaluated once.
GLUE (a task folder of ``kind`` "glue") has one dev set and selects by the task's own metric (``acc_en``,
``mcc_en``, ``pearson_spearman_en``, MNLI ``acc_m``): ``best`` (``checkpoint_best.pt``), MNLI also ``best-mm``
(``checkpoint_best_acc_mm.pt``, best mismatched accuracy), and ``last``.

    python -m stabletune_fairseq.cli.evaluate_rules <run_dir> [--data <task folder>] [--splits valid,test]

writes ``<run_dir>/eval/<rule>-<split>/`` (``stabletune-evaluate``'s results.json, results.md and
predictions/) for every rule and split, skipping what is already evaluated, and logs to
``<run_dir>/eval/evaluate.log``.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil

from ..data.metadata import load_metadata
from ..models.checkpoint_loading import recorded_task_folder
from ..tasks.checkpoint_selection import best_file, best_update, read_history

RULES = ("best-avg", "best-en", "best", "best-mm", "last")
RULE_TITLES = {
    "best-avg": "best by average dev",
    "best-en": "best by English dev (zero-shot)",
    "best": "best by the task's dev metric",
    "best-mm": "best by mismatched dev accuracy (MNLI-mm)",
    "last": "last checkpoint",
}
GLUE_EXTRA = {"acc_mm": "best-mm"}  # GLUE's checkpoint_best_<metric>.pt -> its rule
logger = logging.getLogger("stabletune_fairseq.report")


def rule_checkpoints(run_dir: str, kind: str | None = None) -> dict[str, dict]:
    """``{rule: {"checkpoint": path, "num_updates": int | None}}`` for the rules this run has files for.

    ``kind``: the task folder's (``metadata.json``); without it a run is GLUE when it has MNLI's
    ``checkpoint_best_acc_mm.pt``, and read as XTREME otherwise."""
    rules = {}
    history = read_history(run_dir)
    last = os.path.join(run_dir, "checkpoint_last.pt")
    if os.path.exists(last):
        rules["last"] = {"checkpoint": last, "num_updates": history[-1]["num_updates"] if history else None}
    if kind is None:
        kind = "glue" if any(os.path.exists(os.path.join(run_dir, best_file(m))) for m in GLUE_EXTRA) else None
    if kind == "glue":
        rules.update(_glue_rules(run_dir, history))
    else:
        rules.update(_xtreme_rules(run_dir, history))
    return {rule: rules[rule] for rule in RULES if rule in rules}


def _xtreme_rules(run_dir: str, history: list[dict]) -> dict[str, dict]:
    rules = {}
    extra = sorted(glob.glob(os.path.join(run_dir, "checkpoint_best_*_*.pt")))
    for path in extra:  # checkpoint_best_<metric>_<avg|en>.pt: the other rule; checkpoint_best.pt: SELECT's
        metric, other = os.path.basename(path)[len("checkpoint_best_") : -3].rsplit("_", 1)
        if other not in ("avg", "en"):
            continue
        select = "en" if other == "avg" else "avg"
        rules[f"best-{other}"] = {"checkpoint": path, "num_updates": best_update(history, f"{metric}_{other}")}
        best = os.path.join(run_dir, "checkpoint_best.pt")
        if os.path.exists(best):
            rules[f"best-{select}"] = {"checkpoint": best, "num_updates": best_update(history, f"{metric}_{select}")}
    if not extra and os.path.exists(os.path.join(run_dir, "checkpoint_best.pt")):
        # A run from before the extra rule was kept: its checkpoint_best.pt is by the average (the default).
        rules["best-avg"] = {"checkpoint": os.path.join(run_dir, "checkpoint_best.pt"), "num_updates": None}
    return rules


def _glue_rules(run_dir: str, history: list[dict]) -> dict[str, dict]:
    """``best``: checkpoint_best.pt, by the metric fairseq selected with, which its validations record as
    ``best_<metric>`` (from the second validation on); with one validation every checkpoint holds its update."""
    selected = next(
        (key[len("best_") :] for record in reversed(history) for key in record if key.startswith("best_")), None
    )
    only = history[0]["num_updates"] if len(history) == 1 else None
    rules = {}
    best = os.path.join(run_dir, "checkpoint_best.pt")
    if os.path.exists(best):
        rules["best"] = {"checkpoint": best, "num_updates": best_update(history, selected) if selected else only}
    for metric, rule in GLUE_EXTRA.items():
        path = os.path.join(run_dir, best_file(metric))
        if os.path.exists(path):
            rules[rule] = {"checkpoint": path, "num_updates": best_update(history, metric)}
    return rules


def labelled_splits(data: str) -> list[str]:
    """valid, and test where the task folder has a labelled test split (XTREME ships most without labels)."""
    splits = load_metadata(data)["splits"]
    return [
        split
        for split in ("valid", "test")
        if any(name.startswith(split + "_") and info.get("labelled", True) for name, info in splits.items())
    ]


def evaluate_rules(run_dir: str, data: str | None = None, splits: list[str] | None = None) -> dict[str, dict]:
    """Evaluate every rule's checkpoint on ``splits`` into ``<run_dir>/eval/<rule>-<split>/``: once per
    distinct checkpoint (rules holding the same update share the results, copied), and not again when
    results.json is newer than the checkpoint. Returns ``{"<rule>-<split>": results}``."""
    from ..evaluation.task_evaluation import evaluate

    rules = rule_checkpoints(run_dir)
    if not rules:
        raise FileNotFoundError(f"{run_dir}: no checkpoint_last.pt or checkpoint_best*.pt to evaluate")
    data = data or recorded_task_folder(rules["last" if "last" in rules else next(iter(rules))]["checkpoint"])
    rules = rule_checkpoints(run_dir, load_metadata(data).get("kind"))  # GLUE's rules are named by its metadata
    splits = splits or labelled_splits(data)
    done, out = {}, {}
    for split in splits:
        for rule, chosen in rules.items():
            folder = os.path.join(run_dir, "eval", f"{rule}-{split}")
            results_file = os.path.join(folder, "results.json")
            key = (chosen["num_updates"], split) if chosen["num_updates"] is not None else (chosen["checkpoint"], split)
            if os.path.exists(results_file) and os.path.getmtime(results_file) >= os.path.getmtime(
                chosen["checkpoint"]
            ):
                logger.info("%s %s: already evaluated (%s)", rule, split, results_file)
            elif key in done:
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(done[key], folder)
                logger.info(
                    "%s %s: the checkpoint of %s (update %s), results copied",
                    rule,
                    split,
                    os.path.basename(done[key]),
                    chosen["num_updates"],
                )
            else:
                logger.info("%s %s: evaluating %s", rule, split, chosen["checkpoint"])
                evaluate(chosen["checkpoint"], data, split, folder)
            with open(results_file, encoding="utf-8") as handle:
                results = json.load(handle)
            results.update(rule=rule, num_updates=chosen["num_updates"])
            with open(results_file, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=1, ensure_ascii=False)
            done.setdefault(key, folder)
            out[f"{rule}-{split}"] = results
    return out
