"""SQuAD 2.0: the official v2.0 metric on hand-computed cases and on the shared sample's dev file, the null odds of
the decoder and the predictor (na_prob), preprocess/squad/process.sh (AMOS's layout) and run_squad.sh's command."""

from __future__ import annotations

import json
import shlex
import shutil

import numpy as np
import pytest
import torch
from conftest import SQUAD2_SAMPLE as SQUAD2
from conftest import needs_squad2, read_metadata, run

from stabletune_fairseq.data.span_decoding import WindowScores, best_answer
from stabletune_fairseq.metrics.squad_v2 import evaluate_v2, read_golds
from stabletune_fairseq.metrics.squad_v2 import main as squad_v2_main

OFFICIAL_KEYS = [
    "exact",
    "f1",
    "total",
    "HasAns_exact",
    "HasAns_f1",
    "HasAns_total",
    "NoAns_exact",
    "NoAns_f1",
    "NoAns_total",
    "best_exact",
    "best_exact_thresh",
    "best_f1",
    "best_f1_thresh",
]

# --- the official metric, by hand ----------------------------------------------------------------------------
# question: gold answers (has an answer iff the list is not empty) | prediction | na_prob | raw exact, raw F1
#  q1 ["Norman conquest"]                     "the Norman conquest"  0.5   1, 1      ("the" is dropped)
#  q2 ["William the Conqueror", "William"]    "William II"           -1.0  0, 2/3    (vs "william conqueror": P=R=1/2,
#                                                                                    F1 1/2; vs "william": P 1/2, R
# 1, F1 2/3)
#  q3 []                                      ""                     2.0   1, 1      (unanswerable: the gold is "")
#  q4 []                                      "Rollo"                3.0   0, 0
#  q5 ["a", "1066"] ("a" normalises to nothing: dropped)  ""         2.0   0, 0
#  q6 ["the"] (only gold dropped -> [""]; still answerable)  ""      0.0   1, 1
GOLDS = {
    "q1": ["Norman conquest"],
    "q2": ["William the Conqueror", "William"],
    "q3": [],
    "q4": [],
    "q5": ["a", "1066"],
    "q6": ["the"],
}
PREDICTIONS = {"q1": "the Norman conquest", "q2": "William II", "q3": "", "q4": "Rollo", "q5": "", "q6": ""}
NA_PROBS = {"q1": 0.5, "q2": -1.0, "q3": 2.0, "q4": 3.0, "q5": 2.0, "q6": 0.0}


def test_official_scores_without_na_probs_are_the_raw_scores():
    # every na_prob is 0.0, not above the threshold 1.0: exact (1+0+1+0+0+1)/6, F1 (1+2/3+1+0+0+1)/6 = (11/3)/6
    # HasAns q1 q2 q5 q6: exact 2/4, F1 (1+2/3+0+1)/4 = (8/3)/4; NoAns q3 q4: exact = F1 = 1/2
    results = evaluate_v2(GOLDS, PREDICTIONS)
    assert list(results) == OFFICIAL_KEYS[:9]  # no best_* without na_probs
    assert results == pytest.approx(
        {
            "exact": 50.0,
            "f1": 100 * 11 / 18,
            "total": 6,
            "HasAns_exact": 50.0,
            "HasAns_f1": 100 * 2 / 3,
            "HasAns_total": 4,
            "NoAns_exact": 50.0,
            "NoAns_f1": 50.0,
            "NoAns_total": 2,
        }
    )


def test_the_threshold_answers_no_answer_above_it_and_best_thresholds_walk_the_na_probs():
    results = evaluate_v2(GOLDS, PREDICTIONS, NA_PROBS)  # threshold 1.0: q3, q4 and q5 (na_prob > 1) say no answer
    # q3 -> 1, q4 -> 1 (now right), q5 -> 0: exact {1,0,1,1,0,1} = 4/6; F1 {1,2/3,1,1,0,1} = (14/3)/6
    # best: start with all-null = the 2 unanswerable right, threshold 0.0; by na_prob q2 -1, q6 0, q1 .5, q3 2, q5
    # 2, q4 3
    #   exact: 2 +0 (q2: no gain) +1 (q6: 3, thresh 0.0) +1 (q1: 4, thresh 0.5) +0 (q3: equal, not recorded) +0 -1
    #   F1:    2 +2/3 (q2: thresh -1.0) +1 (q6: thresh 0.0) +1 (q1: 4 2/3, thresh 0.5) +0 +0 -1
    assert list(results) == OFFICIAL_KEYS
    assert results == pytest.approx(
        {
            "exact": 100 * 4 / 6,
            "f1": 100 * 14 / 18,
            "total": 6,
            "HasAns_exact": 50.0,
            "HasAns_f1": 100 * 2 / 3,
            "HasAns_total": 4,
            "NoAns_exact": 100.0,
            "NoAns_f1": 100.0,
            "NoAns_total": 2,
            "best_exact": 100 * 4 / 6,
            "best_exact_thresh": 0.5,
            "best_f1": 100 * 14 / 18,
            "best_f1_thresh": 0.5,
        }
    )
    # strictly above: at 0.5 q1 keeps its answer; at -1.5 every question says no answer (the 2 of 6 unanswerable right)
    assert evaluate_v2(GOLDS, PREDICTIONS, NA_PROBS, 0.5)["exact"] == pytest.approx(100 * 4 / 6)
    nothing = evaluate_v2(GOLDS, PREDICTIONS, NA_PROBS, -1.5)
    assert (nothing["exact"], nothing["HasAns_f1"], nothing["NoAns_f1"]) == pytest.approx((100 / 3, 0.0, 100.0))
    assert nothing["best_f1"] == results["best_f1"]  # the best thresholds come from the raw scores


def test_best_threshold_starts_from_all_null_and_keeps_0_when_nothing_beats_it():
    # q_no (unanswerable) answered "x" at -2: 1 - 1 = 0; q_has answered wrong at -1: +0. All-null (1 of 2) stays best.
    golds, predictions = {"q_no": [], "q_has": ["Rollo"]}, {"q_no": "x", "q_has": "Richard"}
    results = evaluate_v2(golds, predictions, {"q_no": -2.0, "q_has": -1.0})
    assert (results["best_exact"], results["best_exact_thresh"], results["best_f1"], results["best_f1_thresh"]) == (
        50.0,
        0.0,
        50.0,
        0.0,
    )
    # a prediction of spaces only is an answer for the walk (the raw string is non-empty) though it scores as ""
    assert evaluate_v2({"q": []}, {"q": " "}, {"q": -1.0})["best_exact"] == 100.0


def test_equal_na_probs_are_walked_in_the_order_of_the_na_prob_mapping():
    # q_yes right (+1) and q_no (unanswerable, answered: -1) share na_prob 0.7; start 1 (q_no right by null)
    golds, predictions = {"q_yes": ["Rollo"], "q_no": []}, {"q_yes": "Rollo", "q_no": "Normandy"}
    first_yes = evaluate_v2(golds, predictions, {"q_yes": 0.7, "q_no": 0.7})  # 1 +1 = 2: a strict gain, thresh 0.7
    first_no = evaluate_v2(golds, predictions, {"q_no": 0.7, "q_yes": 0.7})  # 1 -1 +1 = 1: never above the start
    assert (first_yes["best_exact"], first_yes["best_exact_thresh"]) == (100.0, 0.7)
    assert (first_no["best_exact"], first_no["best_exact_thresh"]) == (50.0, 0.0)


def test_missing_predictions_and_na_probs_are_errors_and_extra_ids_are_ignored():
    with pytest.raises(ValueError, match="1 of 6 questions have no prediction"):
        evaluate_v2(GOLDS, {k: v for k, v in PREDICTIONS.items() if k != "q2"})
    with pytest.raises(ValueError, match="no na_prob"):
        evaluate_v2(GOLDS, PREDICTIONS, {k: v for k, v in NA_PROBS.items() if k != "q2"})
    extra = evaluate_v2(GOLDS, {**PREDICTIONS, "zz": "x"}, {**NA_PROBS, "zz": -9.0})
    assert extra == evaluate_v2(GOLDS, PREDICTIONS, NA_PROBS)


# --- the decoder's and the predictor's null odds -------------------------------------------------------------

CONTEXT = "Rollo led the Normans"


def _window(null: float, span: dict[int, float]) -> WindowScores:
    """<s> followed by the four words of CONTEXT; ``span`` {word index: start and end logit}, others -5."""
    spans = [(-1, -1), (0, 5), (6, 9), (10, 13), (14, 21)]
    logits = np.full(5, -5.0)
    logits[0] = null / 2
    for word, value in span.items():
        logits[1 + word] = value
    return WindowScores(logits, logits.copy(), spans, [False] + [True] * 4)


def test_null_odds_are_the_null_score_minus_the_best_span_and_the_threshold_compares_them():
    # null score 3.0 (1.5 + 1.5); best span "Normans" 1.0 + 1.0 = 2.0: null odds 1.0
    window = _window(3.0, {3: 1.0})
    assert best_answer([window], CONTEXT, allow_null=True).text == ""  # 1.0 > 0.0
    assert best_answer([window], CONTEXT, allow_null=True).null_odds == 1.0
    assert best_answer([window], CONTEXT, allow_null=True, null_margin=1.0).text == "Normans"  # not above 1.0
    assert best_answer([window], CONTEXT, allow_null=True, null_margin=1.0).null_odds == 1.0
    # two windows: the null score is the smallest (1.0), the span the best of all (2.0): -1.0
    assert best_answer([window, _window(1.0, {0: 0.5})], CONTEXT, allow_null=True).null_odds == -1.0


@pytest.fixture(scope="module")
def normans_task(e5_dir, tmp_path_factory):
    """A real SQuAD 2.0 task on the sample's "Normans" article, first 4 paragraphs (28 questions, short enough that
    each question has one 384-token window): XtremeQATask, whose decode the predictor runs."""
    from stabletune_fairseq.data.binarize.xtreme_qa import prepare_qa_task
    from stabletune_fairseq.tasks.xtreme_qa import XtremeQAConfig, XtremeQATask

    folder = tmp_path_factory.mktemp("normans")
    squad = json.loads((SQUAD2 / "dev-v2.0.json").read_text(encoding="utf-8"))
    squad["data"] = [dict(squad["data"][0], paragraphs=squad["data"][0]["paragraphs"][:4])]
    (folder / "dev-v2.0.json").write_text(json.dumps(squad), encoding="utf-8")
    data = prepare_qa_task("squad", folder, e5_dir, folder / "out", 384, layout="squad")
    return XtremeQATask.setup_task(XtremeQAConfig(data=str(data), seed=1)), folder / "dev-v2.0.json"


def null_logits_model(tokens, head, span_mask):
    """A stand-in for the network (the decoder and the threshold are under test): a null score (the start and end
    logits at <s>) of -2, -1, 0, 1 or 2 by the row's token sum, 0 for the one-piece span at the first context piece,
    -5 elsewhere in the context; outside the span mask -1e4, as the span head. Null odds: the null score."""
    assert head == "span"
    null = ((tokens * tokens.ne(1)).sum(1) % 5 - 2).float()
    logits = torch.full((*tokens.shape, 2), -5.0)
    logits[:, 0, :] = null.unsqueeze(1) / 2
    first_context = span_mask[:, 1:].float().argmax(1) + 1
    logits[torch.arange(len(tokens)), first_context, :] = 0.0
    return logits.masked_fill(~span_mask.unsqueeze(-1), -1e4)


@needs_squad2
def test_the_real_decoder_answers_nothing_exactly_above_the_threshold_it_is_given(normans_task):
    from stabletune_fairseq.inference.predictors import QAPredictor, eval_batches

    task, dev = normans_task
    dataset = task.load_dataset("valid_en")
    odds, contexts = {}, {}  # what the stand-in gives each question: its null odds, by construction
    for sample in eval_batches(task, dataset, 8):
        null = null_logits_model(sample["net_input"]["src_tokens"], "span", sample["head_input"]["span_mask"])[:, 0, 0]
        for row, info in enumerate(sample["windows"]):
            assert info.record["id"] not in odds  # one window per question
            odds[info.record["id"]], contexts[info.record["id"]] = 2 * float(null[row]), info.record["context"]
    golds = read_golds(dev)
    assert set(odds) == set(golds) and len(golds) == 28 and len(set(odds.values())) == 5
    predictor = QAPredictor(task, null_logits_model, "cpu", 8)
    assert predictor.metrics == ("f1", "exact_match", "best_f1", "best_exact")
    answered = {}
    for threshold in (0.0, -1.5, 1.5):  # stabletune-evaluate --null-threshold
        predictor.null_threshold = threshold
        scores, text = predictor.predict("valid_en")
        predictions = json.loads(text)
        na_probs = json.loads(predictor.side_files["valid_en"][".na_prob.json"])
        assert na_probs == odds  # the null odds are the decoder's, whatever the threshold
        assert {q for q, answer in predictions.items() if answer} == {q for q in odds if odds[q] <= threshold}
        assert all(contexts[q].startswith(answer) for q, answer in predictions.items() if answer)  # the first piece
        answered[threshold] = sum(bool(answer) for answer in predictions.values())
        official = evaluate_v2(golds, predictions, na_probs, threshold)
        assert {k: scores[k] for k in OFFICIAL_KEYS} == pytest.approx(
            {k: v if k.endswith(("_thresh", "total")) else round(v, 2) for k, v in official.items()}
        )
        assert (scores["exact_match"], scores["n"], scores["null_threshold"]) == (scores["exact"], 28, threshold)
    assert 0 < answered[-1.5] < answered[0.0] < answered[1.5] < 28  # the threshold changed the answers


# --- the official command line on the shared sample ----------------------------------------------------------


@needs_squad2
def test_module_cli_scores_prediction_files_of_the_sample_dev_set(tmp_path, capsys):
    dev = SQUAD2 / "dev-v2.0.json"
    golds = read_golds(dev)
    assert len(golds) == 208 and sum(not g for g in golds.values()) == 112  # the data README: 208, 112 impossible
    right, empty = tmp_path / "right.json", tmp_path / "empty.json"
    right.write_text(json.dumps({q: (g[0] if g else "") for q, g in golds.items()}), encoding="utf-8")
    empty.write_text(json.dumps({q: "" for q in golds}), encoding="utf-8")
    # (in this process: ``python -m stabletune_fairseq.metrics.squad_v2`` runs the same main, after ~10 s of importing
    # the plugin's package)
    assert squad_v2_main([str(dev), str(right)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "exact": 100.0,
        "f1": 100.0,
        "total": 208,
        "HasAns_exact": 100.0,
        "HasAns_f1": 100.0,
        "HasAns_total": 96,
        "NoAns_exact": 100.0,
        "NoAns_f1": 100.0,
        "NoAns_total": 112,
    }
    assert squad_v2_main([str(dev), str(empty)]) == 0
    nothing = json.loads(capsys.readouterr().out)
    assert (nothing["exact"], nothing["f1"]) == (100 * 112 / 208, 100 * 112 / 208)
    assert (nothing["HasAns_exact"], nothing["NoAns_exact"]) == (0.0, 100.0)
    # with an na_prob file (all right answers, every na_prob 0.0) and a threshold below it: every question says
    # no answer; the best threshold answers them all again
    na_probs = tmp_path / "na_prob.json"
    na_probs.write_text(json.dumps({q: 0.0 for q in golds}), encoding="utf-8")
    out = tmp_path / "eval.json"
    assert squad_v2_main([str(dev), str(right), "-n", str(na_probs), "-t", "-0.5", "-o", str(out)]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert list(written) == OFFICIAL_KEYS
    assert (written["exact"], written["best_exact"], written["best_exact_thresh"]) == (100 * 112 / 208, 100.0, 0.0)
    # a prediction missing: an error line and status 2 (the official script stops with a KeyError)
    empty.write_text(json.dumps({q: "" for q in list(golds)[1:]}), encoding="utf-8")
    assert squad_v2_main([str(dev), str(empty)]) == 2
    assert "1 of 208 questions have no prediction" in capsys.readouterr().err


# --- preprocess/squad/process.sh and run_squad.sh -------------------------------------------------------------


@pytest.fixture(scope="module")
def amos_folder(e5_dir, tmp_path_factory):
    """The sample as AMOS lays SQuAD out (the two JSON files side by side), the model folder with AMOS's sp.model,
    and process.sh's output with the default <out>: <folder>/squad."""
    folder = tmp_path_factory.mktemp("squad2")
    for name in ("train-v2.0.json", "dev-v2.0.json"):
        shutil.copy(SQUAD2 / name, folder / name)
    model = folder / "model"
    model.mkdir()
    shutil.copy(e5_dir / "dict.txt", model / "dict.txt")
    shutil.copy(e5_dir / "sentencepiece.bpe.model", model / "sp.model")
    result = run(["bash", "preprocess/squad/process.sh", folder, model])
    return folder, result.stdout + result.stderr


@needs_squad2
def test_process_sh_reads_amos_layout_into_the_squad_task_folder(amos_folder):
    folder, log = amos_folder
    meta = read_metadata(folder / "squad")
    assert f"wrote {folder / 'squad'}" in log
    assert meta["task"] == "squad" and meta["kind"] == "qa" and sorted(meta["splits"]) == ["train", "valid_en"]
    counts = {name: (split["examples"], split["unanswerable"]) for name, split in meta["splits"].items()}
    assert counts == {"train": (5870, 3056), "valid_en": (208, 112)}  # as the data README counts them
    assert meta["splits"]["valid_en"]["source"] == str((folder / "dev-v2.0.json").resolve())
    assert (folder / "squad" / "sentencepiece.bpe.model").is_file()  # AMOS's sp.model, under the task folder's name


@needs_squad2
def test_amos_layout_stores_what_the_xtreme_layout_stores(e5_dir, tmp_path):
    from stabletune_fairseq.data.binarize.xtreme_qa import prepare_qa_task

    (tmp_path / "amos").mkdir()
    (tmp_path / "download" / "squad").mkdir(parents=True)
    for folder in (tmp_path / "amos", tmp_path / "download" / "squad"):
        shutil.copy(SQUAD2 / "dev-v2.0.json", folder / "dev-v2.0.json")
    flat = prepare_qa_task("squad", tmp_path / "amos", e5_dir, tmp_path / "out-amos", 384, layout="squad")
    xtreme = prepare_qa_task("squad", tmp_path / "download", e5_dir, tmp_path / "out-xtreme", 384)
    files = sorted(p.relative_to(flat) for p in flat.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(xtreme) for p in xtreme.rglob("*") if p.is_file())
    for name in files:
        if name.name != "metadata.json":
            assert (flat / name).read_bytes() == (xtreme / name).read_bytes(), name
    meta_flat, meta_xtreme = read_metadata(flat), read_metadata(xtreme)
    for meta in (meta_flat, meta_xtreme):
        del meta["splits"]["valid_en"]["source"]
    assert meta_flat == meta_xtreme


def _dry_run(*args) -> tuple[dict, str]:
    """The fairseq-train options run_squad.sh's run_xtreme.sh builds (the last of a repeated option wins, as in
    fairseq's parser), and the output."""
    result = run(["bash", "run_scripts/run_squad.sh", *args, "DRY_RUN=1"])
    words = shlex.split(next(line for line in result.stdout.splitlines() if "fairseq-train " in line))
    return {
        words[i]: words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True
        for i in range(len(words))
        if words[i].startswith("--")
    }, result.stdout


@needs_squad2
def test_run_squad_sh_passes_amos_settings_to_run_xtreme(amos_folder, e5_dir, tmp_path):
    folder, _ = amos_folder
    # AMOS's positional form, the SQuAD folder as <data>: its output folder, WARMUP 10 = 10% of the updates
    args, out = _dry_run(e5_dir / "model.pt", folder, tmp_path / "out", "3", "10", "16", "2e-5", "7")
    assert "run_squad.sh: bash " in out and "run_xtreme.sh SQUAD" in out
    assert args["--save-dir"] == str(tmp_path / "out" / "3-10-16-2e-5-7")
    assert (args["--batch-size"], args["--lr"], args["--max-epoch"], args["--seed"]) == ("16", "2e-5", "3", "7")
    assert int(args["--warmup-updates"]) == int(int(args["--total-num-update"]) * 0.1)
    assert (args["--adam-betas"], args["--adam-eps"], args["--weight-decay"], args["--clip-norm"]) == (
        "(0.9,0.98)",
        "1e-6",
        "0.01",
        "0.0",
    )
    assert args["--task"] == "xtreme_qa" and args["--best-checkpoint-metric"] == "f1_avg"
    # KEY=VALUE: the run_xtreme.sh command it runs (a model path that does not exist stops that at once); defaults
    # first, then the user's settings (the last wins), WARMUP=16 as AMOS means it (6.25%), fairseq options last
    result = run(
        [
            "bash",
            "run_scripts/run_squad.sh",
            tmp_path / "absent.pt",
            folder,
            tmp_path / "run",
            "LR=3e-5",
            "WARMUP=16",
            "--",
            "--clip-norm",
            "1.0",
        ],
        check=False,
    )
    assert result.returncode == 2 and "pretrained model" in result.stderr
    command = shlex.split(result.stdout.split("run_squad.sh: ", 1)[1])
    assert command[2:6] == ["SQUAD", str(tmp_path / "absent.pt"), str(folder / "squad"), str(tmp_path / "run")]
    settings = command[6 : command.index("--")]
    assert settings == [
        "EPOCHS=3",
        "BSZ=16",
        "LR=2e-5",
        "WARMUP_RATIO=0.1",
        "VALIDATE_INTERVAL_UPDATES=half",
        "OPTIM=amos",
        "LR=3e-5",
        "WARMUP_RATIO=0.0625",
    ]
    assert command[command.index("--") + 1 :][-2:] == ["--clip-norm", "1.0"]
