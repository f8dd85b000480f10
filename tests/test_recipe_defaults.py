"""run_xtreme.sh's defaults, as the README states them, read from the fairseq-train command it prints
(DRY_RUN=1: the command is built and the schedule counted, nothing is trained), one case per task family."""

import sys

import pytest
from conftest import REPO, SHARED_SAMPLE, dry_run, needs_shared, preprocess_into, run


@pytest.mark.parametrize("family", ["sentence", "tagging", "qa"])
def test_optimiser_schedule_and_batch_defaults(family, e5_dir, toy_data, toy_panx, toy_xquad, tmp_path):
    task, data, warmup = {
        "sentence": ("XNLI", toy_data, 0.0),
        "tagging": ("PANX", toy_panx, 0.1),
        "qa": ("XQUAD", toy_xquad, 0.1),
    }[family]
    args, _ = dry_run(task, e5_dir, data, tmp_path / "run")
    assert args["--optimizer"] == "fused_adamw" and args["--weight-decay"] == "0.0" and args["--clip-norm"] == "1.0"
    assert args["--adam-betas"] == "(0.9,0.999)" and args["--adam-eps"] == "1e-8"
    assert args["--lr-scheduler"] == "polynomial_decay" and args["--end-learning-rate"] == "0.0"
    total = int(args["--total-num-update"])
    assert total > 0 and int(args["--warmup-updates"]) == int(total * warmup)
    assert args["--batch-size"] == "32" and args["--update-freq"] == "1"  # the reference's batch of 32
    assert args["--cpu"] is True and "--fp16" not in args  # no GPU here: fp32 on CPU, said so
    if family != "sentence":
        return  # the batch split below is the same shell arithmetic for every family
    # the effective batch stays 32: split over processes and accumulation steps
    args, out = dry_run(task, e5_dir, data, tmp_path / "run2", "NPROC=2", "UPDATE_FREQ=2")
    assert args["--batch-size"] == "8" and args["--update-freq"] == "2" and args["--distributed-world-size"] == "2"
    assert "effective batch 32" in out


@needs_shared
def test_pawsx_recipe(e5_dir, toy_dicts, tmp_path):
    data = preprocess_into(tmp_path / "data", SHARED_SAMPLE, "pawsx", e5_dir)
    args, out = dry_run("PAWSX", e5_dir, data, tmp_path / "run", "STAGE=1", f"DICT_DIR={toy_dicts}")
    assert float(args["--lr"]) == 1e-5 and args["--max-epoch"] == "10" and args["--warmup-updates"] == "0"
    assert args["--validate-interval-updates"] == "1000" and args["--best-checkpoint-metric"] == "acc_avg"
    # code-switching with probability 0.5; the reference's lambda 5 over PAWS-X's 2 classes
    assert args["--view-augmentation"] == "code_switch" and args["--code-switch-prob"] == "0.5"
    assert args["--dict-langs"] == "de" and args["--r1-lambda"] == "2.5"
    args, _ = dry_run(
        "PAWSX", e5_dir, data, tmp_path / "run", "STAGE=2", f"DICT_DIR={toy_dicts}", f"TEACHER={e5_dir / 'model.pt'}"
    )
    assert args["--copy-augmentation"] == "code_switch" and args["--view-augmentation"] == "code_switch"
    assert args["--r1-lambda"] == "2.5" and args["--r2-lambda"] == "1.0" and "--r2-hard-labels" not in args
    assert "effective batch 32" in out


def test_gpus_split_the_batch_and_train_in_fp16(e5_dir, toy_data, tmp_path, monkeypatch):
    """The GPU branch (no GPU here): the command built in-process with the GPU count such a machine reports."""
    from stabletune_fairseq.recipes import xtreme
    from stabletune_fairseq.recipes.plan import Invocation

    monkeypatch.setattr(xtreme, "gpu_count", lambda: 2)
    said = []

    def build(*settings):
        return xtreme.build(
            "XNLI",
            str(e5_dir / "model.pt"),
            str(toy_data),
            str(tmp_path / "run"),
            ["DRY_RUN=1", *settings],
            Invocation(str(REPO), sys.executable, "run_xtreme.sh", say=said.append),
        )

    plan = build()
    args = plan.command
    assert "--fp16" in args and "--cpu" not in args and args[args.index("--num-workers") + 1] == "2"
    assert args[args.index("--distributed-world-size") + 1] == "2" and args[args.index("--batch-size") + 1] == "16"
    assert "effective batch 32" in plan.info and (plan.values["NGPU"], plan.values["WORLD"]) == ("2", "2")
    plan = build("NPROC=1")  # fewer GPUs than the machine has: one process, the whole batch
    assert "--distributed-world-size" not in plan.command and "--fp16" in plan.command
    assert plan.command[plan.command.index("--batch-size") + 1] == "32" and plan.values["WORLD"] == "1"
    assert said == []  # no "no GPU found" line


def test_precision_setting(e5_dir, toy_data, tmp_path, monkeypatch):
    """PRECISION=bf16 on a CPU: the plugin's autocast option, said in the CPU line; refused in one line (status 2)
    where the CPU has no bf16 (STABLETUNE_CPU_BF16=0 makes this machine one of those, models/precision.py)."""
    monkeypatch.setenv("STABLETUNE_CPU_BF16", "1")
    args, out = dry_run("XNLI", e5_dir, toy_data, tmp_path / "run", "PRECISION=bf16")
    assert args["--cpu-precision"] == "bf16" and args["--cpu"] is True and "--fp16" not in args
    assert "training on CPU in bf16 (autocast, float32 weights" in out
    args, out = dry_run("XNLI", e5_dir, toy_data, tmp_path / "run")  # the default, auto: bf16 on a CPU with bf16
    assert args["--cpu-precision"] == "bf16" and "bf16 (autocast" in out and "PRECISION=auto: this CPU has bf16" in out
    args, out = dry_run("XNLI", e5_dir, toy_data, tmp_path / "run", "PRECISION=fp32")
    assert "--cpu-precision" not in args and "training on CPU in fp32" in out and "PRECISION=auto" not in out
    monkeypatch.setenv("STABLETUNE_CPU_BF16", "0")
    args, out = dry_run("XNLI", e5_dir, toy_data, tmp_path / "run")  # auto on a CPU without bf16: fp32, said
    assert "--cpu-precision" not in args and "fp32 (--fp16 needs CUDA); PRECISION=auto: this CPU has no bf16" in out
    monkeypatch.setenv("STABLETUNE_CPU_BF16", "0")
    refused = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            tmp_path / "run",
            "DRY_RUN=1",
            "PRECISION=bf16",
        ],
        check=False,
    )
    assert refused.returncode == 2 and "PRECISION=bf16: this CPU has no bf16 instructions" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            tmp_path / "run",
            "DRY_RUN=1",
            "PRECISION=fp8",
        ],
        check=False,
    )
    assert bad.returncode == 2 and "PRECISION must be auto, fp32 or bf16 (got 'fp8')" in bad.stderr
