"""run_xtreme.sh's defaults, as the README states them, read from the fairseq-train command it prints
(DRY_RUN=1: the command is built and the schedule counted, nothing is trained), one case per task family."""
import shlex

import pytest

from conftest import run


def dry_run(task, e5_dir, data, save_dir, *settings):
    result = run(["bash", "run_scripts/run_xtreme.sh", task, e5_dir / "model.pt", data, save_dir, "DRY_RUN=1", *settings])
    command = next(line for line in result.stdout.splitlines() if "fairseq-train " in line)
    words = shlex.split(command)
    return {words[i]: words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True
            for i in range(len(words)) if words[i].startswith("--")}, result.stdout


@pytest.mark.parametrize("family", ["sentence", "tagging", "qa"])
def test_optimiser_schedule_and_batch_defaults(family, e5_dir, toy_data, toy_panx, toy_xquad, tmp_path):
    task, data, warmup = {"sentence": ("XNLI", toy_data, 0.0), "tagging": ("PANX", toy_panx, 0.1),
                          "qa": ("XQUAD", toy_xquad, 0.1)}[family]
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
