"""GLUE end to end on slices of the real sample (the first rows of each file, so runs are short): process.sh,
run_glue.sh (fairseq-train), GLUE's metrics in validation, stabletune-evaluate and the submission files, for a
classification task (RTE), the STS-B regression with and without R-Drop, and a single-sentence task (CoLA)."""

import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import GLUE_SAMPLE as SAMPLE
from conftest import needs_glue, run
from test_train_xnli import valid_lines

pytestmark = needs_glue
ROWS = {"train.tsv": 48, "dev.tsv": 40, "test.tsv": 24}  # lines kept of each file (plus its header)


@pytest.fixture(scope="module")
def glue(e5_dir, tmp_path_factory) -> Path:
    """RTE, STS-B and CoLA of the sample cut to their first rows, preprocessed with e5-small's vocabulary. Other
    test modules borrow this fixture: it skips by itself where the sample is absent (their module has no mark)."""
    if not SAMPLE.is_dir():
        pytest.skip("../shared/data/glue-sample is absent")
    download = tmp_path_factory.mktemp("glue-download")
    for task in ("RTE", "STS-B", "CoLA"):
        (download / task).mkdir()
        for name, rows in ROWS.items():
            headers = 0 if task == "CoLA" and name != "test.tsv" else 1  # CoLA's train and dev have no header
            lines = (SAMPLE / task / name).read_text(encoding="utf-8").splitlines(keepends=True)
            (download / task / name).write_text("".join(lines[: headers + rows]), encoding="utf-8")
    out = tmp_path_factory.mktemp("glue")
    run(["bash", "preprocess/glue/process.sh", download, "ALL", e5_dir, out])
    return out


def train(glue, e5_dir, task, save_dir, *settings) -> str:
    result = run(
        [
            "bash",
            "run_scripts/run_glue.sh",
            task,
            e5_dir / "model.pt",
            glue,
            save_dir,
            "BSZ=8",
            "LR=1e-4",
            "MAX_UPDATE=4",
            "FREEZE_EMBEDDINGS=1",
            *settings,
        ]
    )
    return result.stdout + result.stderr


def evaluate(save_dir, data, split, out) -> dict:
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.evaluate",
            "--checkpoint",
            save_dir / "checkpoint_best.pt",
            "--data",
            data,
            "--split",
            split,
            "--out",
            out,
        ]
    )
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def rte_run(glue, e5_dir, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("rte") / "run"
    return save_dir, train(glue, e5_dir, "RTE", save_dir)


def test_rte_validates_accuracy_f1_and_mcc_over_the_whole_dev_set(rte_run, glue):
    save_dir, log = rte_run
    assert "--task glue" in log and "--best-checkpoint-metric acc_en" in log
    assert re.search(r"--adam-betas \S*0\.98", log) and "--weight-decay 0.01" in log and "--clip-norm 0.0" in log
    # 48 rows at batch 8: 6 updates an epoch, validated every 3 (twice an epoch, as AMOS) and at the end
    assert "--validate-interval-updates 3" in log
    rows = valid_lines(log)
    assert [r["num_updates"] for r in rows] == [3, 4]
    gold = np.load(glue / "RTE" / "label" / "valid_en.npy")
    for row in rows:
        assert row["nlabelled_en"] == 40 and row["acc_en"] == pytest.approx(100 * row["ncorrect_en"] / 40, abs=1e-3)
        # class 1 of RTE's label list [entailment, not_entailment]: its gold count is the dev file's
        assert row["ngold_en"] == int((gold == 1).sum())
        assert "mcc_en" in row and "f1_en" in row


def test_rte_evaluation_and_the_glue_submission_file(rte_run, glue, tmp_path):
    save_dir, log = rte_run
    best = max(valid_lines(log), key=lambda r: r["acc_en"])
    results = evaluate(save_dir, glue / "RTE", "valid", tmp_path / "valid")
    assert results["per_language"]["en"]["accuracy"] == pytest.approx(best["acc_en"], abs=0.01)
    lines = (tmp_path / "valid" / "predictions" / "valid-en.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 41
    evaluate(save_dir, glue / "RTE", "test", tmp_path / "test")
    submission = (tmp_path / "test" / "RTE.tsv").read_text().splitlines()
    source = (SAMPLE / "RTE" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:25]
    assert submission[0] == "index\tprediction" and len(submission) == 25
    assert [s.split("\t")[0] for s in submission[1:]] == [row.split("\t")[0] for row in source]  # GLUE's own index
    assert {s.split("\t")[1] for s in submission[1:]} <= {"entailment", "not_entailment"}


def test_a_glue_checkpoint_without_a_record_is_checked_by_its_head(rte_run, glue, tmp_path):
    """Written by an older version or plain fairseq: no run record, so the head is looked up by the folder's kind
    ("glue", in the head-of-kind table of models/heads.py) and its shape checked; evaluation then runs."""
    save_dir, _ = rte_run
    state = torch.load(save_dir / "checkpoint_best.pt", map_location="cpu", weights_only=True, mmap=True)
    del state["extra_state"]["stabletune_run"]
    state.pop("last_optimizer_state", None)
    old = tmp_path / "old" / "checkpoint_best.pt"
    old.parent.mkdir()
    torch.save(state, old)
    results = evaluate(old.parent, glue / "RTE", "valid", tmp_path / "valid")
    assert results["data_check"] == "no record in the checkpoint: shapes checked"
    assert results["per_language"]["en"]["n"] == 40


@pytest.fixture(scope="module")
def stsb_runs(glue, e5_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("stsb")
    return {
        reg: (root / reg, train(glue, e5_dir, "STS-B", root / reg, f"REG={reg}", "SEED=2")) for reg in ("none", "rdrop")
    }


def test_stsb_regression_with_and_without_rdrop(stsb_runs, glue, tmp_path):
    stats = pytest.importorskip("scipy.stats")  # installed with seqeval and fairseq (scikit-learn needs it)
    for reg, (_save_dir, log) in stsb_runs.items():
        assert "--best-checkpoint-metric pearson_spearman_en" in log
        rows = valid_lines(log)
        assert rows and all(-100 <= r["pearson_en"] <= 100 and -100 <= r["spearman_en"] <= 100 for r in rows)
        assert all(
            r["pearson_spearman_en"] == pytest.approx((r["pearson_en"] + r["spearman_en"]) / 2, abs=2e-3) for r in rows
        )
        r1 = [
            float(v)
            for line in log.splitlines()
            if "| train |" in line or "train_inner" in line
            for v in re.findall(r"\br1[= ]([\d.e-]+)", line)
        ]
        if reg == "rdrop":
            assert "--view-augmentation dropout --r1-full-gradient --r1-lambda 1.0" in log  # regression: alpha as is
            assert "--task-loss-on-views" not in log  # R-Drop's regression loss: MSE on the first pass only
            assert r1 and max(r1) > 0
        else:
            assert "--view-augmentation" not in log and r1 and all(v == 0 for v in r1)
    # the two runs differ (R-Drop changed the training), and the evaluation matches validation on the 0-5 scale
    none_w, rdrop_w = (torch.load(d / "checkpoint_last.pt", map_location="cpu")["model"] for d, _ in stsb_runs.values())
    assert not torch.equal(none_w["heads.sentence.out_proj.weight"], rdrop_w["heads.sentence.out_proj.weight"])
    save_dir, log = stsb_runs["rdrop"]
    best = max(valid_lines(log), key=lambda r: r["pearson_spearman_en"])
    results = evaluate(save_dir, glue / "STS-B", "valid", tmp_path / "valid")
    assert results["metrics"] == ["pearson", "spearman"]
    assert results["per_language"]["en"]["pearson"] == pytest.approx(best["pearson_en"], abs=0.01)
    assert results["per_language"]["en"]["spearman"] == pytest.approx(best["spearman_en"], abs=0.01)
    # every written score is the model's on that raw pair, encoded here, times 5 (trained on score / 5), to 3
    # decimals; the reported correlations are those of the model's scores against the dev file's (scipy's), and each
    # file's index column is the GLUE file's own
    from stabletune_fairseq.data.binarize.glue import load_encoder
    from stabletune_fairseq.models.checkpoint_loading import load_for_inference

    model, _, _ = load_for_inference(str(save_dir / "checkpoint_best.pt"), str(glue / "STS-B"), torch.device("cpu"))
    encoder = load_encoder(glue / "STS-B" / "dict.txt", glue / "STS-B" / "sentencepiece.bpe.model")

    def model_scores(name, rows):
        header = (SAMPLE / "STS-B" / name).read_text(encoding="utf-8").split("\n", 1)[0].split("\t")
        first, second = header.index("sentence1"), header.index("sentence2")
        with torch.no_grad():
            encoded = [encoder.encode([row[first].strip(), row[second].strip()]) for row in rows]
            return [
                5 * float(model(torch.tensor([[0, *a.tolist(), 2, 2, *b.tolist(), 2]]), head="sentence")[0, 0])
                for a, b in encoded
            ]

    def glue_rows(name, count):
        lines = (SAMPLE / "STS-B" / name).read_text(encoding="utf-8").splitlines()
        return [line.split("\t") for line in lines[1 : count + 1]]

    def written(path):
        lines = [line.split("\t") for line in path.read_text().splitlines()]
        assert lines[0] == ["index", "prediction"]
        return [line[0] for line in lines[1:]], [float(line[1]) for line in lines[1:]]

    dev = glue_rows("dev.tsv", 40)
    index, predicted = written(tmp_path / "valid" / "predictions" / "valid-en.tsv")
    exact, gold = model_scores("dev.tsv", dev), [float(row[-1]) for row in dev]
    assert index == [row[0] for row in dev] and predicted == pytest.approx(exact, abs=1e-3)
    assert results["per_language"]["en"]["pearson"] == pytest.approx(100 * stats.pearsonr(exact, gold)[0], abs=0.01)
    assert results["per_language"]["en"]["spearman"] == pytest.approx(100 * stats.spearmanr(exact, gold)[0], abs=0.01)
    evaluate(save_dir, glue / "STS-B", "test", tmp_path / "test")
    test = glue_rows("test.tsv", 24)
    index, scores = written(tmp_path / "test" / "STS-B.tsv")
    submission = (tmp_path / "test" / "STS-B.tsv").read_text()
    assert submission == (tmp_path / "test" / "predictions" / "test-en.tsv").read_text()
    assert index == [row[0] for row in test] and scores == pytest.approx(model_scores("test.tsv", test), abs=1e-3)
    assert len(scores) == 24 and 0.5 < np.mean(scores) < 4.5  # the 0-5 scale


def test_cola_single_sentences_train_and_report_mcc(glue, e5_dir, tmp_path):
    log = train(glue, e5_dir, "CoLA", tmp_path / "run", "MAX_UPDATE=2", "REG=r3f")
    assert "--best-checkpoint-metric mcc_en" in log
    assert "--view-augmentation noise --noise-type uniform --noise-std 1e-5 --noise-detached" in log
    rows = valid_lines(log)
    assert rows and "mcc_en" in rows[-1]
    from stabletune_fairseq.tasks.glue import GlueConfig, GlueTask

    task = GlueTask.setup_task(GlueConfig(data=str(glue / "CoLA"), seed=1))
    dataset = task.load_dataset("valid")
    item = dataset.collater([dataset[0]])["net_input"]["src_tokens"][0]
    assert item[0] == task.dictionary.bos() and item[-1] == task.dictionary.eos()
    assert int((item == task.dictionary.eos()).sum()) == 1  # <s> sentence </s>: one sentence, one separator


def test_amos_positional_form_trains_in_out_task_epoch_warmup_bsz_lr_seed(glue, e5_dir, tmp_path):
    """run_glue.sh TASK MODEL DATA OUT EPOCH WARMUP BSZ LR SEED (docs/glue.md), DATA the folder of all tasks."""
    result = run(
        [
            "bash",
            "run_scripts/run_glue.sh",
            "rte",
            e5_dir / "model.pt",
            glue,
            tmp_path / "out",
            "5",
            "10",
            "32",
            "4e-5",
            "1",
            "DRY_RUN=1",
        ]
    )
    words = shlex.split(next(line for line in result.stdout.splitlines() if "fairseq-train " in line))
    args = {words[i]: words[i + 1] for i in range(len(words) - 1) if words[i].startswith("--")}
    assert args["--save-dir"] == str(tmp_path / "out" / "RTE" / "5-10-32-4e-5-1")
    assert (args["--max-epoch"], args["--batch-size"], args["--lr"], args["--seed"]) == ("5", "32", "4e-5", "1")
    assert int(args["--warmup-updates"]) == int(int(args["--total-num-update"]) * 0.1)  # WARMUP 10: a tenth
    assert str(glue / "RTE") in words and not (tmp_path / "out").exists()  # the task's folder; a dry run writes nothing


def glue_dry_run(glue, e5_dir, save_dir, *settings) -> tuple[dict, str]:
    result = run(
        ["bash", "run_scripts/run_glue.sh", "RTE", e5_dir / "model.pt", glue / "RTE", save_dir, "DRY_RUN=1", *settings]
    )
    words = shlex.split(next(line for line in result.stdout.splitlines() if "fairseq-train " in line))
    return {
        words[i]: words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True
        for i in range(len(words))
        if words[i].startswith("--")
    }, result.stdout


def greedy_batches(lengths, rows: int, tokens: int) -> int:
    """Batches of rows sorted by length, each as long as it holds at most ``rows`` rows and ``tokens`` tokens
    (rows x its longest): how AMOS's fairseq batches with --max-sentences, --max-tokens and multiple 1."""
    count, size, longest = 0, 0, 0
    for length in sorted(lengths):
        if size and (size == rows or (size + 1) * max(longest, length) > tokens):
            count, size, longest = count + 1, 0, 0
        size, longest = size + 1, max(longest, length)
    return count + (size > 0)


def test_glue_batches_by_amos_token_cap_and_rows_only_as_a_setting(glue, e5_dir, tmp_path):
    """AMOS's run_glue.sh: --max-tokens 2200*BSZ/16 (here raised to the 512 tokens a row may hold) and batch sizes not
    rounded to 8; the schedule (updates, warm-up, half-epoch validation) counts the batches that makes. MAX_TOKENS=0:
    rows only, the command as before the cap."""
    from fairseq.data import data_utils

    first, second = (
        data_utils.load_indexed_dataset(str(glue / "RTE" / part / "train"), None) for part in ("input0", "input1")
    )
    lengths = [int(a) + int(b) + 4 for a, b in zip(first.sizes, second.sizes, strict=True)]  # <s> a </s> </s> b </s>
    assert len(lengths) == ROWS["train.tsv"] and max(lengths) > 4 * 550 / 16  # the cap binds at BSZ=4 below
    for bsz, cap in (("16", 2200), ("4", 550), ("2", 512)):
        args, out = glue_dry_run(glue, e5_dir, tmp_path / "run", f"BSZ={bsz}")
        assert (args["--batch-size"], args["--max-tokens"], args["--required-batch-size-multiple"]) == (
            bsz,
            str(cap),
            "1",
        )
        per_epoch = greedy_batches(lengths, int(bsz), cap)
        assert f"{per_epoch} updates per epoch" in out
        assert int(args["--total-num-update"]) == 5 * per_epoch  # RTE: 5 epochs
        assert args["--warmup-updates"] == str(int(5 * per_epoch * 0.1))
        assert args["--validate-interval-updates"] == str(max(per_epoch // 2, 1))
    assert greedy_batches(lengths, 4, 550) > greedy_batches(lengths, 4, 10**9)  # fewer rows in the long batches
    args, out = glue_dry_run(glue, e5_dir, tmp_path / "run", "BSZ=4", "MAX_TOKENS=0")
    assert "--max-tokens" not in args and "--required-batch-size-multiple" not in args
    rows_only = -(-len(lengths) // 4)  # fairseq's multiple of 8 cannot bite a batch of 4 rows
    assert f"{rows_only} updates per epoch" in out and int(args["--total-num-update"]) == 5 * rows_only
    args, _ = glue_dry_run(glue, e5_dir, tmp_path / "run", "BSZ=4", "MAX_TOKENS=900")
    assert args["--max-tokens"] == "900"
    result = run(
        [
            "bash",
            "run_scripts/run_glue.sh",
            "RTE",
            e5_dir / "model.pt",
            glue / "RTE",
            tmp_path / "run",
            "DRY_RUN=1",
            "MAX_TOKENS=lots",
        ],
        check=False,
    )
    assert result.returncode == 2 and "MAX_TOKENS must be a positive integer (got 'lots')" in result.stderr


@pytest.mark.parametrize("scale, lam", [("fairseq", 0.5 / 4), ("hf", 0.5 * 16 / 8), ("readme", 0.5 * 16 / 2)])
def test_rdrop_scale_sets_the_lambda_of_each_reference(glue, e5_dir, tmp_path, scale, lam):
    """RDROP_SCALE: R-Drop's alpha on the scale of its fairseq criterion (alpha/4), its Hugging Face BERT code
    (alpha * B / 8) or its README snippet (alpha * B / 2), B the rows of a batch (docs/glue.md)."""
    args, _ = glue_dry_run(
        glue, e5_dir, tmp_path / "run", "REG=rdrop", "RDROP_ALPHA=0.5", f"RDROP_SCALE={scale}", "BSZ=16"
    )
    assert float(args["--r1-lambda"]) == pytest.approx(lam) and args["--task-loss-on-views"] is True


def test_rdrop_scale_default_and_bad_value(glue, e5_dir, tmp_path):
    from stabletune_fairseq.recipes.plan import RecipeError
    from stabletune_fairseq.recipes.xtreme import rdrop_lambda

    args, _ = glue_dry_run(glue, e5_dir, tmp_path / "run", "REG=rdrop", "BSZ=8")
    assert args["--r1-lambda"] == "0.25"  # the fairseq scale, alpha 1.0: as before the setting
    assert rdrop_lambda(1.0, "hf", 32) == 4.0 and rdrop_lambda(2.0, "readme", 8) == 8.0
    with pytest.raises(RecipeError, match="RDROP_SCALE must be fairseq, hf or readme"):
        rdrop_lambda(1.0, "paper", 16)
    result = run(
        [
            "bash",
            "run_scripts/run_glue.sh",
            "RTE",
            e5_dir / "model.pt",
            glue / "RTE",
            tmp_path / "run",
            "DRY_RUN=1",
            "REG=rdrop",
            "RDROP_SCALE=paper",
        ],
        check=False,
    )
    assert result.returncode == 2 and "RDROP_SCALE must be fairseq, hf or readme (got 'paper')" in result.stderr


def test_a_folder_of_another_glue_task_is_refused(glue, e5_dir, tmp_path):
    result = run(["bash", "run_scripts/run_glue.sh", "RTE", e5_dir / "model.pt", glue / "STS-B", tmp_path], check=False)
    assert result.returncode == 2
    assert f"{glue / 'STS-B'} holds stsb data, not GLUE's RTE" in result.stderr
