"""The README's first command, run_scripts/quickstart.sh (the main job), with a small budget: it sets up,
builds the toy data, fine-tunes e5-small, evaluates every dev language and prints the table it wrote."""

import json

from conftest import run

LANGUAGES = ("de", "en", "es", "fr", "zh")


def test_quickstart_trains_evaluates_and_prints_every_language(e5_dir, tmp_path):
    out = tmp_path / "quickstart"
    result = run(["bash", "run_scripts/quickstart.sh", "MAX_UPDATE=4", f"OUT={out}"])
    assert "install.sh: ready" in result.stdout and "4 updates" in result.stdout  # the budget reached the run
    results = json.loads((out / "results-toy" / "results.json").read_text(encoding="utf-8"))
    assert results["checkpoint"] == str(out / "checkpoints-toy" / "checkpoint_best.pt")
    assert sorted(results["per_language"]) == list(LANGUAGES)
    for lang in LANGUAGES:
        # the accuracy printed is that of the written predictions against the toy dev file's labels
        gold = [
            line.split("\t")[2]
            for line in (out / "toy-xtreme" / "xnli" / f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()
        ]
        predicted = (out / "results-toy" / "predictions" / f"valid-{lang}.tsv").read_text(encoding="utf-8").splitlines()
        assert len(predicted) == len(gold) == results["per_language"][lang]["n"]
        accuracy = round(100 * sum(p == g for p, g in zip(predicted, gold)) / len(gold), 2)
        assert results["per_language"][lang]["accuracy"] == accuracy
        assert f"| {lang} | {accuracy} | {len(gold)} |" in result.stdout
    average = round(sum(results["per_language"][lang]["accuracy"] for lang in LANGUAGES) / len(LANGUAGES), 2)
    assert f"| **average** | {average} | 5 languages |" in result.stdout
