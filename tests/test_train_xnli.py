"""A real fairseq-train run through run_xtreme.sh on the toy data with the converted e5-small model:
per-language validation over whole subsets, checkpoint selection, resuming, evaluation, safe loading."""

import json
import re
import sys

import pytest
import torch
from conftest import TOY_DEV_PAIRS, TOY_TEST_PAIRS, run

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
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            save_dir,
            "BSZ=8",
            "LR=1e-4",
            "SAVE_INTERVAL_UPDATES=2",
            "FREEZE_EMBEDDINGS=1",
            *settings,
        ]
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def first_run(toy_data, e5_dir, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("xnli-run") / "checkpoints"
    return save_dir, train(toy_data, e5_dir, save_dir, "MAX_UPDATE=4", f"TENSORBOARD={save_dir.parent / 'tensorboard'}")


def test_validation_reports_every_language_over_the_whole_subset(first_run, toy_data):
    save_dir, log = first_run
    assert "loaded pretrained encoder from" in log
    rows = valid_lines(log)
    assert [r["num_updates"] for r in rows] == [2, 4]
    for row in rows:
        for lang in LANGS:
            assert row[f"nlabelled_{lang}"] == TOY_DEV_PAIRS  # every dev example, none dropped by batching
            assert row[f"acc_{lang}"] == pytest.approx(100 * row[f"ncorrect_{lang}"] / TOY_DEV_PAIRS, abs=1e-3)
        assert row["acc_avg"] == pytest.approx(sum(row[f"acc_{lang}"] for lang in LANGS) / len(LANGS), abs=1e-2)


def test_best_checkpoint_is_chosen_by_the_average(first_run):
    save_dir, log = first_run
    best = torch.load(save_dir / "checkpoint_best.pt", map_location="cpu")
    assert best["extra_state"]["best"] == pytest.approx(max(r["acc_avg"] for r in valid_lines(log)))
    assert "--best-checkpoint-metric acc_avg" in log


def test_select_en_uses_english_accuracy(toy_data, e5_dir, tmp_path):
    result = run(
        ["bash", "run_scripts/run_xtreme.sh", "XNLI", e5_dir / "model.pt", toy_data, tmp_path, "SELECT=en", "DRY_RUN=1"]
    )
    assert "--best-checkpoint-metric acc_en" in result.stdout


@pytest.fixture(scope="module")
def evaluated_valid(first_run, toy_data, tmp_path_factory):
    """stabletune-evaluate of the last checkpoint on the dev sets (its output folder), shared by the tests."""
    out = tmp_path_factory.mktemp("xnli-eval")
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.evaluate",
            "--checkpoint",
            first_run[0] / "checkpoint_last.pt",
            "--data",
            toy_data,
            "--split",
            "valid",
            "--out",
            out,
        ]
    )
    return out


def test_evaluate_matches_validation(first_run, evaluated_valid):
    _, log = first_run
    tmp_path = evaluated_valid
    last = valid_lines(log)[-1]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["task"] == "xnli" and results["split"] == "valid" and results["metric"] == "accuracy"
    assert results["data_check"] == "same data"  # the checkpoint's record of task, labels and data matches
    for lang in LANGS:
        assert results["per_language"][lang] == {
            "accuracy": pytest.approx(last[f"acc_{lang}"], abs=0.01),
            "n": TOY_DEV_PAIRS,
        }
        predictions = (tmp_path / "predictions" / f"valid-{lang}.tsv").read_text().splitlines()
        assert len(predictions) == TOY_DEV_PAIRS and set(predictions) <= {"contradiction", "entailment", "neutral"}
    assert results["average"]["accuracy"] == pytest.approx(last["acc_avg"], abs=0.01)
    assert "| **average** |" in (tmp_path / "results.md").read_text()


def test_evaluate_unlabelled_test_writes_predictions(first_run, toy_data, tmp_path):
    save_dir, _ = first_run
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.evaluate",
            "--checkpoint",
            save_dir / "checkpoint_best.pt",
            "--data",
            toy_data,
            "--split",
            "test",
            "--out",
            tmp_path,
        ]
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["per_language"]["fr"] == {"n": TOY_TEST_PAIRS, "labelled": False} and results["average"] == {}
    assert len((tmp_path / "predictions" / "test-zh.tsv").read_text().splitlines()) == TOY_TEST_PAIRS


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

    with pytest.raises(
        UnsafeCheckpoint, match=rf"{path}: refusing to load this checkpoint: .*(posix\.system|os\.system)"
    ):
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
    refused = run(
        ["bash", "run_scripts/run_xtreme.sh", "PAWSX", e5_dir / "model.pt", data, tmp_path / "ck", "SELECT=en"],
        check=False,
    )
    assert refused.returncode == 2 and "no valid_en" in refused.stderr


def test_predict_on_raw_pairs_gives_what_evaluate_writes(
    first_run, evaluated_valid, toy_data, toy_xtreme, tmp_path, caplog, capsys
):
    """The raw dev rows through stabletune-predict (German) and load_model (Chinese): evaluation's labels."""
    from conftest import BIN

    from stabletune_fairseq import load_model
    from stabletune_fairseq.cli.predict import main as predict

    checkpoint = first_run[0] / "checkpoint_last.pt"
    evaluated = lambda lang: (evaluated_valid / "predictions" / f"valid-{lang}.tsv").read_text().splitlines()  # noqa: E731
    rows = lambda lang: [
        line.split("\t")[:2]
        for line in (toy_xtreme / "xnli" / f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()  # noqa: E731
    ]
    raw = tmp_path / "dev-de.txt"
    raw.write_text("".join(f"{a}\t{b}\n" for a, b in rows("de")), encoding="utf-8")
    # the task folder is found from the checkpoint's record; the batches are evaluation's (64, in length order)
    result = run([BIN / "stabletune-predict", "--checkpoint", checkpoint, "--input", raw, "--batch-size", "64"])
    predicted = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["label"] for p in predicted] == evaluated("de") and len(predicted) == 150
    for p in predicted:
        assert set(p["scores"]) == {"contradiction", "entailment", "neutral"}
        assert sum(p["scores"].values()) == pytest.approx(1, abs=1e-5) and p["score"] == max(p["scores"].values())

    model = load_model(checkpoint, task_dir=toy_data, batch_size=64)
    assert model.kind == "sentence_pair" and model.labels == ["contradiction", "entailment", "neutral"]
    assert [p["label"] for p in model.predict([tuple(r) for r in rows("zh")])] == evaluated("zh")
    # (a toy model may give every row one label:) the raw rows' token ids and probabilities are the stored split's
    from stabletune_fairseq.inference.raw_datasets import pair_dataset

    stored, raw_rows = model.task.load_dataset("valid_de"), pair_dataset(model.task, model.encoder, rows("de"))
    assert all(torch.equal(raw_rows[i]["net_input.src_tokens"], stored[i]["net_input.src_tokens"]) for i in range(150))
    stored_logits, _ = model.predictor.outputs(stored)
    for p, logits in zip(predicted, stored_logits):
        assert list(p["scores"].values()) == pytest.approx(torch.softmax(logits, -1).tolist(), abs=2e-6)
    with caplog.at_level("WARNING"):
        long = model.predict([(" ".join(["word"] * 400), "short")])  # cut to the folder's 256 tokens, counted
    assert len(long) == 1 and "1 of 1 pairs are longer than 256 tokens and were cut" in caplog.text
    with pytest.raises(ValueError, match=r"inputs\[0\]: a single text, but xnli classifies sentence pairs"):
        model.predict(["one sentence"])

    # bad input: refused with the file and line, exit status 2, nothing predicted (read before the model is loaded;
    # in this process: the command itself ran above)
    bad = tmp_path / "bad.txt"
    for text, message in (
        (f"{rows('de')[0][0]}\t{rows('de')[0][1]}\nno tab here\n", f"{bad}:2: no tab: xnli classifies"),
        ("a\tb\n\nc\td\n", f"{bad}:2: blank line"),
        ("", f"{bad}: no inputs"),
    ):
        bad.write_text(text, encoding="utf-8")
        capsys.readouterr()
        assert predict(["--checkpoint", str(checkpoint), "--input", str(bad)]) == 2
        refused = capsys.readouterr()
        assert f"stabletune-predict: {message}" in refused.err and not refused.out


def tensorboard_scalars(folder) -> dict:
    """{(run, tag): [(step, value), ...]} of the event files under folder: TFRecords (uint64 length, uint32 crc,
    an Event protobuf, uint32 crc), one run per subfolder (train_inner, train, valid)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    scalars = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault((path.parent.name, value.tag), []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_events_hold_the_logged_metrics(first_run):
    import math

    save_dir, log = first_run
    assert f"--tensorboard-logdir {save_dir.parent / 'tensorboard'}" in log
    scalars = tensorboard_scalars(save_dir.parent / "tensorboard")
    train_line = [line for line in log.splitlines() if " | train | " in line][-1]
    logged = {
        "train": [
            {k: float(v) for k, v in (f.strip().split(" ", 1) for f in train_line.split(" | train | ")[1].split("|"))}
        ],
        "valid": valid_lines(log),
    }
    assert [r["num_updates"] for r in logged["train"]] == [4] and [r["num_updates"] for r in logged["valid"]] == [2, 4]
    for run_name, rows in logged.items():
        # every scalar of the log's train/valid lines, at the update it was logged at, as the log shows it
        for key in set(rows[-1]) - {"epoch", "num_updates"}:
            events = scalars.get((run_name, key))
            assert events is not None, f"{run_name}/{key} not in the TensorBoard events: {sorted(scalars)}"
            assert [step for step, _ in events] == [int(r["num_updates"]) for r in rows if key in r], (run_name, key)
            for (_, value), row in zip(events, (r for r in rows if key in r)):
                assert math.isfinite(value) and value == pytest.approx(row[key], rel=1e-4, abs=1e-3), (run_name, key)
    for key in ("loss", "task_loss", "r1", "r2", "acc_en", "lr", "gnorm"):
        assert ("train", key) in scalars
    for key in ("task_loss", "acc_avg", *(f"acc_{lang}" for lang in LANGS)):
        assert [step for step, _ in scalars[("valid", key)]] == [2, 4]


def test_wandb_without_the_package_is_refused(tmp_path):
    import importlib.util

    if importlib.util.find_spec("wandb"):
        pytest.skip("wandb is installed")
    refused = run(
        ["bash", "run_scripts/run_xtreme.sh", "XNLI", tmp_path / "model.pt", tmp_path, tmp_path / "ck", "WANDB=demo"],
        check=False,
    )
    assert (
        refused.returncode == 2
        and "WANDB=demo needs the wandb package" in refused.stderr
        and not (tmp_path / "ck").exists()
    )


def test_the_exported_classifier_predicts_in_a_transformers_pipeline_as_stabletune_predict(
    first_run, toy_xtreme, tmp_path
):
    """stabletune-export hf, then transformers' own text-classification pipeline on raw French pairs: the
    labels and probabilities load_model (stabletune-predict's code) gives."""
    from conftest import transformers_or_skip

    from stabletune_fairseq import load_model
    from stabletune_fairseq.convert.fairseq_to_hf import export_hf

    transformers = transformers_or_skip()
    checkpoint = first_run[0] / "checkpoint_last.pt"
    out = export_hf(checkpoint, tmp_path / "hf")
    rows = [
        tuple(line.split("\t")[:2])
        for line in (toy_xtreme / "xnli" / "dev-fr.tsv").read_text(encoding="utf-8").splitlines()
    ]
    ours = load_model(checkpoint, device="cpu", batch_size=64).predict(rows)
    pipe = transformers.pipeline("text-classification", model=str(out), device="cpu")
    theirs = pipe([{"text": a, "text_pair": b} for a, b in rows], top_k=None, batch_size=64)
    assert len(theirs) == len(ours) == 150
    for mine, hf in zip(ours, theirs):
        scores = {entry["label"]: entry["score"] for entry in hf}
        assert max(scores, key=scores.get) == mine["label"]
        assert scores == pytest.approx(mine["scores"], abs=1e-5)  # probabilities written to 6 digits
