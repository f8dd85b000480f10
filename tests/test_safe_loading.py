"""Every way a checkpoint comes in (pretrained model, teacher, resumed run, evaluation) refuses a file
crafted to run a command on load, with a clear message, and runs nothing."""

import os
import sys

import pytest
import torch
from conftest import TOY_TRAIN_PAIRS, run


class RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "command-ran"
    path = tmp_path / "crafted.pt"
    torch.save({"model": {}, "args": None, "payload": RunsCommand(marker)}, path)
    return path, marker


def assert_refused(result, path, marker):
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{path}: refusing to load this checkpoint" in output and "posix.system" in output, output[-3000:]
    assert not marker.exists()


def test_as_pretrained_model(crafted, toy_data, tmp_path):
    path, marker = crafted
    result = run(["bash", "run_scripts/run_xtreme.sh", "XNLI", path, toy_data, tmp_path / "run"], check=False)
    assert_refused(result, path, marker)


def test_as_pretrained_model_inside_training(crafted, toy_data, tmp_path):
    """With ARCH= given, nothing probes the file before fairseq-train: its --pretrained-encoder load refuses it."""
    path, marker = crafted
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            path,
            toy_data,
            tmp_path / "run",
            "ARCH=stabletune_xlmr_e5_small",
            "MAX_UPDATE=1",
        ],
        check=False,
    )
    started = f"run_xtreme.sh: XNLI stage 0 (cross-lingual-transfer) on {TOY_TRAIN_PAIRS} training rows"
    assert started in result.stdout  # past the
    # batch count: fairseq-train started, and the refusal came from inside it
    assert_refused(result, path, marker)


def test_as_teacher(crafted, e5_dir, toy_data, toy_dicts, tmp_path):
    path, marker = crafted
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            tmp_path / "run",
            "STAGE=2",
            f"TEACHER={path}",
            f"DICT_DIR={toy_dicts}",
            "MAX_UPDATE=1",
        ],
        check=False,
    )
    assert_refused(result, path, marker)


def test_as_the_checkpoint_to_resume(crafted, e5_dir, toy_data, tmp_path):
    path, marker = crafted
    save_dir = tmp_path / "run"
    save_dir.mkdir()
    save_dir.joinpath("checkpoint_last.pt").write_bytes(path.read_bytes())
    result = run(
        ["bash", "run_scripts/run_xtreme.sh", "XNLI", e5_dir / "model.pt", toy_data, save_dir, "MAX_UPDATE=1"],
        check=False,
    )
    assert_refused(result, save_dir / "checkpoint_last.pt", marker)


def test_for_evaluation(crafted, toy_data, tmp_path):
    path, marker = crafted
    result = run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.evaluate",
            "--checkpoint",
            path,
            "--data",
            toy_data,
            "--out",
            tmp_path / "eval",
        ],
        check=False,
    )
    assert_refused(result, path, marker)
