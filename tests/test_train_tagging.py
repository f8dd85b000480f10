"""Tiny real fairseq-train runs of the tagging recipes (run_xtreme.sh), then stabletune-evaluate."""

import importlib.util
import json
import re
import sys

import pytest
from conftest import run, transformers_or_skip, write_tagging_translations
from seqeval.metrics import f1_score

from stabletune_fairseq.data.readers.tagged_words import read_tagged_sentences

SETTINGS = ["MAX_UPDATE=3", "BSZ=8", "LR=1e-4", "FREEZE_EMBEDDINGS=1"]


def recipe(task, e5_dir, data, save_dir, *extra):
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            task,
            e5_dir / "model.pt",
            data,
            save_dir,
            *SETTINGS,
            *extra,
            "--",
            "--log-interval",
            "1",
        ],
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def logged(log: str, key: str) -> list[float]:
    return [float(v) for v in re.findall(rf"\b{key}=([-\d.e]+)", log)]


def evaluate(checkpoint, data, split, out):
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.evaluate",
            "--checkpoint",
            checkpoint,
            "--data",
            data,
            "--split",
            split,
            "--out",
            out,
        ]
    )
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


@pytest.fixture(scope="module")
def panx_evaluated(panx_stage1, toy_panx, tmp_path_factory):
    """stabletune-evaluate of stage 1's last checkpoint: {split: results}, and the folder (``<split>/``), shared."""
    out = tmp_path_factory.mktemp("panx-eval")
    results = {
        split: evaluate(panx_stage1[0] / "checkpoint_last.pt", toy_panx, split, out / split)
        for split in ("test", "valid")
    }
    return results, out


def test_every_word_read_gets_a_prediction(panx_evaluated, toy_tagging_xtreme):
    evaluated, tmp_path = panx_evaluated
    for split, name in (("test", "test-de.tsv"), ("valid", "dev-de.tsv")):
        results = evaluated[split]
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
    # word accuracy and F1 recomputed from the written predictions against the gold tags
    meta = json.loads((toy_udpos / "metadata.json").read_text())
    gold = read_tagged_sentences(meta["splits"]["valid_de"]["source"], tags_required=True)
    predicted = read_predictions(tmp_path / "eval" / "predictions" / "valid-de.tsv")
    pairs = [(p, g) for ps, gs in zip(predicted.tags, gold.tags) for p, g in zip(ps, gs)]
    assert len(pairs) == results["per_language"]["de"]["n"] == gold.word_count
    # gold tags never seen in training are in the count, and errors: the head cannot predict them
    unseen = [(p, g) for p, g in pairs if g in meta["unseen_labels"]]
    assert len(unseen) == sum(meta["splits"]["valid_de"]["unseen_tags"].values()) > 0
    assert all(p != g and p in meta["labels"] for p, g in unseen)
    assert results["per_language"]["de"]["accuracy"] == round(100 * sum(p == g for p, g in pairs) / len(pairs), 2)
    assert results["per_language"]["de"]["f1"] == round(100 * f1_score(gold.tags, predicted.tags), 2)
    # No HF class sums a word's pieces: the export is refused, not approximated, and writes nothing (stabletune-export
    # needs transformers, bash install.sh --hf: without it, this part is left out)
    if importlib.util.find_spec("transformers") is None:
        return
    refused = run(
        [sys.executable, "-m", "stabletune_fairseq.cli.export", "hf", save_dir / "checkpoint_last.pt", tmp_path / "hf"],
        check=False,
    )
    assert refused.returncode == 2 and "trained with --pooling sum" in refused.stderr and not (tmp_path / "hf").exists()


def test_translate_train_stage2_trains_on_one_translation_per_sentence(
    panx_stage1, e5_dir, toy_tagging_xtreme, tmp_path
):
    english = read_tagged_sentences(toy_tagging_xtreme / "panx" / "train-en.tsv", tags_required=True).words
    de = read_tagged_sentences(toy_tagging_xtreme / "panx" / "dev-de.tsv", tags_required=True).words
    # Sentences 0..29 get a German and (0..9) a French "translation" (real text of the dev files).
    write_tagging_translations(
        tmp_path / "translations",
        "panx",
        english[:30],
        de[:30],
        extra_lines=tuple(f"{' '.join(english[i])}\tfr\t{' '.join(de[30 + i])}" for i in range(10)),
    )
    run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            toy_tagging_xtreme,
            "panx",
            e5_dir,
            tmp_path / "data",
            "MAX_LEN=24",
            f"TRANSLATIONS={tmp_path / 'translations'}",
        ]
    )
    data, teacher = tmp_path / "data" / "panx", panx_stage1[0] / "checkpoint_best.pt"  # same tags: a fit teacher
    log = recipe("PANX", e5_dir, data, tmp_path / "run", "STAGE=2", "SETTING=translate-train-all", f"TEACHER={teacher}")
    assert "--copy-augmentation translation --view-augmentation subword_sampling" in log

    from fairseq import checkpoint_utils

    from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion
    from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask

    def task_with(**options):
        return XtremeTaggingTask.setup_task(XtremeTaggingConfig(data=str(data), seed=1, **options))

    rows = len(task_with().load_dataset("train"))  # chunks of the English sentences
    task = task_with(view_augmentation="subword_sampling", copy_augmentation="translation", subword_sampling_prob=1.0)
    dataset = task.load_dataset("train").dataset
    # One copy per English sentence (not one per translation), as the reference trains.
    assert len(dataset) == rows + len(english)
    assert re.search(rf"loaded train: {rows + len(english)} chunks", log)
    as_text = lambda item: " ".join(task.dictionary[i] for i in item["tokens"].tolist())  # noqa: E731
    stored = [
        [" ".join(task.dictionary[i] for i in [0, *part.tokens[k].tolist(), 2]) for k in range(len(part.tokens))]
        for part in dataset.translations.parts
    ]  # de, fr
    # The translations of a sentence's text (the toy English training set repeats sentences: they share theirs).
    options = {
        s: {stored[0][k] for k in range(30) if english[k] == english[s]}
        | {stored[1][k] for k in range(10) if english[k] == english[s]}
        for s in range(10)
    }
    drawn = {}
    for epoch in (1, 2, 3, 4, 5, 6):
        dataset.set_epoch(epoch)
        for s in range(10):
            copy = dataset[rows + s]
            assert copy["teacher"] and (copy["target"] == -1).all()
            text = as_text(copy)
            assert text in options[s]  # one of its own translations
            drawn.setdefault(s, set()).add(text)
            # Its view comes from the translation itself: the same number of words.
            assert copy["view_word_of"].max() == copy["word_of"].max()
    assert any(len(texts) == 2 for texts in drawn.values())  # re-drawn across epochs
    dataset.set_epoch(1)
    alone = next(s for s in range(30, len(english)) if english[s] not in english[:30])
    untranslated = dataset[rows + alone]  # no translation: the English sentence itself, unlabelled
    assert (untranslated["target"] == -1).all() and len(untranslated["target"]) == len(english[alone])

    # A batch of translated copies: no task loss (no labels), but R1 and R2 from the teacher.
    translated = [dataset[rows + s] for s in range(8)]
    sample = dataset.collater(translated)
    model = checkpoint_utils.load_model_ensemble([str(teacher)], task=task)[0][0].train()
    criterion = StabilityConsistencyCriterion(
        task, r1_lambda=0.7, r2_lambda=1.0, teacher=str(teacher), r2_hard_labels=True
    )
    _, n_words, out = criterion(model, sample)
    assert out["task_loss"] == 0 and out["r1"] > 0 and out["r2"] > 0
    assert n_words == sum(len(item["target"]) for item in translated)


def test_predict_on_raw_sentences_gives_what_evaluate_writes(
    panx_stage1, panx_evaluated, toy_panx, toy_tagging_xtreme, tmp_path
):
    """The raw German dev sentences (a long one read in chunks, odd words) through stabletune-predict as
    whitespace-separated words, and through load_model as word lists: evaluation's tags."""
    from conftest import BIN

    from stabletune_fairseq import load_model

    checkpoint = panx_stage1[0] / "checkpoint_last.pt"
    assert json.loads((toy_panx / "metadata.json").read_text())["splits"]["valid_de"]["long_sentences"] > 0
    evaluated = read_predictions(panx_evaluated[1] / "valid" / "predictions" / "valid-de.tsv").tags
    source = read_tagged_sentences(toy_tagging_xtreme / "panx" / "dev-de.tsv", tags_required=True).words
    raw = tmp_path / "dev-de.txt"
    raw.write_text("".join(" ".join(words) + "\n" for words in source), encoding="utf-8")
    result = run([BIN / "stabletune-predict", "--checkpoint", checkpoint, "--input", raw, "--batch-size", "64"])
    predicted = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(predicted) == len(source)
    # A word holding whitespace (the odd sentence's "Anna<TAB>Maria") is two words in this format.
    plain = [k for k, words in enumerate(source) if not any(len(w.split()) != 1 for w in words)]
    assert len(plain) == len(source) - 1 and len(predicted[-1]["words"]) == len(source[-1]) + 1
    assert [predicted[k]["tags"] for k in plain] == [evaluated[k] for k in plain]
    assert [predicted[k]["words"] for k in plain] == [source[k] for k in plain]
    assert all(len(p["scores"]) == len(p["words"]) and all(0 < s <= 1 for s in p["scores"]) for p in predicted)

    model = load_model(checkpoint, batch_size=64)  # word lists: every word as the file has it
    assert model.kind == "tagging" and model.labels == json.loads((toy_panx / "metadata.json").read_text())["labels"]
    assert [p["tags"] for p in model.predict(source)] == evaluated
    # every chunk's token ids and word pooling are those of the stored split
    import torch

    from stabletune_fairseq.inference.raw_datasets import tagging_dataset

    stored, chunks = model.task.load_dataset("valid_de"), tagging_dataset(model.task, model.encoder, source)
    assert len(chunks) == len(stored) > len(source)
    assert all(
        torch.equal(chunks[i]["tokens"], stored[i]["tokens"])
        and torch.equal(chunks[i]["word_of"], stored[i]["word_of"])
        for i in range(len(stored))
    )


def test_the_exported_tagger_tags_in_transformers_as_stabletune_predict(
    panx_stage1, toy_panx, toy_tagging_xtreme, tmp_path
):
    """stabletune-export hf, then transformers' XLMRobertaForTokenClassification on the raw German dev sentences
    (as words): at each word's first piece, the tags and probabilities load_model gives. Sentences longer than
    one training window are read in chunks by us, whole by HF: those are left out."""
    import torch

    from stabletune_fairseq import load_model
    from stabletune_fairseq.convert.fairseq_to_hf import export_hf

    transformers = transformers_or_skip()
    checkpoint = panx_stage1[0] / "checkpoint_last.pt"
    out = export_hf(checkpoint, tmp_path / "hf")
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    hf = transformers.AutoModelForTokenClassification.from_pretrained(out).eval()
    window = json.loads((toy_panx / "metadata.json").read_text())["max_positions"]
    sentences = read_tagged_sentences(toy_tagging_xtreme / "panx" / "dev-de.tsv", tags_required=True).words
    ours = load_model(checkpoint, device="cpu").predict(sentences)
    compared = 0
    for words, mine in zip(sentences, ours):
        encoded = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        word_ids = encoded.word_ids()
        firsts = [word_ids.index(w) for w in range(len(words)) if w in word_ids]
        if len(word_ids) > window or len(firsts) != len(words):
            continue
        with torch.no_grad():
            probabilities = torch.softmax(hf(**encoded).logits[0, firsts], -1)
        assert [hf.config.id2label[int(i)] for i in probabilities.argmax(-1)] == mine["tags"], words
        assert probabilities.max(-1).values.tolist() == pytest.approx(mine["scores"], abs=1e-5)
        compared += 1
    assert compared >= len(sentences) - 3  # the long sentence(s) and the odd one
