"""Tiny real fairseq-train runs of the tagging recipes (run_xtreme.sh), then stabletune-evaluate."""
import json
import re
import sys

import pytest
from seqeval.metrics import f1_score

from conftest import run
from stabletune_fairseq.data.tagged_words import read_tagged_sentences

SETTINGS = ["MAX_UPDATE=3", "BSZ=8", "LR=1e-4", "FREEZE_EMBEDDINGS=1"]


def recipe(task, e5_dir, data, save_dir, *extra):
    result = run(["bash", "run_scripts/run_xtreme.sh", task, e5_dir / "model.pt", data, save_dir, *SETTINGS, *extra,
                  "--", "--log-interval", "1"], check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def logged(log: str, key: str) -> list[float]:
    return [float(v) for v in re.findall(rf"\b{key}=([-\d.e]+)", log)]


def evaluate(checkpoint, data, split, out):
    run([sys.executable, "-m", "stabletune_fairseq.cli.evaluate", "--checkpoint", checkpoint, "--data", data,
         "--split", split, "--out", out])
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def read_predictions(path):
    return read_tagged_sentences(path, tags_required=True)


@pytest.fixture(scope="module")
def panx_stage1(e5_dir, toy_panx, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("panx") / "run"
    log = recipe("PANX", e5_dir, toy_panx, save_dir, "STAGE=1")
    return save_dir, log


def test_stage1_trains_per_word_with_r1_on_subword_samples(panx_stage1):
    _, log = panx_stage1
    assert "--task xtreme_tagging" in log and "--pooling first" in log
    assert "--view-augmentation subword_sampling --subword-sampling-prob 0.3" in log
    assert "--r1-lambda 0.7142857142857143" in log  # the reference's 5 over PAN-X's 7 tags
    assert "checkpoint selection by f1_avg" in log
    assert any(v > 0 for v in logged(log, "r1"))
    assert re.search(r"valid on 'valid' subset .*\| f1_de [\d.]+ \| f1_en [\d.]+ \| f1_avg", log)


def test_stage2_uses_hard_teacher_labels_on_augmented_copies(panx_stage1, e5_dir, toy_panx):
    save_dir, _ = panx_stage1
    log = recipe("PANX", e5_dir, toy_panx, save_dir, "STAGE=2")
    assert "--copy-augmentation subword_sampling" in log and "--r2-hard-labels" in log
    assert "--r2-lambda 5.0" in log  # hard labels: a cross-entropy, no per-class conversion
    assert any(v > 0 for v in logged(log, "r2"))
    assert (save_dir / "stage2" / "checkpoint_last.pt").is_file()


def test_every_word_read_gets_a_prediction(panx_stage1, toy_panx, toy_tagging_xtreme, tmp_path):
    save_dir, _ = panx_stage1
    for split, name in (("test", "test-de.tsv"), ("valid", "dev-de.tsv")):
        results = evaluate(save_dir / "checkpoint_last.pt", toy_panx, split, tmp_path / split)
        source = read_tagged_sentences(toy_tagging_xtreme / "panx" / name, tags_required=False)
        predicted = read_predictions(tmp_path / split / "predictions" / f"{split}-de.tsv")
        assert predicted.words == [[w for w in s] for s in source.words]  # same words, same order, every one
        assert results["per_language"]["de"]["n"] == source.word_count
    # the dev score is seqeval's F1 over the whole language, from the written predictions
    gold = read_tagged_sentences(toy_tagging_xtreme / "panx" / "dev-de.tsv", tags_required=True)
    predicted = read_predictions(tmp_path / "valid" / "predictions" / "valid-de.tsv")
    assert results["per_language"]["de"]["f1"] == round(100 * f1_score(gold.tags, predicted.tags), 2)
    assert results["metrics"] == ["f1", "accuracy"] and "en" in results["per_language"]


def test_udpos_plain_with_sum_pooling(e5_dir, toy_udpos, tmp_path):
    save_dir = tmp_path / "udpos"
    log = recipe("UDPOS", e5_dir, toy_udpos, save_dir)
    assert "--pooling sum" in log and logged(log, "r1") == [0.0] * 3
    results = evaluate(save_dir / "checkpoint_last.pt", toy_udpos, "valid", tmp_path / "eval")
    assert 0 <= results["per_language"]["de"]["accuracy"] <= 100


def test_translate_train_stage2_trains_on_unlabelled_translations(panx_stage1, e5_dir, toy_tagging_xtreme, tmp_path):
    folder = tmp_path / "translations" / "PANX" / "translate-train"
    folder.mkdir(parents=True)
    de = read_tagged_sentences(toy_tagging_xtreme / "panx" / "dev-de.tsv", tags_required=True)
    folder.joinpath("en-de-translated.tsv").write_text("".join("\n".join(s) + "\n\n" for s in de.words[:30]),
                                                       encoding="utf-8")
    run(["bash", "preprocess/xtreme/process.sh", toy_tagging_xtreme, "panx", e5_dir, tmp_path / "data", "MAX_LEN=24",
         f"TRANSLATIONS={tmp_path / 'translations'}"])
    data, teacher = tmp_path / "data" / "panx", panx_stage1[0] / "checkpoint_best.pt"  # same tags: a fit teacher
    log = recipe("PANX", e5_dir, data, tmp_path / "run", "STAGE=2", "SETTING=translate-train-all", f"TEACHER={teacher}")
    assert "--copy-augmentation translation --view-augmentation subword_sampling" in log
    train_rows = json.loads((data / "metadata.json").read_text())["splits"]["train"]["examples"]
    assert re.search(rf"loaded train: {train_rows + 30}\b", log)  # English rows + the 30 translated sentences

    # A batch of translated sentences: no task loss (no labels), but R1 and R2 from the teacher.
    from fairseq import checkpoint_utils
    from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion
    from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask

    task = XtremeTaggingTask.setup_task(XtremeTaggingConfig(
        data=str(data), seed=1, view_augmentation="subword_sampling", copy_augmentation="translation",
        subword_sampling_prob=1.0))
    dataset = task.load_dataset("train").dataset
    translated = [dataset[i] for i in range(len(dataset)) if dataset[i]["teacher"]][:8]
    assert len(translated) == 8 and all((item["target"] == -1).all() for item in translated)
    sample = dataset.collater(translated)
    model = checkpoint_utils.load_model_ensemble([str(teacher)], task=task)[0][0].train()
    criterion = StabilityConsistencyCriterion(task, r1_lambda=0.7, r2_lambda=1.0, teacher=str(teacher), r2_hard_labels=True)
    _, n_words, out = criterion(model, sample)
    assert out["task_loss"] == 0 and out["r1"] > 0 and out["r2"] > 0
    assert n_words == sum(len(item["target"]) for item in translated)
