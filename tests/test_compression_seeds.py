"""run_seeds.sh COMPRESS (the compressed student over seeds, each stage scored) and its report
(report/compression.py): a real run of two stages over two seeds, the statistics against hand computations, the
refusals."""

import json
import statistics

import pytest
from conftest import needs_shared, run
from test_sentence_distillation import pairs, parallel_data, parallel_folder, sts_slice  # noqa: F401

from stabletune_fairseq.cli.report import main as report_main
from stabletune_fairseq.report.compression import build_compression_report
from stabletune_fairseq.report.render import compression_markdown


def sts_results(average: float, tracks: dict[str, float]) -> dict:
    """A results.json as stabletune-embed-eval writes it for STS (the fields the report reads)."""
    return {
        "task": "sts",
        "metrics": ["spearman", "pearson"],
        "per_track": {name: {"spearman": value, "pearson": value, "n": 250} for name, value in tracks.items()},
        "average": {"spearman": average, "pearson": average, "count": len(tracks)},
    }


def write(folder, seed: int, stage: int, results: dict) -> None:
    path = folder / f"seed{seed}" / "compress" / "eval" / f"stage{stage}-sts" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results), encoding="utf-8")


def test_the_report_is_each_stage_over_seeds_and_its_paired_difference_from_stage_1(tmp_path):
    scores = {(1, 1): 80.0, (2, 1): 84.0, (3, 1): 82.0, (1, 4): 70.0, (2, 4): 75.0, (3, 4): 71.0}
    for (seed, stage), value in scores.items():
        write(tmp_path, seed, stage, sts_results(value, {"track5.en-en": value + 1, "track3.es-es": value - 1}))
    write(tmp_path, 4, 1, sts_results(90.0, {"track5.en-en": 91.0, "track3.es-es": 89.0}))  # no stage 4: unpaired
    status = tmp_path / "seed1" / "status" / "compress.json"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"status": "done", "exit": 0, "wall_s": 120}), encoding="utf-8")

    report = build_compression_report(str(tmp_path))
    stage1 = report["scores"]["sts"]["spearman"]["1"]["average"]
    assert stage1["values"] == [80.0, 84.0, 82.0, 90.0] and stage1["mean"] == pytest.approx(84.0)
    assert stage1["sd"] == pytest.approx(statistics.stdev([80.0, 84.0, 82.0, 90.0]))
    stage4 = report["scores"]["sts"]["spearman"]["4"]["track5.en-en"]
    assert stage4["mean"] == pytest.approx(73.0) and stage4["n"] == 3
    difference = report["differences"]["sts"]["spearman"]["4"]["average"]
    per_seed = [70.0 - 80.0, 75.0 - 84.0, 71.0 - 82.0]  # seeds 1-3 only: seed 4 has no stage 4
    assert difference["values"] == per_seed and difference["mean"] == pytest.approx(-10.0)
    half = 4.302653 * statistics.stdev(per_seed) / 3**0.5  # t(0.975, 2): scipy.stats.t.ppf(0.975, 2)
    assert difference["ci95"] == pytest.approx([-10.0 - half, -10.0 + half], abs=1e-3)  # the table keeps 3 decimals
    assert "1" not in report["differences"]["sts"]["spearman"]
    assert "seed 4: no stage 4 sts results" in report["missing"]
    assert report["wall_s"]["values"] == [120]
    text = compression_markdown(report)
    assert "stage 4: MCL with the teacher (the compressed student) (n=3)" in text
    assert "| stage 4 − stage 1 (n=3) | " in text and "-10.00 [" in text

    assert report_main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "compression.json").read_text(encoding="utf-8"))
    assert written["scores"] == json.loads(json.dumps(report["scores"]))
    assert not (tmp_path / "out" / "report.md").exists()


def test_a_folder_without_results_is_refused(tmp_path):
    (tmp_path / "seed1" / "compress").mkdir(parents=True)
    assert report_main([str(tmp_path)]) == 2


@pytest.fixture
def parallel_metadata(tmp_path):
    folder = tmp_path / "parallel"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"kind": "parallel_sentences"}), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    "settings, message",
    [
        (["STS_DATA=."], "TEACHER=<sentence encoder> is required"),
        (["TEACHER=t.pt"], "STS_DATA=<folder> and/or TATOEBA_DATA=<folder> are needed"),
        (["TEACHER=t.pt", "STS_DATA=.", "STAGES=0,1"], "STAGES must be a comma-separated subset of 1,2,3,4"),
        (["TEACHER=t.pt", "TATOEBA_DATA=no-such-folder"], "'no-such-folder' is not a folder"),
    ],
)
def test_compress_refuses_what_it_cannot_run(parallel_metadata, tmp_path, settings, message):
    result = run(
        ["bash", "run_scripts/run_seeds.sh", "COMPRESS", "m.pt", parallel_metadata, tmp_path / "out", *settings],
        check=False,
    )
    assert result.returncode == 2 and message in result.stderr


def test_compress_and_the_other_tasks_refuse_each_others_data(parallel_metadata, tmp_path):
    other = tmp_path / "xnli"
    other.mkdir()
    (other / "metadata.json").write_text(json.dumps({"kind": "sentence_pair"}), encoding="utf-8")
    settings = ["TEACHER=t.pt", "STS_DATA=."]
    wrong = run(["bash", "run_scripts/run_seeds.sh", "COMPRESS", "m.pt", other, tmp_path / "a", *settings], check=False)
    assert wrong.returncode == 2 and "holds 'sentence_pair' data, not parallel sentences" in wrong.stderr
    back = run(["bash", "run_scripts/run_seeds.sh", "XNLI", "m.pt", parallel_metadata, tmp_path / "b"], check=False)
    assert back.returncode == 2 and "holds parallel sentences: use TASK=COMPRESS" in back.stderr


@needs_shared
def test_two_stages_over_two_seeds_are_trained_scored_and_reported(parallel_data, e5_dir, sts_slice, tmp_path):  # noqa: F811
    """Stages 2 and 3 (e5-small as the assistant), one update each, seeds 1 and 2: each stage's checkpoint_best is
    scored on STS with the recipe's prefix, the report's cells are those scores, a re-run skips everything."""
    out, model = tmp_path / "seeds", e5_dir / "model.pt"
    command = ["bash", "run_scripts/run_seeds.sh", "COMPRESS", model, parallel_data, out, f"TEACHER={model}"]
    command += [f"ASSISTANT={model}", "STAGES=2,3", "SEEDS=1,2", f"STS_DATA={sts_slice}", "BOTTLENECK=32"]
    command += ["LAYERS=1", "REPEAT=2", "MAX_UPDATE=1", "BSZ=8", "FREEZE_EMBEDDINGS=1", "VALIDATE_INTERVAL_UPDATES=0"]
    first = run(command)
    assert "report: " in first.stdout
    averages = {}
    for seed in (1, 2):
        assert json.loads((out / f"seed{seed}" / "status" / "compress.json").read_text())["status"] == "done"
        for stage in (2, 3):
            results = json.loads((out / f"seed{seed}/compress/eval/stage{stage}-sts/results.json").read_text())
            assert results["checkpoint"].endswith(f"seed{seed}/compress/stage{stage}/run/checkpoint_best.pt")
            assert results["settings"]["prefix"] == "query: "  # the recipe's prefix for the e5-small teacher
            averages[seed, stage] = results["average"]["spearman"]
    assert averages[1, 2] != averages[1, 3]  # the scores are of two different students
    report = json.loads((out / "report" / "compression.json").read_text(encoding="utf-8"))
    for stage in (2, 3):
        assert report["scores"]["sts"]["spearman"][str(stage)]["average"]["values"] == [
            averages[1, stage],
            averages[2, stage],
        ]
    assert "## sts: spearman" in (out / "report" / "compression.md").read_text(encoding="utf-8")
    second = run(command)
    assert second.stdout.count("finished before, skipped") == 2 and "fairseq-train" not in second.stdout
