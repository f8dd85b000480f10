"""Tiny real fairseq-train runs of the QA recipes (run_xtreme.sh), then stabletune-evaluate."""

import json
import re

import pytest
from conftest import QA_MAX_LEN, SQUAD2_SAMPLE, needs_squad2, preprocess_into, read_metadata
from test_train_tagging import evaluate, logged, recipe

from stabletune_fairseq.metrics.qa_scores import exact_match, score_questions
from stabletune_fairseq.metrics.squad_v2 import evaluate_v2, read_golds


def gold_answers(squad: dict) -> dict[str, list[str]]:
    """Question id -> the gold answer texts of a SQuAD-format file ([] for an unanswerable question)."""
    return {
        qa["id"]: [a["text"] for a in qa["answers"]]
        for article in squad["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    }


def valid_scores(log: str) -> dict[str, float]:
    """The metrics of the last validation line of a fairseq log."""
    line = [line for line in log.splitlines() if "valid on 'valid' subset" in line][-1]
    return {k: float(v) for k, v in re.findall(r"\| (\w+) ([-\d.]+)(?= \||$)", line)}


@pytest.fixture(scope="module")
def xquad_stage1(e5_dir, toy_xquad, toy_dicts, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("xquad") / "run"
    log = recipe("XQUAD", e5_dir, toy_xquad, save_dir, "STAGE=1", f"DICT_DIR={toy_dicts}", "DICT_LANGS=de")
    return save_dir, log


def test_stage1_trains_spans_with_r1_on_code_switched_windows(xquad_stage1):
    _, log = xquad_stage1
    assert "--task xtreme_qa" in log and "--view-augmentation code_switch" in log
    assert "--r1-lambda 5.0" in log  # QA: the reference lambda as it is (a KL over positions, not classes)
    assert "checkpoint selection by f1_avg" in log
    assert any(v > 0 for v in logged(log, "r1"))
    # validation decodes whole questions and scores EM/F1 per language; the average covers every language
    # (its batches hold one language each: an average taken from the first batch would be German alone)
    scores = valid_scores(log)
    for metric in ("em", "f1"):
        per_language = [scores[f"{metric}_{lang}"] for lang in ("de", "en", "zh")]
        assert scores[f"{metric}_avg"] == pytest.approx(sum(per_language) / 3, abs=0.002)


def test_stage2_trains_r2_on_subword_sampled_copies(xquad_stage1, e5_dir, toy_xquad):
    save_dir, _ = xquad_stage1
    log = recipe("XQUAD", e5_dir, toy_xquad, save_dir, "STAGE=2")
    assert "--copy-augmentation subword_sampling --view-augmentation subword_sampling" in log
    assert "--r2-lambda 5.0" in log
    assert any(v > 0 for v in logged(log, "r2"))
    assert (save_dir / "stage2" / "checkpoint_last.pt").is_file()


@pytest.fixture(scope="module")
def xquad_evaluated(xquad_stage1, toy_xquad, tmp_path_factory):
    """stabletune-evaluate of stage 1's last checkpoint on the dev sets: (results, its folder), shared."""
    out = tmp_path_factory.mktemp("xquad-eval")
    return evaluate(xquad_stage1[0] / "checkpoint_last.pt", toy_xquad, "valid", out), out


def test_evaluation_answers_every_question_with_a_piece_of_its_context(xquad_stage1, xquad_evaluated, toy_qa_xtreme):
    save_dir, log = xquad_stage1
    results, tmp_path = xquad_evaluated
    assert results["metrics"] == ["f1", "exact_match"] and set(results["per_language"]) == {"de", "en", "zh"}
    for lang in ("de", "en", "zh"):
        source = json.loads((toy_qa_xtreme / "xquad" / f"xquad.{lang}.json").read_text(encoding="utf-8"))
        questions = {
            qa["id"]: (p["context"], [a["text"] for a in qa["answers"]])
            for article in source["data"]
            for p in article["paragraphs"]
            for qa in p["qas"]
        }
        predictions = json.loads((tmp_path / "predictions" / f"valid-{lang}.json").read_text(encoding="utf-8"))
        assert set(predictions) == set(questions)  # the SQuAD submission format, every question
        assert all(text and text in questions[qid][0] for qid, text in predictions.items())
        # the reported scores are those of the written predictions
        scores = score_questions(
            predictions, {q: golds for q, (_, golds) in questions.items()}, style="squad", lang=lang
        )
        assert results["per_language"][lang]["f1"] == round(scores["f1"], 2)
        assert results["per_language"][lang]["exact_match"] == round(scores["exact_match"], 2)
        assert results["per_language"][lang]["n"] == len(questions)
    # validation during training scored the same subset: its last F1 equals the evaluation of the last checkpoint
    assert valid_scores(log)["f1_avg"] == pytest.approx(results["average"]["f1"], abs=0.01)


def test_mlqa_data_prepared_for_evaluation_only_with_a_warning(toy_qa_xtreme, e5_dir, tmp_path):
    import shutil
    import subprocess

    src = tmp_path / "xtreme"
    shutil.copytree(toy_qa_xtreme / "mlqa", src / "mlqa")
    result = subprocess.run(
        ["bash", "preprocess/xtreme/process.sh", src, "mlqa", e5_dir, tmp_path / "out"],
        capture_output=True,
        text=True,
        cwd=str(__import__("conftest").REPO),
    )
    assert result.returncode == 0, result.stderr
    assert "prepared for evaluation only" in result.stderr
    meta = read_metadata(tmp_path / "out" / "mlqa")
    assert sorted(meta["splits"]) == ["valid_de", "valid_en", "valid_zh"]
    assert any("dev-context-en-question-de.json" in s for s in meta["skipped_files"])


def test_tydiqa_without_dev_answers_trains_on_translations_and_predicts_the_test_sets(e5_dir, toy_tydiqa, tmp_path):
    meta = read_metadata(toy_tydiqa)
    assert sorted(meta["splits"]) == ["test_en", "test_zh", "train"] and list(meta["translations"]) == ["de"]
    save_dir = tmp_path / "run"
    log = recipe("TYDIQA", e5_dir, toy_tydiqa, save_dir, "STAGE=1")
    assert "validation off, the last checkpoint is the result" in log and "--disable-validation" in log
    assert "--view-augmentation subword_sampling --subword-sampling-prob 0.3" in log
    # translate-train-all stage 2: the translated questions are labelled copies, the stage-1 last checkpoint the teacher
    log = recipe("TYDIQA", e5_dir, toy_tydiqa, save_dir, "STAGE=2", "SETTING=translate-train-all")
    assert "--copy-augmentation translation" in log and f"--teacher {save_dir}/checkpoint_last.pt" in log
    assert "--r2-lambda 0.3" in log and any(v > 0 for v in logged(log, "r2"))
    results = evaluate(save_dir / "stage2" / "checkpoint_last.pt", toy_tydiqa, "test", tmp_path / "eval")
    assert results["per_language"]["zh"] == {"n": 18, "labelled": False} and results["average"] == {}
    predictions = json.loads((tmp_path / "eval" / "predictions" / "test-zh.json").read_text(encoding="utf-8"))
    assert len(predictions) == 18 and all(isinstance(v, str) for v in predictions.values())


def test_a_model_of_one_qa_dataset_is_scored_on_another_with_a_warning(e5_dir, toy_tydiqa, toy_xquad, tmp_path):
    """Zero-shot transfer between QA datasets (a TyDiQA-GoldP model on XQuAD): the same span labels, so the run
    record's other task is a warning stored with the results, not a refusal (another kind of task still is)."""
    recipe("TYDIQA", e5_dir, toy_tydiqa, tmp_path / "run", "MAX_UPDATE=2")
    results = evaluate(tmp_path / "run" / "checkpoint_last.pt", toy_xquad, "valid", tmp_path / "eval")
    assert "was trained on tydiqa" in results["data_check"] and f"{toy_xquad} holds xquad" in results["data_check"]
    assert set(results["per_language"]) == {"de", "en", "zh"} and 0 <= results["average"]["f1"] <= 100


def test_mlqa_trains_and_evaluates_with_mlqa_scoring(toy_qa_xtreme, e5_dir, tmp_path):
    data = preprocess_into(tmp_path / "data", toy_qa_xtreme, "mlqa", e5_dir, f"MAX_LEN={QA_MAX_LEN}", "DOC_STRIDE=16")
    log = recipe("MLQA", e5_dir, data, tmp_path / "run", "MAX_UPDATE=1")
    results = evaluate(tmp_path / "run" / "checkpoint_last.pt", data, "valid", tmp_path / "eval")
    differs = 0
    for lang in ("de", "en", "zh"):
        source = json.loads(
            (toy_qa_xtreme / "mlqa" / "MLQA_V1" / "dev" / f"dev-context-{lang}-question-{lang}.json").read_text(
                encoding="utf-8"
            )
        )
        golds = gold_answers(source)
        predictions = json.loads((tmp_path / "eval" / "predictions" / f"valid-{lang}.json").read_text(encoding="utf-8"))
        mlqa, squad = (score_questions(predictions, golds, style=style, lang=lang) for style in ("mlqa", "squad"))
        assert results["per_language"][lang]["f1"] == round(mlqa["f1"], 2)
        assert results["per_language"][lang]["exact_match"] == round(mlqa["exact_match"], 2)
        differs += round(mlqa["f1"], 2) != round(squad["f1"], 2)
    assert differs  # the two normalisations disagree here, so the equality above tells which one was used
    # validation during training scored the same way: its F1 is the evaluation's
    assert valid_scores(log)["f1_avg"] == pytest.approx(results["average"]["f1"], abs=0.01)


@needs_squad2
def test_squad2_trains_on_unanswerable_questions_and_answers_them_with_nothing(e5_dir, tmp_path):
    """SQuAD 2.0 end to end: unanswerable training questions point at the null position, the decoder
    answers "" where the null score wins, and an empty prediction is right exactly for unanswerable ones."""
    squad2 = SQUAD2_SAMPLE
    download = tmp_path / "download" / "squad"
    download.mkdir(parents=True)
    files = {}
    # "Huguenot" (8 paragraphs, 79 questions) to train on, "Normans" (4 paragraphs, 28 questions) to answer
    for name, article, paragraphs in (("train-v2.0.json", 1, 8), ("dev-v2.0.json", 0, 4)):
        squad = json.loads((squad2 / name).read_text(encoding="utf-8"))
        squad["data"] = [dict(squad["data"][article], paragraphs=squad["data"][article]["paragraphs"][:paragraphs])]
        (download / name).write_text(json.dumps(squad), encoding="utf-8")
        files[name] = squad
    data = preprocess_into(tmp_path / "data", download.parent, "squad", e5_dir, "MAX_LEN=128", "DOC_STRIDE=64")
    meta = read_metadata(data)
    for name, split in (("train-v2.0.json", "train"), ("dev-v2.0.json", "valid_en")):
        impossible = [qa["is_impossible"] for p in files[name]["data"][0]["paragraphs"] for qa in p["qas"]]
        assert meta["splits"][split]["unanswerable"] == sum(impossible) > 0
    log = recipe("SQUAD", e5_dir, data, tmp_path / "run", "MAX_UPDATE=8")
    results = evaluate(tmp_path / "run" / "checkpoint_last.pt", data, "valid", tmp_path / "eval")
    golds = gold_answers(files["dev-v2.0.json"])
    predictions = json.loads((tmp_path / "eval" / "predictions" / "valid-en.json").read_text(encoding="utf-8"))
    assert set(predictions) == set(golds)
    empty = [qid for qid, text in predictions.items() if text == ""]
    print(f"{len(empty)} of {len(golds)} answered with nothing, {sum(not g for g in golds.values())} unanswerable")
    assert empty  # the null position was learnt and decoded
    # scored as SQuAD 2.0 scores: "" is an exact match for an unanswerable question and for no other
    right = sum(not golds[qid] for qid in empty) + sum(
        exact_match(predictions[q], golds[q]) for q in golds if golds[q] and predictions[q]
    )
    assert results["per_language"]["en"]["exact_match"] == round(100 * right / len(golds), 2)
    assert valid_scores(log)["em_avg"] == pytest.approx(results["average"]["exact_match"], abs=0.01)
    # the official v2.0 evaluation of the files written: each question's null odds (null score - best span score) as
    # its na_prob, "" exactly above the decoder's threshold (0.0), and best_exact/best_f1 found from those odds
    na_probs = json.loads((tmp_path / "eval" / "predictions" / "valid-en.na_prob.json").read_text(encoding="utf-8"))
    assert list(na_probs) == list(predictions)
    assert all(predictions[q] == "" for q in golds if na_probs[q] > 0) and all(
        na_probs[q] <= 0 for q in golds if predictions[q]
    )
    official = evaluate_v2(read_golds(download / "dev-v2.0.json"), predictions, na_probs, na_prob_thresh=0.0)
    row = results["per_language"]["en"]
    assert list(official)[-4:] == ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]
    assert {k: row[k] for k in official} == {
        k: v if k.endswith(("_thresh", "total")) else round(v, 2) for k, v in official.items()
    }
    assert (row["exact"], row["n"], row["NoAns_total"]) == (row["exact_match"], 28, sum(not g for g in golds.values()))
    assert (
        row["best_f1"] >= row["f1"] and row["best_f1_thresh"] <= 0.0
    )  # predictions at 0.0: no higher threshold to find
    assert results["metrics"] == ["f1", "exact_match", "best_f1", "best_exact"]


def test_predict_on_raw_questions_gives_what_evaluate_writes(
    xquad_stage1, xquad_evaluated, toy_xquad, toy_qa_xtreme, tmp_path, capsys
):
    """The raw Chinese XQuAD questions (contexts without spaces, several windows) as JSON lines through
    stabletune-predict: evaluation's answers, with their characters in the context."""
    from conftest import BIN, run

    checkpoint = xquad_stage1[0] / "checkpoint_last.pt"
    evaluated = json.loads((xquad_evaluated[1] / "predictions" / "valid-zh.json").read_text(encoding="utf-8"))
    source = json.loads((toy_qa_xtreme / "xquad" / "xquad.zh.json").read_text(encoding="utf-8"))
    questions = [
        {"id": qa["id"], "question": qa["question"], "context": p["context"]}
        for article in source["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    ]
    assert read_metadata(toy_xquad)["splits"]["valid_zh"]["long_contexts"] > 0
    raw = tmp_path / "xquad-zh.jsonl"
    raw.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    result = run([BIN / "stabletune-predict", "--checkpoint", checkpoint, "--input", raw, "--batch-size", "64"])
    predicted = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["id"] for p in predicted] == [q["id"] for q in questions]
    assert {p["id"]: p["answer"] for p in predicted} == evaluated
    for p, q in zip(predicted, questions):
        assert p["answer"] and q["context"][p["start"] : p["end"]] == p["answer"]
    # a JSON line that is no question: refused with its line
    raw.write_text(json.dumps(questions[0], ensure_ascii=False) + '\n{"question": "Wo?"}\n', encoding="utf-8")
    from stabletune_fairseq.cli.predict import main as predict

    capsys.readouterr()
    assert (
        predict(["--checkpoint", str(checkpoint), "--input", str(raw)]) == 2
    )  # in this process: the command ran above
    assert f'stabletune-predict: {raw}:2: missing "context"' in capsys.readouterr().err


def test_the_exported_span_model_gives_our_logits_and_answers_in_transformers(xquad_stage1, toy_qa_xtreme, tmp_path):
    """stabletune-export hf, then transformers' XLMRobertaForQuestionAnswering on every window of the raw
    English questions: our start/end logits, and decoded by our decoder the answers load_model gives."""
    import torch
    from conftest import transformers_or_skip

    from stabletune_fairseq import load_model
    from stabletune_fairseq.convert.fairseq_to_hf import export_hf
    from stabletune_fairseq.inference.raw_datasets import qa_dataset

    transformers = transformers_or_skip()
    checkpoint = xquad_stage1[0] / "checkpoint_last.pt"
    out = export_hf(checkpoint, tmp_path / "hf")
    hf = transformers.AutoModelForQuestionAnswering.from_pretrained(out).eval()
    source = json.loads((toy_qa_xtreme / "xquad" / "xquad.en.json").read_text(encoding="utf-8"))
    questions = [
        {"question": qa["question"], "context": p["context"]}
        for article in source["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    ]
    model = load_model(checkpoint, device="cpu")
    ours = model.predict(questions)
    dataset = qa_dataset(model.task, model.encoder, questions)
    iterator = model.task.get_batch_iterator(
        dataset, max_sentences=32, max_positions=model.task.max_positions(), disable_iterator_cache=True
    ).next_epoch_itr(shuffle=False)
    answers, windows, largest = {}, 0, 0.0
    with torch.no_grad():
        for sample in iterator:
            tokens, span_mask = sample["net_input"]["src_tokens"], sample["head_input"]["span_mask"]
            mine = model.model(tokens, head=model.task.head_name, span_mask=span_mask)
            theirs = hf(input_ids=tokens, attention_mask=tokens.ne(1).long())
            theirs = torch.stack([theirs.start_logits, theirs.end_logits], -1).masked_fill(~span_mask[..., None], -1e4)
            largest = max(largest, float((mine - theirs).abs().max()))
            windows += tokens.size(0)
            answers.update({int(record["id"]): answer.text for record, _, answer in model.task.decode(theirs, sample)})
    assert largest < 1e-4 and windows > len(questions)  # long contexts: several windows
    assert [answers[i] for i in range(len(questions))] == [o["answer"] for o in ours]
