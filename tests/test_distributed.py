"""Two CPU ranks (gloo, legacy_ddp, one process per rank) train exactly what one process does with
UPDATE_FREQ=2: the same examples in each update, the same augmented views, the same parameters."""
import re

import torch

import stabletune_fairseq  # noqa: F401  (allows fairseq checkpoint types under weights_only)
from conftest import run

# Dropout off: each rank seeds its dropout like a fresh process, so masks differ from the single
# process's second micro-batch. Views are drawn per example and are the same in both runs.
SETTINGS = ["STAGE=1", "BSZ=8", "MAX_UPDATE=4", "LR=1e-4", "FREEZE_EMBEDDINGS=1", "VALID_LANGS=de"]
NO_DROPOUT = ["--", "--dropout", "0", "--attention-dropout", "0", "--head-dropout", "0", "--log-interval", "1"]
TOLERANCE = 1e-5  # gradients are summed in another order across ranks


def train(e5_dir, data, dicts, save_dir, *extra):
    result = run(["bash", "run_scripts/run_xtreme.sh", "XNLI", e5_dir / "model.pt", data, save_dir, f"DICT_DIR={dicts}",
                  *SETTINGS, *extra, *NO_DROPOUT])
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
    a, b, start = (torch.load(path, map_location="cpu", weights_only=True)["model"] for path in
                   (tmp_path / "ranks" / "checkpoint_last.pt", tmp_path / "single" / "checkpoint_last.pt", e5_dir / "model.pt"))
    layer = "encoder.sentence_encoder.layers.0.fc1.weight"
    moved = float((a[layer] - start[layer]).abs().max())
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"max |ranks - single| = {worst:.3g}, max update of {layer} = {moved:.3g}")
    assert moved > 10 * TOLERANCE  # training did change the weights, so the comparison means something
    assert worst <= TOLERANCE, worst
