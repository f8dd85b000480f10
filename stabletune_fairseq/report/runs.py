"""The training runs behind a report and what was measured of them.

A ``run_seeds.sh`` output folder holds ``seed<N>/plain``, ``seed<N>/xtune`` (stage 1),
``seed<N>/xtune/stage2``, ``seed<N>/rdrop`` and ``seed<N>/r3f`` (plain fine-tuning with R-Drop / R3F), ``seed<N>/kd``
(distilled from a teacher, docs/distillation.md), each a
fairseq save dir with ``eval/<rule>-<split>/results.json`` (and
predictions), ``train.log`` and ``valid_history.jsonl``; ``seed<N>/status/<stage>.json`` holds each run's
exit status and wall time. A single training run is one such save dir.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field

STAGE_DIRS = {
    "plain": "plain",
    "stage1": "xtune",
    "stage2": os.path.join("xtune", "stage2"),
    "rdrop": "rdrop",
    "r3f": "r3f",
    "kd": "kd",
}
STAGE_TITLES = {
    "plain": "plain fine-tuning",
    "stage1": "xTune stage 1",
    "stage2": "xTune stage 2",
    "rdrop": "R-Drop",
    "r3f": "R3F",
    "kd": "distilled",
    "run": "this run",
}


@dataclass
class Run:
    seed: int | None
    stage: str  # plain | stage1 | stage2 | rdrop | r3f | kd, or "run" for a single training run
    path: str
    results: dict[str, dict] = field(default_factory=dict)  # "<rule>-<split>" -> results.json
    status: dict | None = None  # run_seeds.sh's status file: exit code, wall time

    @property
    def name(self) -> str:
        return self.stage if self.seed is None else f"seed {self.seed} {self.stage}"


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def load_results(run: Run) -> Run:
    for path in sorted(glob.glob(os.path.join(run.path, "eval", "*", "results.json"))):
        run.results[os.path.basename(os.path.dirname(path))] = _read_json(path)
    return run


def is_seed_folder(target: str) -> bool:
    return any(
        re.fullmatch(r"seed\d+", name) and os.path.isdir(os.path.join(target, name)) for name in os.listdir(target)
    )


def find_runs(target: str) -> list[Run]:
    """The runs under ``target``: every seed and stage of a run_seeds.sh folder, or ``target`` itself."""
    if not os.path.isdir(target):
        raise FileNotFoundError(f"{target}: no such folder")
    if not is_seed_folder(target):
        if not (
            os.path.exists(os.path.join(target, "checkpoint_last.pt")) or os.path.isdir(os.path.join(target, "eval"))
        ):
            raise ValueError(
                f"{target}: neither a run_seeds.sh output folder (seed<N>/) nor a training run "
                "(checkpoint_last.pt or eval/)"
            )
        return [load_results(Run(None, "run", target))]
    runs = []
    seeds = sorted(int(name[4:]) for name in os.listdir(target) if re.fullmatch(r"seed\d+", name))
    for seed in seeds:
        for stage, sub in STAGE_DIRS.items():
            path = os.path.join(target, f"seed{seed}", sub)
            status_file = os.path.join(target, f"seed{seed}", "status", f"{stage}.json")
            if not os.path.isdir(path) and not os.path.exists(status_file):
                continue
            run = Run(seed, stage, path, status=_read_json(status_file) if os.path.exists(status_file) else None)
            runs.append(load_results(run) if os.path.isdir(path) else run)
    return runs
