"""More than one checkpoint-selection rule from one training run.

fairseq keeps one best checkpoint, for ``--best-checkpoint-metric``. A cross-lingual paper wants the
others too (best by the average dev score, best by English dev alone: true zero-shot, the last one),
from the same run. The task hooks fairseq calls around each validation and save do that:

- ``post_validate`` remembers the validation's stats;
- ``post_save`` (only on the rank that wrote the checkpoint) appends them to
  ``<save_dir>/valid_history.jsonl``, one JSON object per saved validation, and, for each metric of
  ``--extra-best-metrics`` that is the best so far (higher is better, ties go to the later checkpoint, as
  fairseq's own rule), copies the checkpoint just written to ``checkpoint_best_<metric>.pt``.

The history is the state: after a resume, the best so far is read back from it, and records newer than
the checkpoint training resumed from (a run recovered from an older interval checkpoint) are replaced.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

logger = logging.getLogger(__name__)

HISTORY = "valid_history.jsonl"


def best_file(metric: str) -> str:
    return f"checkpoint_best_{metric}.pt"


def read_history(save_dir: str) -> list[dict]:
    path = os.path.join(save_dir, HISTORY)
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                # The file is rewritten whole (os.replace), so a bad line means it is not ours.
                raise ValueError(f"{path}:{number}: not a validation record ({error.msg})") from None
    return records


def best_update(history: list[dict], metric: str) -> int | None:
    """The update of the record best by ``metric`` (ties: the later one, fairseq's rule); None when
    no record has it. Training copies a checkpoint by this rule, and reports find it by it again."""
    best = None
    for record in history:
        if metric in record and (best is None or record[metric] >= best[metric]):
            best = record
    return None if best is None else best["num_updates"]


class CheckpointSelection:
    """Keeps ``checkpoint_best_<metric>.pt`` for every extra metric, and the validation history."""

    def __init__(self, metrics: str):
        self.metrics = [m for m in metrics.split(",") if m]
        self.last_stats: dict | None = None

    def validated(self, stats: dict) -> None:
        self.last_stats = {k: v for k, v in stats.items() if isinstance(v, (int, float))}

    def saved(self, checkpoint: str, num_updates: int) -> None:
        stats, self.last_stats = self.last_stats, None
        if stats is None or stats.get("num_updates") != num_updates:
            return  # a save without a validation (e.g. an interval save with validation disabled)
        save_dir = os.path.dirname(checkpoint)
        history = [r for r in read_history(save_dir) if r["num_updates"] < num_updates]
        for metric in self.metrics:
            if metric not in stats:
                logger.warning(
                    "--extra-best-metrics %s: not a validation metric of this task (has %s)", metric, sorted(stats)
                )
                continue
            if best_update(history + [stats], metric) == num_updates:
                target = os.path.join(save_dir, best_file(metric))
                shutil.copyfile(checkpoint, target + ".tmp")
                os.replace(target + ".tmp", target)
                logger.info("%s %s: best so far, copied to %s", metric, stats[metric], target)
        self._write(save_dir, history + [stats])

    @staticmethod
    def _write(save_dir: str, records: list[dict]) -> None:
        path = os.path.join(save_dir, HISTORY)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
        os.replace(path + ".tmp", path)
