"""Two CPU ranks (gloo, legacy_ddp, one process per rank) train exactly what one process does with
UPDATE_FREQ=2: the same examples in each update, the same augmented views, the same parameters. A rank that
fails stops the run at once; a batch whose loss is not finite is skipped on its rank, and training goes on."""

import os
import re
import signal
import subprocess
import time
from collections import Counter

import torch
from conftest import REPO, run

from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask

# Dropout off: each rank seeds its dropout like a fresh process, so masks differ from the single
# process's second micro-batch. Views are drawn per example and are the same in both runs.
SETTINGS = ["STAGE=1", "BSZ=8", "MAX_UPDATE=4", "LR=1e-4", "FREEZE_EMBEDDINGS=1", "VALID_LANGS=de"]
NO_DROPOUT = ["--", "--dropout", "0", "--attention-dropout", "0", "--head-dropout", "0", "--log-interval", "1"]
TOLERANCE = 1e-5  # gradients are summed in another order across ranks


def train(e5_dir, data, dicts, save_dir, *extra):
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            data,
            save_dir,
            f"DICT_DIR={dicts}",
            *SETTINGS,
            *extra,
            *NO_DROPOUT,
        ]
    )
    return result.stdout + result.stderr


def test_two_cpu_ranks_match_one_process_with_update_freq_2(e5_dir, toy_data, toy_dicts, tmp_path):
    ranks_log = train(e5_dir, toy_data, toy_dicts, tmp_path / "ranks", "NPROC=2")
    single_log = train(e5_dir, toy_data, toy_dicts, tmp_path / "single", "UPDATE_FREQ=2")
    assert "--distributed-backend gloo" in ranks_log and "--ddp-backend legacy_ddp" in ranks_log
    assert "initialized host" in ranks_log and "as rank 1" in ranks_log
    for log in (ranks_log, single_log):
        assert "effective batch 16" in log
    # the same examples per update: same number of rows and tokens logged for every update
    per_update = [re.findall(r"\bwpb=([\d.]+), bsz=(\d+)", log) for log in (ranks_log, single_log)]
    assert per_update[0] == per_update[1] and len(per_update[0]) == 4
    a, b, start = (
        torch.load(path, map_location="cpu", weights_only=True)["model"]
        for path in (
            tmp_path / "ranks" / "checkpoint_last.pt",
            tmp_path / "single" / "checkpoint_last.pt",
            e5_dir / "model.pt",
        )
    )
    layer = "encoder.sentence_encoder.layers.0.fc1.weight"
    moved = float((a[layer] - start[layer]).abs().max())
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"max |ranks - single| = {worst:.3g}, max update of {layer} = {moved:.3g}")
    assert moved > 10 * TOLERANCE  # training did change the weights, so the comparison means something
    assert worst <= TOLERANCE, worst


def rank_processes(session: int, rank: int) -> list[int]:
    """Process ids of the ``fairseq-train ... --distributed-rank <rank>`` processes of one process session."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            if os.getsid(int(entry)) == session and b"--distributed-rank" in argv:
                if argv[argv.index(b"--distributed-rank") + 1] == str(rank).encode():
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return found


def test_a_failing_rank_stops_the_run_promptly(e5_dir, toy_data, toy_dicts, tmp_path):
    # Rank 1 dies before it reaches gloo's rendezvous: rank 0 would wait there for 30 minutes.
    command = [
        "bash",
        "run_scripts/run_xtreme.sh",
        "XNLI",
        str(e5_dir / "model.pt"),
        str(toy_data),
        str(tmp_path / "run"),
        f"DICT_DIR={toy_dicts}",
        *SETTINGS,
        "NPROC=2",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.time() + 300
        while not (victims := rank_processes(process.pid, 1)) and time.time() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert victims, "rank 1 never started"
        os.kill(victims[0], signal.SIGKILL)
        killed = time.time()
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    print(f"exited {time.time() - killed:.1f} s after rank 1 was killed")
    assert process.returncode != 0
    assert "rank 1 failed (exit 137): stopping the other ranks" in out
    assert not rank_processes(process.pid, 0)  # rank 0 stopped too, not left behind


def test_a_signal_to_one_rank_stops_every_rank_after_the_same_update(e5_dir, toy_data, toy_dicts, tmp_path):
    """SIGTERM to rank 1 alone, mid-run: the ranks agree (one all-reduce per update) and both stop after the same
    update, rank 0 saving it; the recipe exits 75 (docs/reliability.md)."""
    save_dir = tmp_path / "run"
    command = [
        "bash",
        "run_scripts/run_xtreme.sh",
        "XNLI",
        str(e5_dir / "model.pt"),
        str(toy_data),
        str(save_dir),
        f"DICT_DIR={toy_dicts}",
        *SETTINGS,
        "NPROC=2",
        "MAX_UPDATE=1000",
        "--",
        "--log-interval",
        "1",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    log = save_dir / "train.log"
    try:
        deadline = time.time() + 300
        while not (log.exists() and "num_updates=1," in log.read_text()) and time.time() < deadline:
            assert process.poll() is None, "the run ended before its first update"
            time.sleep(0.05)
        victims = rank_processes(process.pid, 1)
        assert victims, "rank 1 is not running"
        os.kill(victims[0], signal.SIGTERM)
        out, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 75, out[-3000:]
    rank1 = [int(n) for n in re.findall(r"fairseq-train: preempted by SIGTERM after update (\d+)", out)]
    rank0 = [int(n) for n in re.findall(r"fairseq-train: preempted by a signal after update (\d+)", out)]  # got none
    assert len(rank1) == len(rank0) == 1 and rank0 == rank1, out[-3000:]
    update = rank0[0]
    saved = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=True)
    assert saved["optimizer_history"][-1]["num_updates"] == update < 1000
    assert max(int(n) for n in re.findall(r"\bnum_updates=(\d+),", log.read_text())) == update  # none trained after
    assert not rank_processes(process.pid, 0) and not rank_processes(process.pid, 1)


def test_non_finite_batches_are_skipped_in_a_real_two_rank_run(e5_dir, toy_data, tmp_path):
    # A pretrained model with one finite but huge embedding row: every batch holding that piece overflows.
    task = XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(toy_data), seed=1))
    train = task.load_dataset("train")
    pieces = {i: set(train[i]["net_input.src_tokens"].tolist()) for i in range(len(train))}
    frequency = Counter(p for row in pieces.values() for p in row if p >= task.dictionary.nspecial)
    token = min(frequency, key=lambda p: (abs(frequency[p] - 0.04 * len(train)), p))  # in about 1 row of 25
    state = torch.load(e5_dir / "model.pt", map_location="cpu", weights_only=True)
    state["model"]["encoder.sentence_encoder.embed_tokens.weight"][token] = 3e38
    poisoned = tmp_path / "poisoned.pt"
    torch.save(state, poisoned)
    del state
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            poisoned,
            toy_data,
            tmp_path / "run",
            "NPROC=2",
            "BSZ=4",
            "MAX_UPDATE=4",
            "LR=1e-4",
            "FREEZE_EMBEDDINGS=1",
            "VALID_LANGS=de",
            "--",
            "--log-interval",
            "1",
        ]
    )
    log = result.stdout + result.stderr
    skipped = [
        [int(i) for i in ids.split(",")]
        for ids in re.findall(r"in the batch of examples \[([\d, ]+)\]: batch skipped", log)
    ]
    print(f"piece {task.dictionary[token]!r} in {frequency[token]} of {len(train)} rows; skipped batches: {skipped}")
    assert 0 < len(skipped) < 2 * 4  # some of the 8 batches (2 ranks x 4 updates), not all
    assert all(any(token in pieces[i] for i in batch) for batch in skipped)  # each skipped batch holds the piece
    logged_skips = [
        float(v)
        for line in log.splitlines()
        if "train_inner" in line
        for v in re.findall(r"\bnonfinite_skipped=([\d.]+)", line)
    ]
    assert sum(logged_skips) == len(skipped)  # counted across both ranks
    last = torch.load(tmp_path / "run" / "checkpoint_last.pt", map_location="cpu", weights_only=True)
    assert last["optimizer_history"][-1]["num_updates"] == 4
    start = torch.load(poisoned, map_location="cpu", weights_only=True, mmap=True)["model"]
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    layer = "encoder.sentence_encoder.layers.0.fc1.weight"
    assert not torch.equal(last["model"][layer], start[layer])  # the sound batches did train
