"""stabletune-report over a crafted run_sweep.sh folder: per-configuration statistics, the selection on dev (a tie,
broken by the stated rule), the test numbers of the chosen configuration, the per-language view and the spread,
against hand computations; a failed run shown, counted and left out of every mean."""

import json
import statistics

import pytest
from conftest import drawn_pixels

from stabletune_fairseq.cli.report import main as report_main
from stabletune_fairseq.report.sweep import build_sweep_report, choose

CONFIGS = ["LR=3e-5,BSZ=8", "LR=1e-5,BSZ=8", "LR=2e-5,BSZ=8"]  # the grid's order (sweep.json): A, B, C
A, B, C = CONFIGS
# [rule][split][configuration][language] = value per seed (1, 2)
SCORES = {
    "best-avg": {
        "valid": {
            A: {"en": [60, 62], "de": [50, 48]},  # averages 55, 55: mean 55
            B: {"en": [58, 56], "de": [54, 52]},  # averages 56, 54: mean 55, a tie with A
            C: {"en": [50, 52], "de": [40, 44]},  # averages 45, 48: mean 46.5
        },
        "test": {
            A: {"en": [70, 72], "de": [60, 58]},  # averages 65, 65
            B: {"en": [82, 78], "de": [70, 72]},  # averages 76, 75: mean 75.5
            C: {"en": [66, 68], "de": [50, 52]},  # averages 58, 60: mean 59
        },
    },
    "best-en": {
        "valid": {
            A: {"en": [60, 62], "de": [50, 48]},  # English mean 61
            B: {"en": [64, 66], "de": [50, 50]},  # English mean 65: chosen by --select en
            C: {"en": [50, 52], "de": [40, 44]},
        },
        "test": {
            A: {"en": [70, 72], "de": [60, 58]},
            B: {"en": [82, 78], "de": [70, 72]},
            C: {"en": [66, 68], "de": [50, 52]},
        },
    },
}


def _write(folder, rule, split, per_language):
    folder.mkdir(parents=True)
    results = {
        "task": "xnli",
        "split": split,
        "metric": "accuracy",
        "metrics": ["accuracy"],
        "per_language": {lang: {"accuracy": float(v), "n": 10} for lang, v in per_language.items()},
        "rule": rule,
        "num_updates": 10,
    }
    (folder / "results.json").write_text(json.dumps(results))


@pytest.fixture
def crafted_sweep(tmp_path):
    (tmp_path / "sweep.json").write_text(
        json.dumps(
            {"configurations": [{"name": n, "settings": dict(p.split("=") for p in n.split(","))} for n in CONFIGS]}
        )
    )
    for name in CONFIGS:
        for i, seed in enumerate((1, 2)):
            for rule, splits in SCORES.items():
                for split, table in splits.items():
                    values = {lang: per_seed[i] for lang, per_seed in table[name].items()}
                    _write(tmp_path / name / f"seed{seed}" / "plain" / "eval" / f"{rule}-{split}", rule, split, values)
            status = tmp_path / name / f"seed{seed}" / "status" / "plain.json"
            status.parent.mkdir(parents=True)
            status.write_text(json.dumps({"status": "done", "exit": 0, "wall_s": 10, "command": "c"}))
    # B's seed 3 failed after writing results far above the others: if it counted, B would win everything
    for rule in SCORES:
        for split in ("valid", "test"):
            _write(tmp_path / B / "seed3" / "plain" / "eval" / f"{rule}-{split}", rule, split, {"en": 99, "de": 99})
    (tmp_path / B / "seed3" / "status").mkdir(parents=True)
    (tmp_path / B / "seed3" / "status" / "plain.json").write_text(
        json.dumps({"status": "failed", "exit": 1, "wall_s": 3, "command": "c"})
    )
    return tmp_path


def test_selection_statistics_and_spread_by_hand(crafted_sweep):
    report = build_sweep_report(str(crafted_sweep), "avg")
    assert report["reported_split"] == "test" and report["languages"] == ["en", "de"]
    table = report["scores"]["plain"]["valid"]["best-avg"]
    assert table[A]["average"]["mean"] == 55.0 and table[B]["average"]["mean"] == 55.0
    assert table[B]["average"]["sd"] == pytest.approx(statistics.stdev([56, 54])) and table[B]["average"]["n"] == 2
    assert table[C]["average"]["mean"] == 46.5 and table[A]["en"]["mean"] == 61.0
    # the failed run: listed and counted, in no mean
    assert report["failed"] == [f"{B} seed 3 plain: failed (exit 1)"]
    assert [c["failed"] for c in report["configurations"]] == [0, 1, 0]
    # the tie A = B (55, both 2 seeds): the first in the grid's order
    chosen = report["selection"]["plain"]["avg"]
    assert chosen["chosen"] == A and chosen["reported"]["average"]["mean"] == 65.0
    assert chosen["reported"]["en"]["mean"] == 71.0 and chosen["reported"]["de"]["mean"] == 59.0
    # --select en: English dev means 61, 65, 51 -> B; its test average mean 75.5
    by_en = report["selection"]["plain"]["en"]
    assert by_en["chosen"] == B and by_en["dev"]["mean"] == 65.0 and by_en["reported"]["average"]["mean"] == 75.5
    # per language (best-avg checkpoints): en dev 61, 57, 51 -> A (test en 71); de dev 49, 53, 42 -> B (test de 71)
    view = report["per_language"]["plain"]
    assert view["chosen"] == {"en": A, "de": B} and view["average"] == 71.0
    spread = report["spread"]["plain"]["avg"]
    assert (spread["grid_min"], spread["grid_max"]) == (59.0, 75.5)
    assert spread["oracle"] == B and spread["optimism"] == 75.5 - 65.0 and spread["best_single_run"] == 76.0
    assert report["spread"]["plain"]["en"]["optimism"] == 0.0


def test_ties_take_more_seeds_then_the_grids_order():
    assert choose({"a": {"mean": 5.0, "n": 2}, "b": {"mean": 5.0, "n": 3}}, ["a", "b"]) == "b"
    assert choose({"a": {"mean": 5.0, "n": 2}, "b": {"mean": 5.0, "n": 2}}, ["b", "a"]) == "b"
    assert choose({"a": {"mean": 5.0, "n": 2}, "b": {"mean": 5.1, "n": 1}}, ["a", "b"]) == "b"
    assert choose({"a": None}, ["a"]) is None


def test_the_command_writes_the_tables_and_the_plot(crafted_sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert report_main([str(crafted_sweep), "--out", str(out), "--select", "en"]) == 0
    text = (out / "sweep.md").read_text()
    assert f"**Chosen by English dev** (`--select en`): `{B}` (dev en 65.00 ± 1.41)" in text
    # per language on best-en checkpoints: en dev 61, 65, 51 -> B (test en 80); de dev 49, 50, 42 -> B (test de 71)
    assert (
        "Second view, per-language selection (XLM's" in text and "Average of the per-language choices: 75.50." in text
    )
    assert (
        "| `--select avg` (best-avg) | 65.00 | 75.50 (`LR=1e-5,BSZ=8`) | +10.50 | 59.00 – 75.50 (16.50) | 76.00 |"
        in text
    )
    assert f"- {B} seed 3 plain: failed (exit 1)" in text
    assert "sweep.md" in capsys.readouterr().out
    assert drawn_pixels(out / "sweep.png") > 0.002
