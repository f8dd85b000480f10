"""run_sweep.sh's plan: a grid of settings x seeds x stages, each configuration delegated to run_seeds.sh in its own
folder (docs/reports.md#sweeps).

``GRID="LR=1e-5,5e-6 BSZ=8,16"`` is parsed and checked against the settings run_xtreme.sh takes; every configuration
is named by its settings (``LR=1e-5,BSZ=8``, in the grid's order) and becomes ``<out_root>/<name>/``, a run_seeds.sh
folder; the runs are counted (finished ones apart), refused above ``MAX_RUNS=``, and their time estimated: updates per
run (counted as run_xtreme.sh counts them) x measured seconds per update (from a finished run's train.log of the same
shape, or a few timed updates of that shape). What bash gets back (``Plan.command``): per configuration, its folder
name, the number of words of its run_seeds.sh command, and the command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field

from . import defaults as table
from .plan import Invocation, Plan, RecipeError, parse_settings, positive_int
from .run_record import read_status
from .xtreme import setting_defaults

SCRIPT = "run_sweep.sh"
# run_sweep.sh's own settings (the rest go to run_seeds.sh, and from it to run_xtreme.sh).
OWN = {
    "GRID": "",
    "SEEDS": "1,2,3",
    "STAGES": "",
    "MAX_RUNS": "100",
    "MAX_HOURS": "",
    "DRY_RUN": "0",
    "REPORT": "1",
    "KEEP_INTERVAL": "0",
    "ESTIMATE": "auto",
    "PROBE_UPDATES": "3",
    "LAUNCHER": "",
    "PARALLEL": "1",
    "SLURM_PARTITION": "",
    "SLURM_TIME": "1440",
    "SLURM_GPUS": "1",
    "SLURM_CPUS": "10",
    "SLURM_MEM_GB": "",
    "SLURM_PARALLEL": "",
    "SLURM_ACCOUNT": "",
    "MAX_REQUEUE": "3",
}
# Settings run_seeds.sh sets per run, or refuses: never a fixed setting of a sweep nor a grid key.
RUNNER_SETS = {
    "SEED": "SEEDS=",
    "STAGE": "STAGES=",
    "REG": "STAGES= (rdrop, r3f)",
    "DRY_RUN": "DRY_RUN= of run_sweep.sh",
    "PROGRESS": "nothing: run_seeds.sh logs each run",
}
NOT_SWEPT = {"TENSORBOARD", "WANDB"}  # where a run logs, not what it trains
# Settings that do not change how long an update takes: configurations that differ only in these share one
# measurement of seconds per update.
COST_FREE = {
    "LR",
    "EPOCHS",
    "MAX_UPDATE",
    "WARMUP_RATIO",
    "VALIDATE_INTERVAL_UPDATES",
    "SAVE_INTERVAL_UPDATES",
    "R1_LAMBDA",
    "R2_LAMBDA",
    "RDROP_ALPHA",
    "R3F_LAMBDA",
    "R3F_EPS",
    "KD_T",
    "KD_ALPHA",
    "CON_T",
    "SELECT",
    "OPTIM",
    "TENSORBOARD",
    "WANDB",
}
STAGE_NAMES = {"0": "plain", "1": "stage1", "2": "stage2", "rdrop": "rdrop", "r3f": "r3f", "kd": "kd"}
STAGE_SUBDIRS = {"0": "plain", "1": "xtune", "2": "xtune/stage2", "rdrop": "rdrop", "r3f": "r3f", "kd": "kd"}
SAFE_VALUE = re.compile(r"[A-Za-z0-9._+:@%=-]+")  # a value that names a folder as it is


@dataclass
class Configuration:
    name: str  # "LR=1e-5,BSZ=8": its folder under out_root
    settings: dict[str, str]  # the grid's values, in the grid's order
    updates: int = 0  # per run (stage 0's count)
    seconds_per_update: dict[str, float] = field(default_factory=dict)  # stage name -> seconds
    measured_how: dict[str, str] = field(default_factory=dict)


def parse_grid(grid: str, fixed: dict[str, str], allowed: set[str]) -> list[tuple[str, list[str]]]:
    """``"LR=1e-5,5e-6 BSZ=8,16"`` -> ``[("LR", ["1e-5", "5e-6"]), ("BSZ", ["8", "16"])]``; each error one line."""
    if not grid.strip():
        raise RecipeError(f'{SCRIPT}: GRID= is required (e.g. GRID="LR=1e-5,5e-6 BSZ=8,16")')
    axes: list[tuple[str, list[str]]] = []
    for item in grid.split():
        key, sep, values = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"{SCRIPT}: GRID: '{item}' is not KEY=value,value,...")
        if key in RUNNER_SETS:
            raise RecipeError(f"{SCRIPT}: GRID: {key} is set per run by the runner; use {RUNNER_SETS[key]} instead")
        if key in NOT_SWEPT:
            raise RecipeError(f"{SCRIPT}: GRID: {key} says where a run logs, not what it trains; give it once")
        if key not in allowed:
            raise RecipeError(
                f"{SCRIPT}: GRID: unknown setting '{key}' (run_xtreme.sh takes {' '.join(sorted(allowed))})"
            )
        if any(key == k for k, _ in axes):
            raise RecipeError(f"{SCRIPT}: GRID: {key} is given twice")
        if key in fixed:
            raise RecipeError(
                f"{SCRIPT}: GRID: {key} is also given as {key}={fixed[key]} (a setting is either swept or fixed)"
            )
        listed = values.split(",")
        if not values or any(v == "" for v in listed):
            raise RecipeError(f"{SCRIPT}: GRID: {key} has an empty value in '{item}'")
        for value in listed:
            if not SAFE_VALUE.fullmatch(value):
                raise RecipeError(
                    f"{SCRIPT}: GRID: {key}={value}: a grid value names a folder; use letters, digits and ._+:@%=-"
                )
            if listed.count(value) > 1:
                raise RecipeError(f"{SCRIPT}: GRID: {key} lists {value} twice")
        axes.append((key, listed))
    return axes


def configurations(axes: list[tuple[str, list[str]]]) -> list[Configuration]:
    """Every combination, the first axis varying slowest (the grid's order, which also breaks ties in the report)."""
    combos: list[dict[str, str]] = [{}]
    for key, values in axes:
        combos = [{**combo, key: value} for combo in combos for value in values]
    return [Configuration(",".join(f"{k}={v}" for k, v in combo.items()), combo) for combo in combos]


def stages_of(stages: str, data: str) -> list[str]:
    """The stages run_seeds.sh will run: STAGES=, else its default (0,rdrop,r3f for a GLUE folder, 0,1,2 otherwise)."""
    if stages:
        listed = stages.split(",")
        bad = [s for s in listed if s not in STAGE_NAMES]
        if bad:
            raise RecipeError(
                f"{SCRIPT}: STAGES must be a comma-separated subset of 0,1,2,rdrop,r3f,kd (got '{stages}')"
            )
        return listed
    try:
        with open(os.path.join(data, "metadata.json"), encoding="utf-8") as handle:
            kind = json.load(handle).get("kind")
    except (OSError, ValueError):
        kind = None  # run_xtreme.sh says why, below
    return ["0", "rdrop", "r3f"] if kind == "glue" else ["0", "1", "2"]


def seconds_from_log(path: str, skip_first: bool = True) -> float | None:
    """Seconds per update from fairseq's ``train_inner`` lines of one train.log: the wall clock between the first
    and the last line over the updates between them when that is long enough to read (``wall=`` is in whole
    seconds), else the lines' ``ups`` (updates per second, 2 decimals). The first line (start-up) is left out
    when there are several."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = [line for line in handle if " | train_inner | " in line]
    except OSError:
        return None
    points = []
    for line in lines:
        fields = dict(re.findall(r"(\w+)=([0-9.e+-]+)", line))
        if "num_updates" in fields and "wall" in fields and "ups" in fields:
            points.append((int(float(fields["num_updates"])), float(fields["wall"]), float(fields["ups"])))
    if skip_first and len(points) > 2:
        points = points[1:]
    if len(points) >= 2 and points[-1][1] - points[0][1] >= 20 and points[-1][0] > points[0][0]:
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
    if not points or any(ups <= 0 for _, _, ups in points):
        return None
    counted = [(u - prev, ups) for (prev, _, _), (u, _, ups) in zip([(0, 0, 0), *points[:-1]], points)]
    updates = sum(n for n, _ in counted)
    return sum(n / ups for n, ups in counted) / updates if updates else None


def shape_of(config: Configuration, fixed: dict[str, str]) -> tuple:
    """What decides the cost of an update: every setting but the cost-free ones."""
    return tuple(sorted((k, v) for k, v in {**fixed, **config.settings}.items() if k not in COST_FREE))


def build(
    task: str,
    model: str,
    data: str,
    out_root: str,
    words: list[str],
    how: Invocation,
) -> Plan:
    """The plan of ``run_sweep.sh TASK <model.pt> <data_dir> <out_root> GRID=... [KEY=VALUE ...] [-- fairseq args]``."""
    from . import xtreme

    task_name = task.upper().replace("-", "")
    if task_name not in table.TASKS:
        raise RecipeError(f"{SCRIPT}: unknown task '{task_name}' ({xtreme.KNOWN_TASKS})")
    passed = setting_defaults(table.TASKS[task_name], how.interactive)
    allowed = set(passed) - set(RUNNER_SETS)
    for word in words:
        if word == "--":
            break
        key = word.partition("=")[0]
        if key in RUNNER_SETS and key not in OWN:
            raise RecipeError(f"{SCRIPT}: '{word}': the runner sets {key} per run; use {RUNNER_SETS[key]} instead")
    own, extra = parse_settings(words, {**OWN, **{k: "" for k in allowed}}, SCRIPT, how.header)
    fixed = {}
    for word in words:
        if word == "--":
            break
        key, _, value = word.partition("=")
        if key in allowed:
            fixed[key] = value  # the later of two wins, as run_xtreme.sh reads them
    axes = parse_grid(own["GRID"], fixed, allowed)
    if not re.fullmatch(r"[0-9]+(,[0-9]+)*", own["SEEDS"]):
        raise RecipeError(f"{SCRIPT}: SEEDS must be comma-separated integers (got '{own['SEEDS']}')")
    seeds = own["SEEDS"].split(",")
    stages = stages_of(own["STAGES"], data)
    max_runs = positive_int(own, "MAX_RUNS", SCRIPT)
    if own["LAUNCHER"] not in ("", "local", "slurm"):
        raise RecipeError(f"{SCRIPT}: LAUNCHER must be local or slurm, or empty (got '{own['LAUNCHER']}')")
    if own["ESTIMATE"] not in ("auto", "log", "0"):
        raise RecipeError(f"{SCRIPT}: ESTIMATE must be auto, log or 0 (got '{own['ESTIMATE']}')")
    dry = own["DRY_RUN"] != "0"
    configs = configurations(axes)
    runs = len(configs) * len(seeds) * len(stages)
    how.say(
        f"{SCRIPT}: {len(configs)} configurations ({' x '.join(f'{k} {len(v)}' for k, v in axes)}) x {len(seeds)} "
        f"seeds x {len(stages)} stages ({','.join(stages)}) = {runs} runs, in {out_root}/<configuration>/"
    )
    if runs > max_runs:
        raise RecipeError(
            f"{SCRIPT}: the grid has {runs} runs, more than MAX_RUNS={max_runs}; raise MAX_RUNS= to run them all"
        )
    todo = {
        c.name: [
            (seed, stage)
            for seed in seeds
            for stage in stages
            if (
                read_status(os.path.join(out_root, c.name, f"seed{seed}", "status", f"{STAGE_NAMES[stage]}.json")) or {}
            ).get("status")
            != "done"
        ]
        for c in configs
    }
    left = sum(len(v) for v in todo.values())
    if left < runs:
        how.say(f"{SCRIPT}: {runs - left} of them finished before (run_seeds.sh skips them); {left} to run")
    # Every configuration's settings checked by run_xtreme.sh's own planner, which also counts its updates.
    for config in configs:
        config.updates = _count_updates(task, model, data, out_root, config, fixed, extra, seeds[0], how)
    if own["ESTIMATE"] != "0" and left:
        hours = _estimate(task, model, data, out_root, configs, fixed, extra, stages, todo, own, dry, how)
        if own["MAX_HOURS"] and hours is not None and hours > float(own["MAX_HOURS"]):
            raise RecipeError(
                f"{SCRIPT}: the estimate, {hours:.2f} h, is more than MAX_HOURS={own['MAX_HOURS']}; raise it to run"
            )
    if not dry:
        _write_sweep_record(out_root, task_name, axes, configs, fixed, seeds, stages)
    command: list[str] = []
    for config in configs:
        run = [
            "bash",
            os.path.join(how.root, "run_scripts", "run_seeds.sh"),
            task,
            model,
            data,
            os.path.join(out_root, config.name),
            f"SEEDS={own['SEEDS']}",
            *([f"STAGES={own['STAGES']}"] if own["STAGES"] else []),
            *[w for w in _fixed_words(words) if not w.startswith("TENSORBOARD=")],
            *([f"TENSORBOARD={os.path.join(fixed['TENSORBOARD'], config.name)}"] if fixed.get("TENSORBOARD") else []),
            *[f"{k}={v}" for k, v in config.settings.items()],
            "REPORT=0",
            f"KEEP_INTERVAL={own['KEEP_INTERVAL']}",
            f"DRY_RUN={own['DRY_RUN']}",
            *(["--", *extra] if extra else []),
        ]
        command += [config.name, str(len(run)), *run]
    values = {k: own[k] for k in OWN if k not in ("GRID", "STAGES")}
    return Plan(command, f"{len(configs)} configurations, {runs} runs", values)


def read_plan(path: str) -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    """A plan file ``build`` wrote -> (its values, [(configuration name, run_seeds.sh command)])."""
    with open(path, encoding="utf-8") as handle:
        fields = handle.read().split("\0")[:-1]
    split = fields.index("--")
    values = dict(f.split("=", 1) for f in fields[:split])
    rest, runs = fields[split + 1 :], []
    while rest:
        name, count = rest[0], int(rest[1])
        runs.append((name, rest[2 : 2 + count]))
        rest = rest[2 + count :]
    return values, runs


def _fixed_words(words: list[str]) -> list[str]:
    """The KEY=VALUE words that go to every run (run_xtreme.sh's settings), in the order given."""
    out = []
    for word in words:
        if word == "--":
            break
        if word.partition("=")[0] not in OWN:
            out.append(word)
    return out


def _count_updates(task, model, data, out_root, config, fixed, extra, seed, how: Invocation) -> int:
    from . import xtreme

    words = [*[f"{k}={v}" for k, v in {**fixed, **config.settings}.items()], f"SEED={seed}", "STAGE=0", "DRY_RUN=1"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hydra's deprecation warnings, once per configuration
            plan = xtreme.build(
                task,
                model,
                data,
                os.path.join(out_root, config.name, f"seed{seed}", "plain"),
                [*words, "PROGRESS=0", *(["--", *extra] if extra else [])],
                Invocation(how.root, how.python, SCRIPT, say=lambda _line: None),
            )
    except RecipeError as err:
        raise RecipeError(f"{err}\n{SCRIPT}: configuration {config.name} is refused by run_xtreme.sh (above)") from None
    return int(plan.command[plan.command.index("--total-num-update") + 1])


def _stage_updates(config: Configuration, stage: str, settings: dict) -> int:
    """Stage 2 trains on the rows and their augmented copies: twice stage 0's updates, unless MAX_UPDATE caps both."""
    if stage != "2":
        return config.updates
    cap = settings.get("MAX_UPDATE")
    return config.updates if cap and int(cap) <= config.updates else 2 * config.updates


def _estimate(
    task, model, data, out_root, configs, fixed, extra, stages, todo, own, dry, how: Invocation
) -> float | None:
    """Print, per configuration, runs x updates x seconds per update, and the total; returns hours (None when
    any shape could not be measured)."""
    measured: dict[tuple, tuple[float, str]] = {}  # (shape, stage name) -> (seconds, where from)
    for config in configs:  # finished runs' logs first: any configuration of the same shape
        for seed_dir in _seed_dirs(os.path.join(out_root, config.name)):
            for stage in stages:
                key = (shape_of(config, fixed), STAGE_NAMES[stage])
                log = os.path.join(seed_dir, STAGE_SUBDIRS[stage], "train.log")
                if key not in measured and os.path.exists(log):
                    seconds = seconds_from_log(log)
                    if seconds:
                        measured[key] = (seconds, f"from {os.path.relpath(log, out_root)}")
    total, unknown = 0.0, []
    for config in configs:
        if not todo[config.name]:
            continue
        shape = shape_of(config, fixed)
        plain = (shape, "plain")
        if plain not in measured and own["ESTIMATE"] == "auto" and not dry:
            seconds = _probe(task, model, data, config, fixed, extra, int(own["PROBE_UPDATES"]), how)
            if seconds:
                measured[plain] = (seconds, f"timed: {own['PROBE_UPDATES']} updates of this shape")
        parts = []
        for stage in dict.fromkeys(stage for _, stage in todo[config.name]):
            name = STAGE_NAMES[stage]
            runs = sum(1 for _, s in todo[config.name] if s == stage)
            updates = _stage_updates(config, stage, {**fixed, **config.settings})
            found = measured.get((shape, name)) or measured.get(plain)
            if found is None:
                unknown.append(f"{config.name} {name}")
                parts.append(f"{name} {runs} x {updates} updates x ? s")
                continue
            seconds, source = found
            note = (
                source
                if (shape, name) in measured
                else f"{source}; plain fine-tuning's speed, a lower bound for {name}"
            )
            total += runs * updates * seconds
            parts.append(f"{name} {runs} x {updates} updates x {seconds:.3g} s ({note})")
        how.say(f"{SCRIPT}: estimate {config.name}: " + "; ".join(parts))
    if unknown:
        why = "a dry run times nothing" if dry else "no finished run of that shape (ESTIMATE=auto times a few updates)"
        how.say(f"{SCRIPT}: estimate: not measured for {len(unknown)} (configuration, stage) pairs ({why})")
    how.say(
        f"{SCRIPT}: estimated training time: {total / 3600:.2f} h ({total:.0f} s)"
        + (" for the measured part" if unknown else "")
        + ", one run after another, evaluations not included"
    )
    return None if unknown else total / 3600


def _seed_dirs(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if re.fullmatch(r"seed\d+", n)]


def _probe(task, model, data, config, fixed, extra, updates, how: Invocation) -> float | None:
    """A few timed updates of this shape (run_xtreme.sh, plain fine-tuning, nothing validated or saved), in a
    temporary folder; the first update (start-up) is not counted."""
    settings = {**fixed, **config.settings, "MAX_UPDATE": str(updates + 1), "VALIDATE_INTERVAL_UPDATES": "0"}
    settings.pop("TENSORBOARD", None)
    settings.pop("WANDB", None)
    folder = tempfile.mkdtemp(prefix="sweep-probe-")
    command = [
        "bash",
        os.path.join(how.root, "run_scripts", "run_xtreme.sh"),
        task,
        model,
        data,
        os.path.join(folder, "run"),
        *[f"{k}={v}" for k, v in settings.items()],
        "SEED=1",
        "STAGE=0",
        "PROGRESS=0",
        "--",
        *extra,
        "--log-interval",
        "1",
        "--disable-validation",
        "--no-save",
    ]
    how.say(f"{SCRIPT}: timing {updates} updates of {config.name}'s shape ...")
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = seconds_from_log(os.path.join(folder, "run", "train.log")) if done.returncode == 0 else None
        if done.returncode != 0:
            how.say(f"{SCRIPT}: the timed updates failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
        return seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_sweep_record(out_root, task, axes, configs, fixed, seeds, stages) -> None:
    """``<out_root>/sweep.json``: the grid, for stabletune-report (the configurations' order breaks its ties)."""
    os.makedirs(out_root, exist_ok=True)
    record = {
        "task": task,
        "grid": [[k, v] for k, v in axes],
        "configurations": [{"name": c.name, "settings": c.settings, "updates": c.updates} for c in configs],
        "fixed": fixed,
        "seeds": [int(s) for s in seeds],
        "stages": stages,
    }
    path = os.path.join(out_root, "sweep.json")
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        json.dump(record, out, indent=1)
    os.replace(path + ".tmp", path)
