"""run_sweep.sh on the toy data: the grid's checks (one line each), MAX_RUNS, a 2x2 grid x 2 seeds dry run printing
every command, a real 2x1 grid x 2 seeds (every run trained and evaluated, the time estimate measured, the report), a
re-run skipping what is finished, a preempted sweep resumed, and submitit's local executor (real processes)."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, drawn_pixels, run

# --log-interval 1: a train_inner line per update, for the measured seconds per update
SETTINGS = ["STAGES=0", "MAX_UPDATE=3", "BSZ=8", "FREEZE_EMBEDDINGS=1"]
FAIRSEQ = ["--", "--log-interval", "1"]


@pytest.fixture(scope="module")
def small_data(toy_xtreme, e5_dir, tmp_path_factory):
    """The toy XNLI data with two short dev languages (en, de), as test_run_seeds.py's."""
    download = tmp_path_factory.mktemp("sweep-download")
    (download / "xnli").mkdir()
    shutil.copy(toy_xtreme / "xnli" / "train-en.tsv", download / "xnli" / "train-en.tsv")
    for name in ("dev-en.tsv", "dev-de.tsv"):
        lines = (toy_xtreme / "xnli" / name).read_text(encoding="utf-8").splitlines(keepends=True)[:40]
        (download / "xnli" / name).write_text("".join(lines), encoding="utf-8")
    out = tmp_path_factory.mktemp("sweep-data")
    run(["bash", "preprocess/xtreme/process.sh", download, "xnli", e5_dir, out])
    return out / "xnli"


def sweep(e5_dir, data, out, *extra, fairseq=FAIRSEQ):
    return run(
        ["bash", "run_scripts/run_sweep.sh", "XNLI", e5_dir / "model.pt", data, out, *extra, *fairseq], check=False
    )


@pytest.mark.parametrize(
    "grid, extra, message",
    [
        ("FOO=1,2", [], "run_sweep.sh: GRID: unknown setting 'FOO' (run_xtreme.sh takes "),
        ("LR=", [], "run_sweep.sh: GRID: LR has an empty value in 'LR='"),
        ("LR=1e-5,,2e-5", [], "run_sweep.sh: GRID: LR has an empty value in 'LR=1e-5,,2e-5'"),
        ("LR=1e-5 LR=2e-5", [], "run_sweep.sh: GRID: LR is given twice"),
        ("LR=1e-5,1e-5", [], "run_sweep.sh: GRID: LR lists 1e-5 twice"),
        ("LR=1e-5,2e-5", ["LR=3e-5"], "run_sweep.sh: GRID: LR is also given as LR=3e-5 (a setting is either swept"),
        ("SEED=1,2", [], "run_sweep.sh: GRID: SEED is set per run by the runner; use SEEDS= instead"),
        ("DICT_DIR=a/b", [], "run_sweep.sh: GRID: DICT_DIR=a/b: a grid value names a folder"),
        ("", [], "run_sweep.sh: GRID= is required"),
    ],
)
def test_a_bad_grid_is_refused_in_one_line(grid, extra, message, e5_dir, small_data, tmp_path):
    result = sweep(e5_dir, small_data, tmp_path / "out", f"GRID={grid}", *extra, fairseq=[])
    assert result.returncode == 2, result.stdout + result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert not (tmp_path / "out").exists()


def test_max_runs_refuses_before_anything_runs(e5_dir, small_data, tmp_path):
    result = sweep(e5_dir, small_data, tmp_path / "out", "GRID=LR=1e-4,5e-5 BSZ=8,16", "SEEDS=1,2,3", "MAX_RUNS=20")
    assert result.returncode == 2
    assert "the grid has 36 runs, more than MAX_RUNS=20" in result.stderr  # 4 configurations x 3 seeds x 3 stages
    assert not (tmp_path / "out").exists()


def test_dry_run_of_a_2x2_grid_over_2_seeds_prints_every_command(e5_dir, small_data, tmp_path):
    out = tmp_path / "dry"
    result = sweep(e5_dir, small_data, out, "GRID=LR=1e-4,5e-5 BSZ=8,16", "SEEDS=1,2", "STAGES=0", "DRY_RUN=1")
    assert result.returncode == 0, result.stderr
    assert "4 configurations (LR 2 x BSZ 2) x 2 seeds x 1 stages (0) = 8 runs" in result.stdout
    train = [shlex.split(line) for line in result.stdout.splitlines() if "run_xtreme.sh" in line]
    assert sorted(
        (Path(c[5]).relative_to(out).as_posix(), *[w for w in c if w[:3] in ("LR=", "BSZ")]) for c in train
    ) == [
        (f"LR={lr},BSZ={bsz}/seed{seed}/plain", f"LR={lr}", f"BSZ={bsz}")
        for lr in ("1e-4", "5e-5")
        for bsz in ("16", "8")
        for seed in (1, 2)
    ]
    assert all(c[-3:] == ["--", "--log-interval", "1"] for c in train)
    assert sum("stabletune_fairseq.cli.evaluate_rules" in line for line in result.stdout.splitlines()) == 8
    assert "a dry run times nothing" in result.stdout and "stabletune_fairseq.cli.report" in result.stdout
    assert not out.exists()


@pytest.fixture(scope="module")
def trained(e5_dir, small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    result = sweep(e5_dir, small_data, out, "GRID=LR=1e-4,5e-5", "SEEDS=1,2", *SETTINGS)
    return out, result


def test_a_2x1_grid_over_2_seeds_trains_estimates_and_reports(trained):
    out, result = trained
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    # the estimate: 3 updates a run, seconds per update timed before anything ran
    assert "run_sweep.sh: timing 3 updates of LR=1e-4's shape" in log
    estimate = [line for line in log.splitlines() if line.startswith("run_sweep.sh: estimate LR=")]
    assert len(estimate) == 2 and all(
        "plain 2 x 3 updates x " in line and "(timed: 3 updates" in line for line in estimate
    )
    for lr in ("1e-4", "5e-5"):
        for seed in (1, 2):
            status = json.loads((out / f"LR={lr}" / f"seed{seed}" / "status" / "plain.json").read_text())
            assert status["status"] == "done" and status["settings"]["settings"]["LR"] == lr
            assert (out / f"LR={lr}" / f"seed{seed}" / "plain" / "eval" / "best-avg-valid" / "results.json").is_file()
    record = json.loads((out / "sweep.json").read_text())
    assert [c["name"] for c in record["configurations"]] == ["LR=1e-4", "LR=5e-5"] and record["seeds"] == [1, 2]
    report = json.loads((out / "report" / "sweep.json").read_text())
    table = report["scores"]["plain"]["valid"]["best-avg"]
    assert set(table) == {"LR=1e-4", "LR=5e-5"} and all(cells["average"]["n"] == 2 for cells in table.values())
    chosen = report["selection"]["plain"]["avg"]["chosen"]
    means = {n: cells["average"]["mean"] for n, cells in table.items()}
    assert means[chosen] == max(means.values())
    assert drawn_pixels(out / "report" / "sweep.png") > 0.002


def test_a_rerun_skips_finished_runs_and_measures_from_their_logs(trained, e5_dir, small_data):
    out, _ = trained
    stamp = (out / "LR=1e-4" / "seed1" / "plain" / "checkpoint_last.pt").stat().st_mtime_ns
    result = sweep(e5_dir, small_data, out, "GRID=LR=1e-4,5e-5", "SEEDS=1,2,3", *SETTINGS, "REPORT=0", "ESTIMATE=log")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "run_sweep.sh: 4 of them finished before (run_seeds.sh skips them); 2 to run" in log
    assert log.count("seed 1 plain: finished before, skipped") == 2 and log.count("seed 3 plain: trained in") == 2
    # seconds per update read from a finished run's train.log, not timed again
    assert "timing" not in log and "(from LR=1e-4/seed1/plain/train.log)" in log
    assert (out / "LR=1e-4" / "seed1" / "plain" / "checkpoint_last.pt").stat().st_mtime_ns == stamp


def test_a_preempted_sweep_stops_with_75_and_resumes(e5_dir, small_data, tmp_path):
    out = tmp_path / "out"
    command = ["bash", "run_scripts/run_sweep.sh", "XNLI", str(e5_dir / "model.pt"), str(small_data), str(out)]
    command += ["GRID=LR=1e-4", "SEEDS=1", "STAGES=0", "MAX_UPDATE=4", "BSZ=8", "FREEZE_EMBEDDINGS=1", "ESTIMATE=0"]
    command += ["REPORT=0", *FAIRSEQ]
    train_log = out / "LR=1e-4" / "seed1" / "plain" / "train.log"
    process = subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not (train_log.exists() and "num_updates=1," in train_log.read_text()):
            assert process.poll() is None and time.time() < deadline, "no logged update"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGTERM)  # to run_sweep.sh alone: passed on to run_seeds.sh, then training
        _, errors = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 75, errors[-3000:]
    assert "run_sweep.sh: preempted during LR=1e-4 (exit 75)" in errors
    status = out / "LR=1e-4" / "seed1" / "status" / "plain.json"
    assert json.loads(status.read_text())["status"] == "preempted"
    result = run(command, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "seed 1 plain: resuming (it had preempted)" in result.stdout
    assert "Loaded checkpoint" in train_log.read_text() and json.loads(status.read_text())["status"] == "done"


def test_submitit_local_executor_runs_the_jobs_as_real_processes(trained, e5_dir, small_data):
    pytest.importorskip("submitit")
    out, _ = trained
    result = sweep(
        e5_dir, small_data, out, "GRID=LR=1e-4,5e-5", "SEEDS=1,2,3,4", *SETTINGS, "LAUNCHER=local", "PARALLEL=2"
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "8 jobs (configuration x seed, every stage in order) on local processes, 2 at a time" in log
    assert all(f"job LR={lr} seed {seed}: done" in log for lr in ("1e-4", "5e-5") for seed in (1, 2, 3, 4))
    # each job is run_seeds.sh for one seed, in a process of submitit's: its output in <out_root>/.submitit
    outputs = "".join(p.read_text() for p in (out / ".submitit").glob("*_log.out"))
    assert "seed 4 plain: trained in" in outputs and "seed 1 plain: finished before, skipped" in outputs
    report = json.loads((out / "report" / "sweep.json").read_text())
    assert report["scores"]["plain"]["valid"]["best-avg"]["LR=5e-5"]["average"]["n"] == 4
