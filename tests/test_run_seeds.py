"""run_seeds.sh on the toy data with real fairseq-train runs: every seed and stage, the evaluation of each
selection rule, the report; a seed that fails does not stop the others; a re-run skips what is finished,
evaluates what was trained but not evaluated, and refuses a finished run with other settings."""

import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, drawn_pixels, run

# SAVE_INTERVAL_UPDATES=1: every run writes an interval checkpoint (checkpoint_1_1.pt), which a finished run drops
SETTINGS = ["MAX_UPDATE=1", "BSZ=8", "LR=1e-4", "FREEZE_EMBEDDINGS=1", "SAVE_INTERVAL_UPDATES=1"]


@pytest.fixture(scope="module")
def small_data(toy_xtreme, e5_dir, tmp_path_factory):
    """The toy XNLI data with two short dev languages (en, de): validations and evaluations take seconds."""
    download = tmp_path_factory.mktemp("seeds-download")
    (download / "xnli").mkdir()
    shutil.copy(toy_xtreme / "xnli" / "train-en.tsv", download / "xnli" / "train-en.tsv")
    for name in ("dev-en.tsv", "dev-de.tsv"):  # 40 pairs each
        lines = (toy_xtreme / "xnli" / name).read_text(encoding="utf-8").splitlines(keepends=True)[:40]
        (download / "xnli" / name).write_text("".join(lines), encoding="utf-8")
    out = tmp_path_factory.mktemp("seeds-data")
    run(["bash", "preprocess/xtreme/process.sh", download, "xnli", e5_dir, out])
    return out / "xnli"


def run_seeds(e5_dir, data, out, toy_dicts, *extra):
    return run(
        [
            "bash",
            "run_scripts/run_seeds.sh",
            "XNLI",
            e5_dir / "model.pt",
            data,
            out,
            "SEEDS=1,2",
            f"DICT_DIR={toy_dicts}",
            *SETTINGS,
            *extra,
        ],
        check=False,
    )


@pytest.fixture(scope="module")
def seeds(e5_dir, small_data, toy_dicts, tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "out"
    (out / "seed2").mkdir(parents=True)
    (out / "seed2" / "plain").write_text("a file where the save dir should be: every seed-2 run fails")
    (out / "seed2" / "xtune").write_text("likewise")
    result = run_seeds(e5_dir, small_data, out, toy_dicts, "PROGRESS=1", "--", "--log-interval", "1")
    return out, result


def test_every_stage_trained_evaluated_and_reported_while_a_seed_fails(seeds):
    out, result = seeds
    log = result.stdout + result.stderr
    assert result.returncode == 1, log[-3000:]
    assert "seed 2 plain: FAILED (exit" in log and "seed 2 stage1: FAILED (exit" in log
    assert "seed 2 stage2: skipped (its stage 1 failed)" in log
    assert "run_seeds.sh: failed: seed2/plain seed2/stage1 seed2/stage2" in log
    for stage, sub in (("plain", "plain"), ("stage1", "xtune"), ("stage2", "xtune/stage2")):
        assert f"seed 1 {stage}: evaluated in" in log
        run_dir = out / "seed1" / sub
        assert json.loads((out / "seed1" / "status" / f"{stage}.json").read_text())["status"] == "done"
        assert (run_dir / "checkpoint_best_acc_en.pt").is_file() and (run_dir / "checkpoint_last.pt").is_file()
        history = [json.loads(line) for line in (run_dir / "valid_history.jsonl").read_text().splitlines()]
        assert [r["num_updates"] for r in history] == [1] and "acc_en" in history[0]
        for rule in ("best-avg", "best-en", "last"):
            results = json.loads((run_dir / "eval" / f"{rule}-valid" / "results.json").read_text())
            assert (
                results["rule"] == rule and results["num_updates"] == 1 and set(results["per_language"]) == {"de", "en"}
            )
            assert (run_dir / "eval" / f"{rule}-valid" / "predictions" / "valid-de.tsv").is_file()
        # one update, one checkpoint: evaluated once, the other rules' results copied
        assert (run_dir / "eval" / "evaluate.log").read_text().count(": evaluating ") == 1
        # its interval checkpoint was written, and removed once the run was done (KEEP_INTERVAL=0)
        assert f"Saved checkpoint {run_dir / 'checkpoint_1_1.pt'}" in (run_dir / "train.log").read_text()
        assert not list(run_dir.glob("checkpoint_[0-9]*_[0-9]*.pt"))
        # the full log in the run's train.log; the console (PROGRESS=1) got one progress line, rewritten in place
        assert "| train_inner | epoch 001:      1 / " in (run_dir / "train.log").read_text()
        console = (out / "seed1" / "logs" / f"{stage}.log").read_bytes().decode()  # read_text() would turn \r into \n
        assert "\r\x1b[Kepoch 001:      1 / " in console and "| train_inner |" not in console
    assert json.loads((out / "seed2" / "status" / "plain.json").read_text())["status"] == "failed"
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["seeds"] == [1, 2] and report["scores"]["valid"]["best-avg"]["stage2"]["accuracy"]["en"]["n"] == 1
    assert "seed 2 plain: failed (exit 1)" in report["missing"]
    # drawn: bars; and the one point of every curve of these one-update runs (measured 0.04% of the pixels, the legend
    # alone is under 0.02%: a single point drawn without a marker, as before, showed nothing)
    assert drawn_pixels(out / "report" / "scores.png") > 0.02 and drawn_pixels(out / "report" / "curves.png") > 0.0003


def test_a_rerun_skips_what_is_finished_and_evaluates_what_was_only_trained(seeds, e5_dir, small_data, toy_dicts):
    out, _ = seeds
    last = out / "seed1" / "plain" / "checkpoint_last.pt"
    stamp = last.stat().st_mtime_ns
    status = out / "seed1" / "status" / "stage1.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "status": "trained"}))
    shutil.rmtree(out / "seed1" / "xtune" / "eval")
    result = run_seeds(e5_dir, small_data, out, toy_dicts, "PROGRESS=1", "--", "--log-interval", "1")
    log = result.stdout + result.stderr
    assert result.returncode == 1 and "seed 2 plain: FAILED" in log  # still failing, still reported
    assert "seed 1 plain: finished before, skipped" in log and "seed 1 stage2: finished before, skipped" in log
    assert "seed 1 stage1: trained before; evaluating" in log and "seed 1 stage1: trained in" not in log
    assert last.stat().st_mtime_ns == stamp
    assert (out / "seed1" / "xtune" / "eval" / "last-valid" / "results.json").is_file()
    assert json.loads(status.read_text())["status"] == "done"


def test_other_settings_on_a_finished_run_are_refused(seeds, e5_dir, small_data, toy_dicts):
    out, _ = seeds
    result = run_seeds(e5_dir, small_data, out, toy_dicts, "LR=2e-4", "REPORT=0")
    assert result.returncode == 1
    assert "seed 1 plain: FAILED: run before with other settings" in result.stderr


def test_a_preempted_run_is_marked_stops_with_75_and_a_rerun_resumes_it(e5_dir, small_data, tmp_path):
    """SIGTERM to run_seeds.sh mid-run: passed on, the run saves and stops, its status says preempted, run_seeds.sh
    exits 75; the same command again (with KEEP_INTERVAL=1, run_seeds' own setting) resumes that run from its
    checkpoint and finishes it, keeping its two newest interval checkpoints (docs/reports.md)."""
    import os
    import signal
    import subprocess
    import time

    import torch
    from conftest import REPO

    out = tmp_path / "out"
    command = [
        "bash",
        "run_scripts/run_seeds.sh",
        "XNLI",
        str(e5_dir / "model.pt"),
        str(small_data),
        str(out),
        "SEEDS=1",
        "STAGES=0",
        "REPORT=0",
        "MAX_UPDATE=4",
        "BSZ=8",
        "LR=1e-4",
        "FREEZE_EMBEDDINGS=1",
        "SAVE_INTERVAL_UPDATES=1",
    ]
    fairseq_args = ["--", "--log-interval", "1"]
    run_dir, status = out / "seed1" / "plain", out / "seed1" / "status" / "plain.json"
    updates = lambda: torch.load(run_dir / "checkpoint_last.pt", map_location="cpu", weights_only=True)[
        "optimizer_history"
    ][-1]["num_updates"]
    process = subprocess.Popen(
        command + fairseq_args, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + 300
        while not ((run_dir / "train.log").exists() and "num_updates=1," in (run_dir / "train.log").read_text()):
            assert process.poll() is None and time.time() < deadline, "no logged update"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGTERM)  # to run_seeds.sh alone
        _, errors = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 75, errors[-3000:]
    assert "run_seeds.sh: preempted during seed 1 plain (exit 75); re-run the same command to resume" in errors
    record = json.loads(status.read_text())
    assert (record["status"], record["exit"]) == ("preempted", 75)
    stopped = updates()
    assert 1 <= stopped < 4 and not (run_dir / "eval").exists()
    result = run(command[:-1] + ["KEEP_INTERVAL=1", command[-1]] + fairseq_args, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "seed 1 plain: resuming (it had preempted)" in result.stdout
    assert (
        f"Loaded checkpoint {run_dir / 'checkpoint_last.pt'} (epoch 1 @ {stopped} updates)"
        in (run_dir / "train.log").read_text()
    )
    assert json.loads(status.read_text())["status"] == "done" and updates() == 4
    assert (run_dir / "eval" / "last-valid" / "results.json").is_file()
    # kept (KEEP_INTERVAL=1): the two newest, as run_xtreme.sh's --keep-interval-updates 2 leaves them
    interval = sorted(p.name for p in run_dir.glob("checkpoint_[0-9]*_[0-9]*.pt"))
    assert interval == ["checkpoint_1_3.pt", "checkpoint_1_4.pt"]


def test_dry_run_prints_every_command_and_runs_nothing(e5_dir, small_data, toy_dicts, tmp_path):
    result = run_seeds(
        e5_dir, small_data, tmp_path / "dry", toy_dicts, "DRY_RUN=1", "NPROC=2", "--", "--log-interval", "1"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for seed in (1, 2):
        for stage, save in ((0, "plain"), (1, "xtune"), (2, "xtune")):
            assert any(
                f"seed{seed}/{save} SEED={seed} STAGE={stage} " in line
                and "NPROC=2" in line
                and line.rstrip().endswith("-- --log-interval 1")
                for line in lines
            ), result.stdout
    assert sum("stabletune_fairseq.cli.evaluate_rules" in line for line in lines) == 6
    assert any("stabletune_fairseq.cli.report" in line for line in lines)
    assert not (tmp_path / "dry").exists()


def test_seed_and_stage_are_the_runners_to_set(e5_dir, small_data, toy_dicts, tmp_path):
    result = run_seeds(e5_dir, small_data, tmp_path / "x", toy_dicts, "STAGE=1")
    assert result.returncode == 2 and "set SEEDS= and STAGES= instead" in result.stderr
    result = run_seeds(e5_dir, small_data, tmp_path / "x", toy_dicts, "REG=rdrop")
    assert result.returncode == 2 and "'REG=rdrop': add rdrop or r3f to STAGES= instead" in result.stderr
    result = run_seeds(e5_dir, small_data, tmp_path / "x", toy_dicts, "STAGES=0,dropout")
    assert (
        result.returncode == 2
        and "STAGES must be a comma-separated subset of 0,1,2,rdrop,r3f,kd (got '0,dropout')" in result.stderr
    )


def test_dry_run_of_a_regulariser_stage(e5_dir, small_data, toy_dicts, tmp_path):
    """STAGES=0,rdrop: plain fine-tuning and R-Drop per seed (REG=rdrop, its own save dir; RDROP_ALPHA= for it only)."""
    result = run_seeds(
        e5_dir,
        small_data,
        tmp_path / "dry",
        toy_dicts,
        "DRY_RUN=1",
        "STAGES=0,rdrop",
        "RDROP_ALPHA=0.5",
        "--",
        "--log-interval",
        "1",
    )
    assert result.returncode == 0, result.stderr
    train = [shlex.split(line) for line in result.stdout.splitlines() if "run_xtreme.sh" in line]
    assert [(Path(c[5]).relative_to(tmp_path / "dry").as_posix(), c[6:9]) for c in train] == [
        ("seed1/plain", ["SEED=1", "STAGE=0", f"DICT_DIR={toy_dicts}"]),
        ("seed1/rdrop", ["SEED=1", "STAGE=0", "REG=rdrop"]),
        ("seed2/plain", ["SEED=2", "STAGE=0", f"DICT_DIR={toy_dicts}"]),
        ("seed2/rdrop", ["SEED=2", "STAGE=0", "REG=rdrop"]),
    ]
    assert [("RDROP_ALPHA=0.5" in c, c[-3:]) for c in train] == [
        (stage == "rdrop", ["--", "--log-interval", "1"]) for _ in (1, 2) for stage in ("plain", "rdrop")
    ]
    evaluated = [
        line.split()[3] for line in result.stdout.splitlines() if "stabletune_fairseq.cli.evaluate_rules" in line
    ]
    assert [Path(p).relative_to(tmp_path / "dry").as_posix() for p in evaluated] == [
        "seed1/plain",
        "seed1/rdrop",
        "seed2/plain",
        "seed2/rdrop",
    ]


def test_glue_stages(tmp_path):
    """A GLUE task folder: plain, R-Drop and R3F by default; xTune's stages refused before anything runs."""
    data = tmp_path / "rte"
    data.mkdir()
    (data / "metadata.json").write_text(json.dumps({"task": "rte", "kind": "glue", "splits": {}}))

    def glue_seeds(*extra):
        return run(
            [
                "bash",
                "run_scripts/run_seeds.sh",
                "RTE",
                tmp_path / "model.pt",
                data,
                tmp_path / "out",
                "SEEDS=3",
                "DRY_RUN=1",
                *extra,
            ],
            check=False,
        )

    result = glue_seeds()
    assert result.returncode == 0, result.stderr
    train = [shlex.split(line) for line in result.stdout.splitlines() if "run_xtreme.sh" in line]
    assert [(Path(c[5]).name, c[6:]) for c in train] == [
        ("plain", ["SEED=3", "STAGE=0"]),
        ("rdrop", ["SEED=3", "STAGE=0", "REG=rdrop"]),
        ("r3f", ["SEED=3", "STAGE=0", "REG=r3f"]),
    ]
    result = glue_seeds("STAGES=0,1")
    assert result.returncode == 2 and "xTune's stages 1 and 2 are for XTREME's cross-lingual tasks" in result.stderr


def test_single_run_report(seeds, tmp_path):
    out, _ = seeds
    result = run(
        [sys.executable, "-m", "stabletune_fairseq.cli.report", out / "seed1" / "plain", "--out", tmp_path / "r"],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "| this run (n=1) |" in result.stdout and "fairseq" not in result.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["seeds"] == [] and report["rules"] == ["best-avg", "best-en", "last"]


def test_a_finished_run_quoted_another_way_has_the_same_settings(tmp_path):
    """The settings compared are the recipe's arguments, not the command's quoting: a status file whose command line
    quotes the same words otherwise (e.g. written by another bash) is the same run; another value is not."""
    data = tmp_path / "rte data"
    data.mkdir()
    (data / "metadata.json").write_text(json.dumps({"task": "rte", "kind": "glue", "splits": {}}))
    out = tmp_path / "out"
    train = [
        "bash",
        str(REPO / "run_scripts" / "run_xtreme.sh"),
        "RTE",
        str(tmp_path / "model.pt"),
        str(data),
        str(out / "seed3" / "plain"),
        "SEED=3",
        "STAGE=0",
        "LR=1e-5",
        "VALID_LANGS=en",
    ]
    status = out / "seed3" / "status" / "plain.json"
    status.parent.mkdir(parents=True)

    def rerun(*extra):
        return run(
            [
                "bash",
                "run_scripts/run_seeds.sh",
                "RTE",
                tmp_path / "model.pt",
                data,
                out,
                "SEEDS=3",
                "STAGES=0",
                "REPORT=0",
                *extra,
            ],
            check=False,
        )

    quoted = " ".join(f'"{word}"' for word in train)  # bash's printf %q writes 'rte data' as rte\ data
    status.write_text(json.dumps({"status": "done", "exit": 0, "wall_s": 5, "command": quoted}))
    result = rerun("LR=1e-5", "VALID_LANGS=en")
    assert result.returncode == 0 and "seed 3 plain: finished before, skipped" in result.stdout, result.stderr
    result = rerun("VALID_LANGS=en", "LR=1e-5")  # the same settings in another order
    assert result.returncode == 0 and "seed 3 plain: finished before, skipped" in result.stdout, result.stderr
    result = rerun("LR=2e-5", "VALID_LANGS=en")
    assert result.returncode == 1 and "seed 3 plain: FAILED: run before with other settings" in result.stderr
