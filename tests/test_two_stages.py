"""A tiny real two-stage xTune run (cross-lingual transfer, code-switching) through run_xtreme.sh."""

import hashlib
import re

import pytest
import torch
from conftest import run
from test_consistency import make_model, make_task

from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion

SETTINGS = ["MAX_UPDATE=2", "BSZ=8", "LR=1e-4", "FREEZE_EMBEDDINGS=1", "VALID_LANGS=de"]


def stage(e5_dir, toy_data, toy_dicts, save_dir, number, *extra):
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            save_dir,
            f"STAGE={number}",
            f"DICT_DIR={toy_dicts}",
            *SETTINGS,
            *extra,
            "--",
            "--log-interval",
            "1",
        ],
        check=False,
    )
    return result


def logged(log: str, key: str) -> list[float]:
    return [float(v) for v in re.findall(rf"\b{key}=([-\d.e]+)", log)]


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stage1(e5_dir, toy_data, toy_dicts, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("xtune") / "run"
    result = stage(e5_dir, toy_data, toy_dicts, save_dir, 1)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return save_dir, result.stdout + result.stderr


def test_stage1_trains_with_r1_on_code_switched_views(stage1, toy_dicts):
    _, log = stage1
    assert (
        f"--view-augmentation code_switch --dict-dir {toy_dicts} --dict-langs de\\,fr --code-switch-prob 0.3" in log
    )  # printf %q form
    assert "--r1-lambda 1.6666666666666667" in log  # the reference's 5, KL averaged over 3 classes
    assert any(v > 0 for v in logged(log, "r1")) and logged(log, "r2") == [0.0, 0.0]


def test_stage2_uses_the_stage1_teacher_and_keeps_stage1(stage1, e5_dir, toy_data, toy_dicts):
    save_dir, _ = stage1
    before = sha(save_dir / "checkpoint_best.pt")
    result = stage(e5_dir, toy_data, toy_dicts, save_dir, 2)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert f"teacher: {save_dir / 'checkpoint_best.pt'} (frozen, eval mode)" in log
    assert "loaded train: 2400 rows (views: code_switch, copies: code_switch)" in log  # D ∪ D_aug
    assert "--r2-lambda 1.6666666666666667" in log  # XNLI's lambda2 = 5 / 3 classes
    assert (save_dir / "stage2" / "checkpoint_best.pt").is_file()
    assert sha(save_dir / "checkpoint_best.pt") == before  # stage 1 never overwritten
    # R2 is measured on the copies of every batch (half the rows of D ∪ D_aug), so it is positive at every
    # logged update; stage 1, without a teacher, logged exactly 0 (test above)
    r2 = logged(log, "r2")
    assert len(r2) == 2 and all(v > 0 for v in r2) and any(v > 0 for v in logged(log, "r1"))


def test_stage2_without_teacher_is_a_clear_error(e5_dir, toy_data, toy_dicts, tmp_path):
    result = stage(e5_dir, toy_data, toy_dicts, tmp_path / "fresh", 2)
    assert result.returncode == 2 and "stage 2 needs the stage-1 teacher" in result.stderr
    result = stage(e5_dir, toy_data, toy_dicts, tmp_path / "fresh", 2, f"TEACHER={tmp_path / 'nope.pt'}")
    assert result.returncode == 2 and "nope.pt does not exist" in result.stderr


def test_teacher_stays_frozen_while_the_student_trains(stage1, e5_dir, toy_data, toy_dicts):
    save_dir, _ = stage1
    task = make_task(
        toy_data, toy_dicts, view_augmentation="code_switch", copy_augmentation="code_switch", code_switch_prob=1.0
    )
    criterion = StabilityConsistencyCriterion(
        task, r1_lambda=1.0, r2_lambda=1.0, teacher=str(save_dir / "checkpoint_best.pt")
    )
    teacher = criterion.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert list(criterion.parameters()) == []  # not in the optimizer, not saved with the criterion
    model = make_model(task, e5_dir).train()
    train = task.load_dataset("train").dataset
    sample = train.collater([train[i] for i in (0, 1, len(train) - 2, len(train) - 1)])  # two rows, two copies
    assert sample["teacher_rows"].tolist() == [False, False, True, True]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        loss, _, log = criterion(model, sample)
        loss.backward()
        optimizer.step()
    assert log["r2"] > 0 and not teacher.training
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
