"""stabletune-report on crafted runs: statistics against hand-computed values, agreement on crafted
prediction files, training curves from fairseq log lines, and the PNGs read back."""

import json
import math
import statistics
from pathlib import Path

import pytest
from conftest import drawn_pixels

from stabletune_fairseq.cli.report import write_report
from stabletune_fairseq.report.agreement import agreement
from stabletune_fairseq.report.curves import read_curves
from stabletune_fairseq.report.statistics import cross_lingual_gap, paired_difference, summarize, t_975

# accuracy per seed (1, 2, 3) and language, for the best-avg rule on valid
PLAIN = {"en": [50.0, 52.0, 57.0], "de": [40.0, 44.0, 42.0], "fr": [38.0, 40.0, 45.0]}
STAGE1 = {"en": [52.0, 55.0, 56.0], "de": [45.0, 45.0, 47.0], "fr": [40.0, 44.0, 42.0]}


def test_summary_and_paired_interval_by_hand():
    s = summarize([50.0, 52.0, 57.0])
    assert s["mean"] == 53.0 and s["n"] == 3
    assert s["sd"] == pytest.approx(math.sqrt(13.0))  # squares 9 + 1 + 16 = 26, over n - 1 = 2
    d = paired_difference([52.0, 55.0, 56.0], [50.0, 52.0, 57.0])  # differences 2, 3, -1
    assert d["mean"] == pytest.approx(4 / 3)
    sd = math.sqrt(((2 - 4 / 3) ** 2 + (3 - 4 / 3) ** 2 + (-1 - 4 / 3) ** 2) / 2)
    assert d["sd"] == pytest.approx(sd)
    half = 4.303 * sd / math.sqrt(3)  # t(0.975, 2 df) = 4.303
    assert d["ci95"] == pytest.approx([4 / 3 - half, 4 / 3 + half])
    assert summarize([3.0])["sd"] is None and paired_difference([3.0], [1.0])["ci95"] is None
    assert cross_lingual_gap({"en": 60.0, "de": 50.0, "fr": 46.0}) == 12.0
    assert cross_lingual_gap({"de": 50.0}) is None
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([1.0, 2.0], [1.0])


def test_t_quantiles_are_students():
    stats = pytest.importorskip("scipy.stats")  # installed with seqeval and fairseq (scikit-learn needs it)
    table = (1, 2, 3, 4, 5, 10, 20, 30, 60, 120)  # rows of the table: scipy's quantiles to 3 decimals
    assert all(t_975(df) == round(float(stats.t.ppf(0.975, df)), 3) for df in table)  # 2 df: 4.303, used above
    assert t_975(22) == t_975(20) > round(float(stats.t.ppf(0.975, 22)), 3)  # between rows: the wider interval
    assert t_975(500) == round(float(stats.norm.ppf(0.975)), 3) == 1.960  # past the table: the normal's quantile


def _results(
    folder: Path, scores: dict, seed_index: int, rule: str, predictions: dict | None = None, updates=10, task="xnli"
):
    """``scores``: {lang: [accuracy per seed]}, or {lang: {metric: [value per seed]}} (the first metric leads)."""
    per_language = {
        lang: {
            **{m: v[seed_index] for m, v in (values if isinstance(values, dict) else {"accuracy": values}).items()},
            "n": 4,
        }
        for lang, values in scores.items()
    }
    metrics = [m for m in next(iter(per_language.values())) if m != "n"]
    folder.mkdir(parents=True)
    average = {m: round(sum(r[m] for r in per_language.values()) / len(per_language), 2) for m in metrics}
    (folder / "results.json").write_text(
        json.dumps(
            {
                "task": task,
                "split": "valid",
                "metric": metrics[0],
                "metrics": metrics,
                "checkpoint": "x.pt",
                "per_language": per_language,
                "average": {**average, "languages": len(per_language)},
                "rule": rule,
                "num_updates": updates,
            }
        )
    )
    if predictions:
        (folder / "predictions").mkdir()
        for lang, labels in predictions.items():
            (folder / "predictions" / f"valid-{lang}.tsv").write_text("".join(label + "\n" for label in labels))


TRAIN_LINE = (
    "2026-12-01 09:48:36 | INFO | train_inner | epoch 001:     {u} / 564 loss=1.7, task_loss={t}, r1={r1}, "
    "r2=0, acc_en=31.25, wps=244.5, bsz=32, num_updates={u}, lr=9e-05, gnorm=0.499\n"
)
VALID_LINE = (
    "2026-12-01 10:15:05 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 1.395 | acc_en 60.4 | "
    "acc_avg {a} | wps 713.6 | num_updates {u} | best_acc_avg 56.48\n"
)


@pytest.fixture
def crafted_runs(tmp_path):
    """A run_seeds.sh folder: 3 seeds of plain and stage 1 (seed 3's stage 1 failed, then was evaluated
    anyway: 'failed' in status), results and predictions written by hand."""
    english = ["entailment", "neutral", "contradiction", "neutral"]
    german = {
        "plain": ["entailment", "neutral", "neutral", "entailment"],  # 2 of 4 agree with English
        "stage1": ["entailment", "neutral", "contradiction", "entailment"],
    }  # 3 of 4
    for i, seed in enumerate((1, 2, 3)):
        for stage, sub, scores in (("plain", "plain", PLAIN), ("stage1", "xtune", STAGE1)):
            run = tmp_path / f"seed{seed}" / sub
            preds = {"en": english, "de": german[stage], "fr": english[:3]}  # fr: not parallel (3 lines), left out
            _results(run / "eval" / "best-avg-valid", scores, i, "best-avg", preds)
            _results(
                run / "eval" / "last-valid", {k: [v - 1 for v in vs] for k, vs in scores.items()}, i, "last", updates=20
            )
            (tmp_path / f"seed{seed}" / "status").mkdir(exist_ok=True)
            (tmp_path / f"seed{seed}" / "status" / f"{stage}.json").write_text(
                json.dumps({"status": "done", "exit": 0, "wall_s": 100 * (seed + (stage == "stage1")), "command": "c"})
            )
            (run / "train.log").write_text(
                "".join(TRAIN_LINE.format(u=u, t=1.5 - u / 100, r1=0.01 * (stage == "stage1")) for u in (10, 20))
                + VALID_LINE.format(a=50 + seed, u=20)
            )
    return tmp_path


def test_report_statistics_agreement_and_plots(crafted_runs, tmp_path):
    out = tmp_path / "report"
    report = write_report(str(crafted_runs), str(out))
    cells = report["scores"]["valid"]["best-avg"]["plain"]["accuracy"]
    assert cells["en"]["mean"] == 53.0 and cells["en"]["sd"] == pytest.approx(math.sqrt(13.0)) and cells["en"]["n"] == 3
    # average over languages per seed: (50+40+38)/3, (52+44+40)/3, (57+42+45)/3
    assert cells["average"]["mean"] == pytest.approx((128 / 3 + 136 / 3 + 144 / 3) / 3)
    # gap per seed: en minus the mean of de and fr: 11, 10, 13.5
    assert cells["gap"]["values"] == pytest.approx([11.0, 10.0, 13.5])
    diff = report["differences"]["valid"]["best-avg"]["stage1"]["accuracy"]["en"]
    assert diff["values"] == pytest.approx([2.0, 3.0, -1.0])
    assert diff["ci95"][0] == pytest.approx(4 / 3 - 4.303 * diff["sd"] / math.sqrt(3))
    assert report["scores"]["valid"]["last"]["stage1"]["accuracy"]["en"]["mean"] == pytest.approx(54.0 + 1 / 3 - 1)
    agree = report["agreement"]["valid"]["best-avg"]
    assert agree["plain"]["de"]["mean"] == 50.0 and agree["stage1"]["de"]["mean"] == 75.0
    assert "fr" not in agree["plain"]  # 3 lines against English's 4: not parallel, not compared
    gain = report["agreement_differences"]["valid"]["best-avg"]["stage1"]["de"]
    assert gain["values"] == [25.0, 25.0, 25.0] and gain["ci95"] == pytest.approx([25.0, 25.0])
    assert report["checkpoints"]["plain"]["last"] == {"1": 20, "2": 20, "3": 20}
    assert report["wall_s"]["stage1"]["values"] == [200, 300, 400]
    md = (out / "report.md").read_text()
    assert "| xTune stage 1 − plain (n=3) | +1.33 [" in md and "best by English dev" not in md
    assert "## Cross-lingual agreement with English" in md and "![scores.png](scores.png)" in md
    # drawn, not blank: coloured bars and points, lines (measured: 11% and 0.4% of the pixels)
    assert drawn_pixels(out / "scores.png", (600, 400)) > 0.02 and drawn_pixels(out / "curves.png", (1000, 700)) > 0.001
    assert json.loads((out / "report.json").read_text())["seeds"] == [1, 2, 3]


def test_missing_and_failed_runs_are_listed(crafted_runs, tmp_path):
    (crafted_runs / "seed3" / "status" / "stage1.json").write_text(
        json.dumps({"status": "failed", "exit": 1, "wall_s": 5, "command": "c"})
    )
    for rule in ("best-avg-valid", "last-valid"):
        for f in sorted((crafted_runs / "seed3" / "xtune" / "eval" / rule).rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        (crafted_runs / "seed3" / "xtune" / "eval" / rule).rmdir()
    report = write_report(str(crafted_runs), str(tmp_path / "r"))
    assert "seed 3 stage1: failed (exit 1)" in report["missing"]
    assert report["scores"]["valid"]["best-avg"]["stage1"]["accuracy"]["en"]["n"] == 2
    assert report["differences"]["valid"]["best-avg"]["stage1"]["accuracy"]["en"]["values"] == pytest.approx([2.0, 3.0])


def test_qa_agreement_is_f1_between_answers(tmp_path):
    folder = tmp_path / "eval"
    (folder / "predictions").mkdir(parents=True)
    (folder / "predictions" / "valid-en.json").write_text(json.dumps({"q1": "Paris", "q2": "the 1990 war"}))
    (folder / "predictions" / "valid-de.json").write_text(json.dumps({"q1": "Paris", "q2": "1990 Krieg", "q3": "x"}))
    results = {"task": "xquad", "split": "valid", "per_language": {"en": {}, "de": {}}}
    # q1: identical (100); q2: "1990 war" against "1990 krieg" after SQuAD normalisation: P = R = 1/2 (50); q3: no
    # English
    assert agreement(str(folder), results) == {"de": {"agreement": 75.0, "n": 2}}
    assert agreement(str(folder), {**results, "task": "panx"}) is None


def test_curves_keep_the_later_line_of_a_repeated_update(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(
        TRAIN_LINE.format(u=10, t=1.4, r1=0.2)
        + TRAIN_LINE.format(u=20, t=1.3, r1=0.1)
        + "killed here, resumed from update 10\n"
        + TRAIN_LINE.format(u=20, t=1.25, r1=0.05)
        + VALID_LINE.format(a=56.48, u=20)
    )
    curves = read_curves(str(log))
    assert curves["train"]["task_loss"] == [(10, 1.4), (20, 1.25)] and curves["train"]["r1"] == [(10, 0.2), (20, 0.05)]
    assert curves["valid"] == [(20, 56.48)] and curves["valid_metric"] == "acc_avg"


def test_not_a_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="neither a run_seeds.sh output folder"):
        write_report(str(tmp_path), str(tmp_path / "r"))


def test_extra_best_checkpoint_and_history_across_a_resume(tmp_path):
    from stabletune_fairseq.tasks.checkpoint_selection import CheckpointSelection, read_history

    selection = CheckpointSelection("acc_en")
    saved = tmp_path / "checkpoint_last.pt"

    def validate_and_save(update, acc_en, content):
        selection.validated({"num_updates": update, "acc_en": acc_en, "acc_avg": 1.0, "note": "not a number"})
        saved.write_text(content)
        selection.saved(str(saved), update)

    validate_and_save(10, 50.0, "update 10")
    validate_and_save(20, 48.0, "update 20")
    assert (tmp_path / "checkpoint_best_acc_en.pt").read_text() == "update 10"
    validate_and_save(30, 50.0, "update 30")  # a tie goes to the later checkpoint, as fairseq's own best
    assert (tmp_path / "checkpoint_best_acc_en.pt").read_text() == "update 30"
    # Resumed from an older checkpoint (update 20): the records after it are replaced, the best re-read.
    resumed = CheckpointSelection("acc_en")
    resumed.validated({"num_updates": 30, "acc_en": 49.0})
    saved.write_text("update 30, again")
    resumed.saved(str(saved), 30)
    assert [r["num_updates"] for r in read_history(str(tmp_path))] == [10, 20, 30]
    assert (tmp_path / "checkpoint_best_acc_en.pt").read_text() == "update 30"  # 49 < 50 (update 10): not copied
    assert "note" not in read_history(str(tmp_path))[0]
    selection.saved(str(saved), 40)  # a save without a validation: nothing recorded
    assert len(read_history(str(tmp_path))) == 3
    (tmp_path / "valid_history.jsonl").write_text('{"num_updates": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"valid_history.jsonl:2: not a validation record"):
        read_history(str(tmp_path))


def _rule_choices(run_dir: Path, history: list[dict], extra_best: str) -> dict:
    """A run dir with this validation history, checkpoint_last.pt, checkpoint_best.pt and ``extra_best``:
    ``{rule: (checkpoint file, update)}`` as ``rule_checkpoints`` reads them."""
    from stabletune_fairseq.report.selection import rule_checkpoints

    (run_dir / "valid_history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    for name in ("checkpoint_last.pt", "checkpoint_best.pt", extra_best):
        (run_dir / name).write_text(name)
    return {rule: (Path(r["checkpoint"]).name, r["num_updates"]) for rule, r in rule_checkpoints(str(run_dir)).items()}


def test_each_rule_finds_the_update_it_chose(tmp_path):
    from stabletune_fairseq.report.selection import rule_checkpoints

    history = [
        {"num_updates": 10, "acc_avg": 40.0, "acc_en": 55.0},
        {"num_updates": 20, "acc_avg": 42.0, "acc_en": 54.0},
        {"num_updates": 30, "acc_avg": 42.0, "acc_en": 53.0},
    ]
    assert _rule_choices(tmp_path, history, "checkpoint_best_acc_en.pt") == {
        "best-avg": ("checkpoint_best.pt", 30),
        "best-en": ("checkpoint_best_acc_en.pt", 10),
        "last": ("checkpoint_last.pt", 30),
    }
    # SELECT=en: checkpoint_best.pt is the English rule's, the average's is the extra file
    (tmp_path / "checkpoint_best_acc_en.pt").rename(tmp_path / "checkpoint_best_acc_avg.pt")
    rules = rule_checkpoints(str(tmp_path))
    assert Path(rules["best-en"]["checkpoint"]).name == "checkpoint_best.pt" and rules["best-avg"]["num_updates"] == 30


# GLUE-style runs: plain fine-tuning and R-Drop over 3 seeds; dev "languages" are GLUE's dev sets (en; MNLI m, mm)
GLUE_CASES = {
    "cola": (
        {"en": {"mcc": [40.0, 45.0, 50.0], "accuracy": [80.0, 81.0, 82.0]}},
        {"en": {"mcc": [44.0, 46.0, 55.0], "accuracy": [81.0, 81.0, 84.0]}},
        "mcc_en",
    ),
    "stsb": (
        {"en": {"pearson": [85.0, 86.0, 87.0], "spearman": [84.0, 85.0, 86.0]}},
        {"en": {"pearson": [86.0, 86.5, 88.0], "spearman": [84.5, 85.0, 87.0]}},
        "pearson_spearman_en",
    ),
    "mnli": (
        {"m": [80.0, 81.0, 82.0], "mm": [79.0, 80.0, 81.0]},
        {"m": [81.0, 81.0, 83.0], "mm": [80.0, 81.0, 81.0]},
        "acc_m",
    ),
}
GLUE_VALID_LINE = (
    "2026-12-01 10:15:05 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 0.6 | {metric} {v} | "
    "acc_avg 70.1 | f1_avg 66.0 | num_updates {u}{best}\n"
)


@pytest.fixture(params=sorted(GLUE_CASES))
def glue_runs(request, tmp_path):
    task = request.param
    plain, rdrop, selected = GLUE_CASES[task]
    rules = ["best", "best-mm", "last"] if task == "mnli" else ["best", "last"]
    for i, seed in enumerate((1, 2, 3)):
        for stage, scores in (("plain", plain), ("rdrop", rdrop)):
            run = tmp_path / f"seed{seed}" / stage
            for rule in rules:
                _results(run / "eval" / f"{rule}-valid", scores, i, rule, updates=20, task=task)
            (tmp_path / f"seed{seed}" / "status").mkdir(exist_ok=True)
            (tmp_path / f"seed{seed}" / "status" / f"{stage}.json").write_text(
                json.dumps({"status": "done", "exit": 0, "wall_s": 10 * seed, "command": "c"})
            )
            (run / "train.log").write_text(
                TRAIN_LINE.format(u=10, t=0.7, r1=0.02 * (stage == "rdrop"))
                + "".join(
                    GLUE_VALID_LINE.format(
                        metric=selected, v=60 + u / 10, u=u, best="" if u == 10 else f" | best_{selected} 62"
                    )
                    for u in (10, 20)
                )
            )
    return task, tmp_path


def test_glue_report_plain_against_rdrop(glue_runs, tmp_path):
    task, runs = glue_runs
    plain, rdrop, selected = GLUE_CASES[task]
    report = write_report(str(runs), str(tmp_path / "report"))
    metric, lang = report["metric"], next(iter(plain))
    values = (plain[lang] if task != "mnli" else {"accuracy": plain[lang]})[metric]
    gains = [b - a for a, b in zip(values, (rdrop[lang] if task != "mnli" else {"accuracy": rdrop[lang]})[metric])]
    assert report["stages"] == ["plain", "rdrop"] and report["metrics"][0] == metric
    assert report["rules"] == (["best", "best-mm", "last"] if task == "mnli" else ["best", "last"])
    cells = report["scores"]["valid"]["best"]["plain"][metric]
    assert cells[lang]["mean"] == pytest.approx(statistics.fmean(values)) and cells[lang]["sd"] == pytest.approx(
        statistics.stdev(values)
    )
    assert "gap" not in cells and report["agreement"] == {} and report["agreement_differences"] == {}
    diff = report["differences"]["valid"]["best"]["rdrop"][metric][lang]
    assert diff["values"] == pytest.approx(gains)
    half = 4.303 * statistics.stdev(gains) / math.sqrt(3)
    assert diff["ci95"] == pytest.approx([statistics.fmean(gains) - half, statistics.fmean(gains) + half])
    md = (tmp_path / "report" / "report.md").read_text()
    assert (
        "## valid, best by the task's dev metric (`best`)" in md
        and f"| R-Drop (n=3) | {statistics.fmean(values) + sum(gains) / 3:.2f} ± " in md
    )
    assert (
        f"| R-Drop − plain (n=3) | {statistics.fmean(gains):+.2f} [" in md and "best-avg" not in md and "gap" not in md
    )
    assert (
        ("| run | m | mm | average |" in md and "best by mismatched dev accuracy" in md)
        if task == "mnli"
        else "| run | en |\n" in md
    )
    assert drawn_pixels(tmp_path / "report" / "scores.png", (600, 400)) > 0.02
    assert drawn_pixels(tmp_path / "report" / "curves.png", (1000, 700)) > 0.001  # its curves: one valid line, points
    assert read_curves(str(runs / "seed1" / "rdrop" / "train.log"))["valid"] == [(10, 61.0), (20, 62.0)]
    assert read_curves(str(runs / "seed1" / "rdrop" / "train.log"))["valid_metric"] == selected


def test_glue_rules_name_the_tasks_metric(tmp_path, monkeypatch):
    from stabletune_fairseq.data.metadata import save_metadata
    from stabletune_fairseq.evaluation import task_evaluation as evaluate_module
    from stabletune_fairseq.report.selection import evaluate_rules

    history = [
        {"num_updates": 10, "acc_m": 80.0, "acc_mm": 79.0},
        {"num_updates": 20, "acc_m": 81.0, "acc_mm": 78.0, "best_acc_m": 81.0},
        {"num_updates": 30, "acc_m": 79.0, "acc_mm": 79.5, "best_acc_m": 81.0},
    ]
    # MNLI: GLUE from its extra checkpoint alone; best by acc_m (recorded as best_acc_m), best-mm by acc_mm
    assert _rule_choices(tmp_path, history, "checkpoint_best_acc_mm.pt") == {
        "best": ("checkpoint_best.pt", 20),
        "best-mm": ("checkpoint_best_acc_mm.pt", 30),
        "last": ("checkpoint_last.pt", 30),
    }
    # RTE: one dev set, no extra checkpoint: GLUE by the task folder's kind, evaluated on its labelled splits
    (tmp_path / "checkpoint_best_acc_mm.pt").unlink()
    (tmp_path / "valid_history.jsonl").write_text(json.dumps({"num_updates": 10, "acc_en": 60.0}) + "\n")
    data = tmp_path / "rte"
    data.mkdir()
    save_metadata(
        data,
        {
            "task": "rte",
            "kind": "glue",
            "splits": {
                "train": {"language": "en"},
                "valid_en": {"language": "en"},
                "test_en": {"language": "en", "labelled": False},
            },
        },
    )
    calls = []

    def fake_evaluate(checkpoint, data, split, out):
        calls.append((Path(checkpoint).name, split))
        Path(out).mkdir(parents=True)
        (Path(out) / "results.json").write_text(json.dumps({"task": "rte", "metric": "accuracy", "per_language": {}}))

    monkeypatch.setattr(evaluate_module, "evaluate", fake_evaluate)
    results = evaluate_rules(str(tmp_path), str(data))
    assert sorted(results) == ["best-valid", "last-valid"] and results["best-valid"]["num_updates"] == 10
    assert calls == [("checkpoint_best.pt", "valid")]  # one validation: both rules hold update 10, evaluated once
