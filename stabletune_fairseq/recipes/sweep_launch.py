"""run_sweep.sh ``LAUNCHER=local|slurm``: each configuration and seed a job of submitit (every stage of that seed in
order, by run_seeds.sh, so resuming, skipping and failures are handled as in one run after another), submitted as a
SLURM job array or run as local processes ``PARALLEL=`` at a time; a job that exits 75 (preempted, saved: see
reliability/exit_status.py) is submitted again, up to ``MAX_REQUEUE=`` times, and resumes from its checkpoint.

On SLURM, submitit's own pre-timeout / preemption signal (USR2, ``--signal``) reaches the job's Python process only:
the run is started in a session of its own, and ``SweepJob.checkpoint`` passes SIGUSR1 on to it (run_seeds.sh
passes it to training, which saves and exits 75), waits for it, and has submitit requeue the same job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from ..reliability.exit_status import PREEMPTED
from .plan import RecipeError
from .sweep import read_plan

POLL_S = 2.0
SAVE_WAIT_S = 120  # how long a preempted run may take to save before the job is requeued anyway


class SweepJob:
    """One configuration and seed: ``run_seeds.sh ... SEEDS=<seed>``; returns its exit status."""

    def __init__(self, name: str, command: list[str]):
        self.name, self.command = name, command
        self._process: subprocess.Popen | None = None

    def __call__(self) -> int:
        self._process = subprocess.Popen(self.command, start_new_session=True)
        return self._process.wait()

    def checkpoint(self, *args, **kwargs):
        import submitit

        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGUSR1)
            try:
                process.wait(timeout=SAVE_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        return submitit.helpers.DelayedSubmission(SweepJob(self.name, self.command))

    def __getstate__(self) -> dict:
        return {"name": self.name, "command": self.command, "_process": None}


def jobs_of(plan: str) -> tuple[dict[str, str], list[SweepJob]]:
    """Each configuration's run_seeds.sh command, once per seed (its ``SEEDS=`` word set to that seed)."""
    values, configs = read_plan(plan)
    jobs = []
    for name, command in configs:
        end = command.index("--") if "--" in command else len(command)
        for seed in values["SEEDS"].split(","):
            words = [f"SEEDS={seed}" if w.startswith("SEEDS=") and i < end else w for i, w in enumerate(command)]
            jobs.append(SweepJob(f"{name} seed {seed}", words))
    return values, jobs


def make_executor(values: dict[str, str], folder: str):
    try:
        import submitit
    except ImportError:
        raise RecipeError(
            "run_sweep.sh: LAUNCHER= needs the submitit package (bash install.sh --bench, or pip install submitit)"
        ) from None
    if values["LAUNCHER"] == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=int(values["SLURM_TIME"]))
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    extra = {"account": values["SLURM_ACCOUNT"]} if values["SLURM_ACCOUNT"] else {}
    parameters = {
        "timeout_min": int(values["SLURM_TIME"]),
        "gpus_per_node": int(values["SLURM_GPUS"]),
        "cpus_per_task": int(values["SLURM_CPUS"]),
        "tasks_per_node": 1,
        "nodes": 1,
        "name": "stabletune-sweep",
        "slurm_additional_parameters": extra,
    }
    if values["SLURM_PARTITION"]:
        parameters["slurm_partition"] = values["SLURM_PARTITION"]
    if values["SLURM_MEM_GB"]:
        parameters["mem_gb"] = int(values["SLURM_MEM_GB"])
    if values["SLURM_PARALLEL"]:
        parameters["slurm_array_parallelism"] = int(values["SLURM_PARALLEL"])
    executor.update_parameters(**parameters)
    return executor


def launch(plan: str, out_root: str, say: Callable[[str], None] = print) -> int:
    """Submit every job, wait for all; 0 when all finished, 1 when any failed, 75 when any was still preempted
    after ``MAX_REQUEUE`` submissions (re-running the sweep resumes it)."""
    values, jobs = jobs_of(plan)
    where = (
        "SLURM (a job array)" if values["LAUNCHER"] == "slurm" else f"local processes, {values['PARALLEL']} at a time"
    )
    say(f"run_sweep.sh: {len(jobs)} jobs (configuration x seed, every stage in order) on {where}")
    if values["DRY_RUN"] != "0":
        for job in jobs:
            say(f"job {job.name}: " + " ".join(job.command))
        return 0
    executor = make_executor(values, os.path.join(out_root, ".submitit"))
    parallel = int(values["PARALLEL"]) if values["LAUNCHER"] == "local" else len(jobs)
    max_requeue = int(values["MAX_REQUEUE"])
    pending, running, submitted, failed, preempted = list(jobs), {}, {}, [], []
    while pending or running:
        batch = pending[: max(parallel - len(running), 0)]
        pending = pending[len(batch) :]
        if batch:
            with executor.batch():
                handles = [executor.submit(job) for job in batch]
            for job, handle in zip(batch, handles):
                submitted[job.name] = submitted.get(job.name, 0) + 1
                running[job.name] = (job, handle)
                say(f"job {job.name}: submitted ({handle.job_id}; its output in {handle.paths.stdout.parent})")
        time.sleep(POLL_S)
        for name, (job, handle) in list(running.items()):
            if not handle.done():
                continue
            del running[name]
            try:
                status = handle.result()
            except Exception as error:  # the job itself failed (killed, out of memory, ...): submitit's reason
                say(f"job {name}: FAILED ({str(error).strip().splitlines()[-1][:300]})")
                failed.append(name)
                continue
            if status == 0:
                say(f"job {name}: done")
            elif status == PREEMPTED and submitted[name] <= max_requeue:
                say(f"job {name}: preempted (exit {PREEMPTED}); submitted again, it resumes from its checkpoint")
                pending.insert(0, job)
            elif status == PREEMPTED:
                say(f"job {name}: preempted {submitted[name]} times; re-run the sweep to resume it")
                preempted.append(name)
            else:
                say(f"job {name}: FAILED (exit {status}); its runs' logs are in <configuration>/seed<N>/logs/")
                failed.append(name)
    if failed:
        say(f"run_sweep.sh: failed jobs: {', '.join(failed)}")
        return 1
    return PREEMPTED if preempted else 0
