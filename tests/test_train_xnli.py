"""A real fairseq-train run through run_xtreme.sh on the toy data with the converted e5-small model:
per-language validation over whole subsets, checkpoint selection, resuming, evaluation, safe loading."""
import json
import re
import sys

import pytest
import torch

from conftest import run

LANGS = ["de", "en", "es", "fr", "zh"]


def valid_lines(log: str) -> list[dict]:
    """The stats of every "valid on 'valid' subset" line of a fairseq log."""
    rows = []
    for line in log.splitlines():
        if "valid on 'valid' subset" in line:
            fields = [f.strip().split(" ", 1) for f in line.split("|")[3:]]
            rows.append({k: float(v) for k, v in (f for f in fields if len(f) == 2) if re.match(r"^-?[\d.]+$", v)})
    return rows


def train(toy_data, e5_dir, save_dir, *settings):
    result = run(["bash", "run_scripts/run_xtreme.sh", "XNLI", e5_dir / "model.pt", toy_data, save_dir,
                  "BSZ=8", "LR=1e-4", "SAVE_INTERVAL_UPDATES=2", "FREEZE_EMBEDDINGS=1", *settings])
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def first_run(toy_data, e5_dir, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("xnli-run") / "checkpoints"
    return save_dir, train(toy_data, e5_dir, save_dir, "MAX_UPDATE=4")


def test_validation_reports_every_language_over_the_whole_subset(first_run, toy_data):
    save_dir, log = first_run
    assert "loaded pretrained encoder from" in log
    rows = valid_lines(log)
    assert [r["num_updates"] for r in rows] == [2, 4]
    for row in rows:
        for lang in LANGS:
            assert row[f"nlabelled_{lang}"] == 150  # every dev example, none dropped by batching
            assert row[f"acc_{lang}"] == pytest.approx(100 * row[f"ncorrect_{lang}"] / 150, abs=1e-3)
        assert row["acc_avg"] == pytest.approx(sum(row[f"acc_{l}"] for l in LANGS) / len(LANGS), abs=1e-2)


def test_best_checkpoint_is_chosen_by_the_average(first_run):
    save_dir, log = first_run
    best = torch.load(save_dir / "checkpoint_best.pt", map_location="cpu")
    assert best["extra_state"]["best"] == pytest.approx(max(r["acc_avg"] for r in valid_lines(log)))
    assert "--best-checkpoint-metric acc_avg" in log


def test_select_en_uses_english_accuracy(toy_data, e5_dir, tmp_path):
    result = run(["bash", "run_scripts/run_xtreme.sh", "XNLI", e5_dir / "model.pt", toy_data, tmp_path, "SELECT=en", "DRY_RUN=1"])
    assert "--best-checkpoint-metric acc_en" in result.stdout


def test_evaluate_matches_validation(first_run, toy_data, tmp_path):
    save_dir, log = first_run
    last = valid_lines(log)[-1]
    run([sys.executable, "-m", "stabletune_fairseq.cli.evaluate", "--checkpoint", save_dir / "checkpoint_last.pt",
         "--data", toy_data, "--split", "valid", "--out", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["task"] == "xnli" and results["split"] == "valid" and results["metric"] == "accuracy"
    assert results["data_check"] == "same data"  # the checkpoint's record of task, labels and data matches
    for lang in LANGS:
        assert results["per_language"][lang] == {"accuracy": pytest.approx(last[f"acc_{lang}"], abs=0.01), "n": 150}
        predictions = (tmp_path / "predictions" / f"valid-{lang}.tsv").read_text().splitlines()
        assert len(predictions) == 150 and set(predictions) <= {"contradiction", "entailment", "neutral"}
    assert results["average"]["accuracy"] == pytest.approx(last["acc_avg"], abs=0.01)
    assert "| **average** |" in (tmp_path / "results.md").read_text()


def test_evaluate_unlabelled_test_writes_predictions(first_run, toy_data, tmp_path):
    save_dir, _ = first_run
    run([sys.executable, "-m", "stabletune_fairseq.cli.evaluate", "--checkpoint", save_dir / "checkpoint_best.pt",
         "--data", toy_data, "--split", "test", "--out", tmp_path])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["per_language"]["fr"] == {"n": 150, "labelled": False} and results["average"] == {}
    assert len((tmp_path / "predictions" / "test-zh.tsv").read_text().splitlines()) == 150


def test_fairseq_checkpoints_load_through_the_safe_loader(first_run):
    from stabletune_fairseq.reliability.checkpoint_safety import load_checkpoint_safely
    save_dir, _ = first_run
    state = load_checkpoint_safely(str(save_dir / "checkpoint_last.pt"))
    assert state["cfg"]["task"]["_name"] == "xtreme_sentence" and state["optimizer_history"]
    assert any(key.startswith("encoder.sentence_encoder.") for key in state["model"])


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_crafted_checkpoint_is_refused(tmp_path):
    import stabletune_fairseq  # noqa: F401

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _RunsCommand(marker)}, path)
    from stabletune_fairseq.reliability.checkpoint_safety import UnsafeCheckpoint, load_checkpoint_safely
    with pytest.raises(UnsafeCheckpoint, match=rf"{path}: refusing to load this checkpoint: .*(posix\.system|os\.system)"):
        load_checkpoint_safely(str(path))
    assert not marker.exists()


def test_rerun_resumes_instead_of_restarting(first_run, toy_data, e5_dir):
    save_dir, _ = first_run
    log = train(toy_data, e5_dir, save_dir, "MAX_UPDATE=6")
    assert "has checkpoint_last.pt: resuming from it" in log
    assert "loaded pretrained encoder" not in log
    assert re.search(r"Loaded checkpoint .*checkpoint_last\.pt \(epoch 1 @ 4 updates\)", log)
    assert [r["num_updates"] for r in valid_lines(log)] == [6]


def test_select_en_without_english_dev_is_refused(e5_dir, tmp_path):
    # (PAWS-X's defaults: tests/test_recipe_defaults.py, on the shared PAWS-X sample)
    data = tmp_path / "pawsx"
    data.mkdir()
    (data / "metadata.json").write_text(json.dumps({"splits": {"train": {"examples": 64}, "valid_de": {}}}))
    refused = run(["bash", "run_scripts/run_xtreme.sh", "PAWSX", e5_dir / "model.pt", data, tmp_path / "ck", "SELECT=en"], check=False)
    assert refused.returncode == 2 and "no valid_en" in refused.stderr
