"""Crash and resume: a killed run restarted with the same command ends where an uninterrupted one does,
and a damaged checkpoint_last.pt is replaced by the newest sound checkpoint, never a silent restart."""
import os
import re
import signal
import subprocess
import time

import pytest
import torch

import stabletune_fairseq  # noqa: F401  (allows fairseq checkpoint types under weights_only)
from conftest import REPO, run
from stabletune_fairseq.reliability.checkpoint_recovery import CheckpointDamaged, checkpoint_problem, recover_last_checkpoint

SETTINGS = ["STAGE=1", "BSZ=8", "LR=1e-4", "FREEZE_EMBEDDINGS=1", "SAVE_INTERVAL_UPDATES=2", "VALID_LANGS=de"]


def command(e5_dir, data, dicts, save_dir, max_update=4):
    return ["bash", "run_scripts/run_xtreme.sh", "XNLI", str(e5_dir / "model.pt"), str(data), str(save_dir),
            *SETTINGS, f"MAX_UPDATE={max_update}", f"DICT_DIR={dicts}"]


def parameters(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def updates(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["optimizer_history"][-1]["num_updates"]


@pytest.fixture(scope="module")
def straight_and_resumed(e5_dir, toy_data, toy_dicts, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    run(command(e5_dir, toy_data, toy_dicts, root / "straight"))
    crashed = root / "crashed"
    process = subprocess.Popen(command(e5_dir, toy_data, toy_dicts, crashed), cwd=REPO, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (crashed / "checkpoint_1_2.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # mid-epoch, during or right after the first checkpoint
    process.wait()
    assert not (crashed / "checkpoint_1_4.pt").exists()
    resumed = run(command(e5_dir, toy_data, toy_dicts, crashed))
    return root, resumed.stdout + resumed.stderr


def test_a_killed_run_resumes_to_the_parameters_of_an_uninterrupted_one(straight_and_resumed):
    root, log = straight_and_resumed
    assert "has checkpoint_last.pt: resuming from it, not loading" in log
    assert re.search(r"Loaded checkpoint \S+checkpoint_last.pt \(epoch 1 @ 2 updates\)", log)
    assert "loaded pretrained encoder" not in log
    straight, resumed = parameters(root / "straight" / "checkpoint_last.pt"), parameters(root / "crashed" / "checkpoint_last.pt")
    assert updates(root / "crashed" / "checkpoint_last.pt") == 4
    assert straight.keys() == resumed.keys()
    worst = max(float((straight[k].float() - resumed[k].float()).abs().max()) for k in straight)
    assert worst <= 1e-6, worst


def test_a_damaged_last_checkpoint_is_replaced_by_the_newest_sound_one(straight_and_resumed, e5_dir, toy_data, toy_dicts):
    root, _ = straight_and_resumed
    save_dir = root / "crashed"
    last = save_dir / "checkpoint_last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # what a crash during fairseq's copy leaves
    result = run(command(e5_dir, toy_data, toy_dicts, save_dir, max_update=6))
    log = result.stdout + result.stderr
    assert f"{last} is damaged" in log and f"resuming from {save_dir / 'checkpoint_1_4.pt'}" in log
    assert re.search(r"Loaded checkpoint \S+checkpoint_last.pt \(epoch 1 @ 4 updates\)", log)
    assert "loaded pretrained encoder" not in log  # never a silent restart from the pretrained weights
    assert updates(last) == 6
    assert list(save_dir.glob("checkpoint_last.pt.damaged-*"))  # kept aside, not deleted


def test_checkpoint_problems_are_found(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"model": {"w": torch.arange(1000.0)}}, path)
    assert checkpoint_problem(path) is None
    data = bytearray(path.read_bytes())
    path.write_bytes(data[:-100])
    assert "not a complete torch checkpoint" in checkpoint_problem(path)
    position = data.find(b"\x00\x00\x80\x3f")  # inside the stored tensor (the float 1.0)
    data[position + 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "CRC" in checkpoint_problem(path)


def test_no_sound_checkpoint_is_a_clear_error_not_a_restart(tmp_path):
    (tmp_path / "checkpoint_last.pt").write_bytes(b"PK\x03\x04 cut")
    (tmp_path / "checkpoint_1_4.pt").write_bytes(b"also cut")
    with pytest.raises(CheckpointDamaged, match="no sound checkpoint to resume from"):
        recover_last_checkpoint(str(tmp_path))
    assert recover_last_checkpoint(str(tmp_path / "fresh")) is None


def test_missing_last_checkpoint_is_restored_from_the_newest_sound_interval_checkpoint(tmp_path, caplog):
    # A crash before fairseq's first copy to checkpoint_last.pt: interval checkpoints only, the newest damaged.
    for age, (name, num_updates) in enumerate([("checkpoint_1_9.pt", 9), ("checkpoint_1_6.pt", 6), ("checkpoint_1_3.pt", 3)]):
        path = tmp_path / name
        torch.save({"model": {"w": torch.full((4,), float(num_updates))},
                    "optimizer_history": [{"num_updates": num_updates}]}, path)
        os.utime(path, (1_000_000 - 100 * age, 1_000_000 - 100 * age))  # 9 newest, by time as well as name
    checkpoint_9 = tmp_path / "checkpoint_1_9.pt"
    checkpoint_9.write_bytes(checkpoint_9.read_bytes()[:200])
    (tmp_path / "checkpoint_best.pt").write_bytes(b"not resumable: the best is not where training stopped")
    with caplog.at_level("WARNING"):
        restored = recover_last_checkpoint(str(tmp_path))
    assert restored == str(tmp_path / "checkpoint_1_6.pt")
    assert f"{tmp_path} has checkpoints but no checkpoint_last.pt: resuming from {restored} instead" in caplog.text
    assert "checkpoint_1_9.pt is damaged too" in caplog.text
    last = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert last["optimizer_history"][-1]["num_updates"] == 6 and last["model"]["w"].tolist() == [6.0] * 4
    assert checkpoint_9.stat().st_size == 200  # the damaged one is left as it was
    assert recover_last_checkpoint(str(tmp_path)) is None  # now sound: nothing more to do
