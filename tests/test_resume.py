"""Crash, preemption and resume: a killed or preempted run restarted with the same command ends where an
uninterrupted one does; a damaged checkpoint_last.pt is replaced by the newest sound checkpoint, never a silent
restart; one run per save dir; a full disk leaves the last checkpoint intact."""

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest
import torch
from conftest import REPO, run, small_filesystem

from stabletune_fairseq.reliability.checkpoint_recovery import (
    CheckpointDamaged,
    checkpoint_problem,
    recover_last_checkpoint,
)

SETTINGS = ["STAGE=1", "BSZ=8", "LR=1e-4", "FREEZE_EMBEDDINGS=1", "SAVE_INTERVAL_UPDATES=2", "VALID_LANGS=de"]


def command(e5_dir, data, dicts, save_dir, max_update=4):
    return [
        "bash",
        "run_scripts/run_xtreme.sh",
        "XNLI",
        str(e5_dir / "model.pt"),
        str(data),
        str(save_dir),
        *SETTINGS,
        f"MAX_UPDATE={max_update}",
        f"DICT_DIR={dicts}",
    ]


def parameters(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def updates(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["optimizer_history"][-1]["num_updates"]


@pytest.fixture(scope="module")
def straight_and_resumed(e5_dir, toy_data, toy_dicts, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    run(command(e5_dir, toy_data, toy_dicts, root / "straight"))
    crashed = root / "crashed"
    process = subprocess.Popen(
        command(e5_dir, toy_data, toy_dicts, crashed),
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
    # the killed run's lock file is left behind, nobody holds it: taken over, with a warning
    assert re.search(
        r"train.lock was left by process \d+ on \S+ \(since .*\), which is no longer running: taking it over", log
    )
    assert re.search(r"Loaded checkpoint \S+checkpoint_last.pt \(epoch 1 @ 2 updates\)", log)
    assert "loaded pretrained encoder" not in log
    straight, resumed = (
        parameters(root / "straight" / "checkpoint_last.pt"),
        parameters(root / "crashed" / "checkpoint_last.pt"),
    )
    assert updates(root / "crashed" / "checkpoint_last.pt") == 4
    assert straight.keys() == resumed.keys()
    worst = max(float((straight[k].float() - resumed[k].float()).abs().max()) for k in straight)
    assert worst <= 1e-6, worst


def test_a_damaged_last_checkpoint_is_replaced_by_the_newest_sound_one(
    straight_and_resumed, e5_dir, toy_data, toy_dicts
):
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
    # run_xtreme.sh's --keep-interval-updates 2: the killed run's checkpoint_1_2.pt is pruned once 1_6 is written
    assert sorted(p.name for p in save_dir.glob("checkpoint_1_*.pt")) == ["checkpoint_1_4.pt", "checkpoint_1_6.pt"]


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
    for age, (name, num_updates) in enumerate(
        [("checkpoint_1_9.pt", 9), ("checkpoint_1_6.pt", 6), ("checkpoint_1_3.pt", 3)]
    ):
        path = tmp_path / name
        torch.save(
            {"model": {"w": torch.full((4,), float(num_updates))}, "optimizer_history": [{"num_updates": num_updates}]},
            path,
        )
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


def logged_updates(log: str) -> list[int]:
    return [int(n) for n in re.findall(r"\| train_inner \|.*\bnum_updates=(\d+),", log)]


def wait_for(predicate, process, what: str, limit: float = 600):
    deadline = time.time() + limit
    while not predicate():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"no {what} after {limit} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def preempted_and_resumed(straight_and_resumed, e5_dir, toy_data, toy_dicts):
    """The uninterrupted run's command, sent SIGTERM as a scheduler does (every process of the job) mid-epoch,
    then re-run as it was."""
    root, _ = straight_and_resumed
    save_dir = root / "preempted"
    cmd = [str(c) for c in command(e5_dir, toy_data, toy_dicts, save_dir)] + ["--", "--log-interval", "1"]
    process = subprocess.Popen(
        cmd, cwd=REPO, start_new_session=True, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    log = save_dir / "train.log"
    wait_for(lambda: log.exists() and logged_updates(log.read_text()), process, "a logged update")
    signalled = time.time()
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=300)[0]
    preempted = {
        "status": process.returncode,
        "seconds": time.time() - signalled,
        "output": output,
        "log": log.read_text(),
        "updates": updates(save_dir / "checkpoint_last.pt"),
    }
    resumed = run(cmd)
    return root, preempted, resumed.stdout + resumed.stderr


def test_a_preempted_run_saves_its_last_update_and_exits_75(preempted_and_resumed):
    _, preempted, _ = preempted_and_resumed
    assert preempted["status"] == 75, preempted["output"][-3000:]
    update = preempted["updates"]
    assert update == logged_updates(preempted["log"])[-1]  # nothing trained after the last logged update is lost
    assert 1 <= update < 4, update  # mid-epoch, before the run's end
    assert "SIGTERM received: finishing the current update" in preempted["log"]
    assert f"fairseq-train: preempted by SIGTERM after update {update}:" in preempted["output"]
    assert "Traceback" not in preempted["output"]


def test_a_preempted_run_resumes_to_the_parameters_of_an_uninterrupted_one(preempted_and_resumed):
    root, preempted, log = preempted_and_resumed
    assert re.search(rf"Loaded checkpoint \S+checkpoint_last.pt \(epoch 1 @ {preempted['updates']} updates\)", log)
    straight, resumed = (
        parameters(root / "straight" / "checkpoint_last.pt"),
        parameters(root / "preempted" / "checkpoint_last.pt"),
    )
    assert updates(root / "preempted" / "checkpoint_last.pt") == 4
    worst = max(float((straight[k].float() - resumed[k].float()).abs().max()) for k in straight)
    assert worst <= 1e-6, worst
    assert not (root / "preempted" / "train.lock").exists()  # released at the end


def test_one_run_per_save_dir_and_usr1_preempts(e5_dir, toy_data, toy_dicts, tmp_path):
    """While a run trains, a second run_xtreme.sh and a raw fairseq-train on its save dir are refused, naming it;
    then SLURM's USR1, sent to run_xtreme.sh alone, is passed on and preempts the run."""
    save_dir = tmp_path / "busy"
    cmd = [str(c) for c in command(e5_dir, toy_data, toy_dicts, save_dir, max_update=1000)]
    printed = tmp_path / "output.txt"
    with open(printed, "w") as output:
        process = subprocess.Popen(
            cmd + ["--", "--log-interval", "1"], cwd=REPO, text=True, stdout=output, stderr=subprocess.STDOUT
        )
    log, lock = save_dir / "train.log", save_dir / "train.lock"
    try:
        wait_for(lambda: lock.exists() and lock.stat().st_size > 0, process, "the save dir was locked")
        # the command run_xtreme.sh printed, as a user would copy it
        fairseq_train = shlex.split(next(line for line in printed.read_text().splitlines() if "fairseq-train " in line))
        holder = json.loads(lock.read_text())["pid"]
        assert "fairseq-train" in open(f"/proc/{holder}/cmdline").read()
        second = run(cmd, check=False)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"error: save dir {save_dir} is in use by process {holder} on " in second.stderr
        raw = run(fairseq_train, check=False)
        assert raw.returncode == 2 and f"fairseq-train: save dir {save_dir} is in use by process {holder}" in raw.stderr
        assert "Traceback" not in raw.stderr
        wait_for(lambda: logged_updates(log.read_text()), process, "a logged update")
        os.kill(process.pid, signal.SIGUSR1)
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    output = printed.read_text()
    assert process.returncode == 75, output[-3000:]
    update = updates(save_dir / "checkpoint_last.pt")
    assert update == logged_updates(log.read_text())[-1] and update < 1000
    assert f"preempted by SIGUSR1 after update {update}" in output
    assert not lock.exists()


def test_a_signal_before_training_starts_stops_the_recipe_with_75(e5_dir, toy_data, toy_dicts, tmp_path):
    """SIGTERM to run_xtreme.sh while it starts fairseq-train (right after it printed the command): status 75, nothing
    trained, nothing left behind (docs/reliability.md)."""
    save_dir = tmp_path / "early"
    process = subprocess.Popen(
        command(e5_dir, toy_data, toy_dicts, save_dir),
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        while "fairseq-train " not in (line := process.stdout.readline()):
            assert line, "run_xtreme.sh printed no command"
        os.kill(process.pid, signal.SIGTERM)
        rest, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 75, errors[-3000:]
    assert re.search(
        r"run_xtreme.sh: stopped by SIGTERM (before training started|during start-up); re-run the same "
        r"command",
        errors,
    ), errors[-3000:]
    assert "Traceback" not in rest + errors and "train_inner" not in rest
    assert not (save_dir / "checkpoint_last.pt").exists() and not (save_dir / "train.lock").exists()


def test_a_signal_during_the_last_update_ends_the_run_normally_and_training_never_imports_transformers(
    e5_dir, toy_data, toy_dicts, tmp_path
):
    """MAX_UPDATE=1 and SIGTERM to every process once training has started: the update in progress is the run's
    last, so the run ends as it would have (status 0, its checkpoint of update 1), not as a preemption. The run
    imports a ``transformers`` placed first on its path, which records who imported it: nobody may."""
    shadow = tmp_path / "shadow" / "transformers"
    shadow.mkdir(parents=True)
    imported = tmp_path / "transformers-imported"
    (shadow / "__init__.py").write_text(
        f"import traceback\nopen({str(imported)!r}, 'w').write(''.join("
        "traceback.format_stack()))\n"
        "raise ImportError('training imported transformers')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", str(REPO))])}
    save_dir = tmp_path / "last"
    cmd = [str(c) for c in command(e5_dir, toy_data, toy_dicts, save_dir, max_update=1)] + ["--", "--log-interval", "1"]
    process = subprocess.Popen(
        cmd, cwd=REPO, start_new_session=True, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    log = save_dir / "train.log"
    try:
        wait_for(lambda: log.exists() and "Start iterating over samples" in log.read_text(), process, "training")
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=300)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output[-3000:]
    assert "SIGTERM received: finishing the current update" in log.read_text()
    assert "preempted by SIGTERM after update" not in output and "Stopping training due to num_updates: 1" in output
    assert updates(save_dir / "checkpoint_last.pt") == 1 and not (save_dir / "train.lock").exists()
    assert not imported.exists(), imported.read_text()[-3000:]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_full_disk_leaves_the_last_checkpoint_intact(straight_and_resumed, e5_dir, toy_data, toy_dicts, tmp_path):
    root, _ = straight_and_resumed
    source = root / "straight" / "checkpoint_last.pt"
    with small_filesystem(tmp_path / "disk", source.stat().st_size // 2**20 + 60) as disk:
        save_dir = disk / "run"
        save_dir.mkdir()
        shutil.copyfile(source, save_dir / "checkpoint_last.pt")  # update 4; the next save (update 6) cannot fit
        before = sha256(save_dir / "checkpoint_last.pt")
        result = run(command(e5_dir, toy_data, toy_dicts, save_dir, max_update=6), check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output[-3000:]
        assert re.search(
            rf"fairseq-train: no space left on the device of {save_dir} while saving the checkpoint of "
            rf"update 6 \(\d+ MB free; a checkpoint here is \d+ MB\): {save_dir}/checkpoint_last.pt is intact",
            output,
        )
        last = save_dir / "checkpoint_last.pt"
        assert sha256(last) == before and checkpoint_problem(last) is None and updates(last) == 4
        assert not list(save_dir.glob("*.tmp")) and not (save_dir / "train.lock").exists()


def test_checkpoint_copies_never_cut_the_target_short(tmp_path):
    """fairseq copies each new checkpoint to checkpoint_last.pt; on a full disk a plain copy destroys the old one.
    (``guarded_copy`` of fairseq's copy is what fairseq-train's ``PathManager.copy`` is under the plugin.)"""
    from fairseq.file_io import PathManager

    from stabletune_fairseq.reliability.disk_writes import guarded_copy

    copy = guarded_copy(PathManager.copy)
    new = tmp_path / "checkpoint_1_6.pt"
    new.write_bytes(os.urandom(6 * 2**20))
    with small_filesystem(tmp_path / "disk", 4) as disk:
        target = disk / "checkpoint_last.pt"
        target.write_bytes(b"previous" * 1000)
        with pytest.raises(OSError):
            shutil.copyfile(new, target)  # what fairseq's PathManager.copy did
        assert (
            target.read_bytes() != b"previous" * 1000 and target.stat().st_size < new.stat().st_size
        )  # old gone, new cut short
        target.write_bytes(b"previous" * 1000)
        with pytest.raises(OSError):
            copy(str(new), str(target), overwrite=True)
        assert target.read_bytes() == b"previous" * 1000 and not list(disk.glob("*.tmp"))
