"""Sentence-embedding evaluation (``stabletune-embed-eval``, docs/embeddings.md): the metrics against hand
computations, the readers on the real shared samples (both Tatoeba layouts, BUCC, STS2017 with a track-6-style
unscored tail, STS-B), malformed rows, and end-to-end runs of the real e5-small on small slices."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, needs_shared

from stabletune_fairseq.data.errors import InputFormatError
from stabletune_fairseq.embeddings import readers, scores
from stabletune_fairseq.embeddings.evaluation import evaluate, read_task
from stabletune_fairseq.metrics import correlation

SHARED_DATA = REPO.parent / "shared" / "data"
TATOEBA = SHARED_DATA / "tatoeba-sample"
STS = SHARED_DATA / "sts-sample"
BUCC = SHARED_DATA / "xtreme-sample" / "bucc2018"
needs_tatoeba = pytest.mark.skipif(not TATOEBA.is_dir(), reason="../shared/data/tatoeba-sample is absent")
needs_sts = pytest.mark.skipif(not STS.is_dir(), reason="../shared/data/sts-sample is absent")


def lines(path: Path, count: int | None = None) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1][:count]


def write(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


def at_angles(*degrees) -> np.ndarray:
    """Unit vectors in the plane: the cosine of two of them is the cosine of their angle difference."""
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


class LookupEmbedder:
    """Stands in for the model: each sentence's vector from a table (unknown sentences: a fixed random vector)."""

    def __init__(self, table: dict):
        self.table = table

    def embed(self, sentences):
        fallback = np.random.default_rng(0)
        return np.array([self.table.get(s, fallback.normal(size=2)) for s in sentences], dtype=np.float32)


# ---------------------------------------------------------------------------------------------------- metrics


def test_retrieval_accuracy_by_hand():
    # sources at 0, 90, 45 degrees; their translations (same rows) at 5, 80, 12 degrees.
    # x->en: 0 -> nearest of (5, 80, 12) is 5 (row 0, right); 90 -> 80 (row 1, right); 45 -> differences 40, 35, 33:
    #   12 (row 2, right): 3/3.
    # en->x: 5 -> 0 (right); 80 -> 90 (right); 12 -> differences 12, 78, 33: 0 (row 0, wrong): 2/3.
    accuracy = scores.retrieval_accuracy(at_angles(0, 90, 45), at_angles(5, 80, 12))
    assert accuracy.x_to_en == pytest.approx(100.0)
    assert accuracy.en_to_x == pytest.approx(200 / 3)
    assert accuracy.mean == pytest.approx(250 / 3)
    with pytest.raises(ValueError):
        scores.retrieval_accuracy(at_angles(0, 90), at_angles(5))


HUB = np.array(
    [
        [0.6, 0.1, 0.7],  # x0: its translation y0; the "hub" y2 is its cosine nearest
        [0.1, 0.8, 0.85],  # x1: its translation y1; y2 again nearest
        [0.2, 0.3, 0.25],
    ]
)  # x2: no translation among the targets


def test_margin_by_hand():
    # k = 1: NN_1 means are each row's and each column's maximum: x 0.7, 0.85, 0.3; y 0.6, 0.8, 0.85.
    # margin(x, y) = cos / ((mean_x + mean_y) / 2):
    #   x0: 0.6/0.65 = 0.923077, 0.1/0.75 = 0.133333, 0.7/0.775 = 0.903226 -> y0 (cosine alone picks y2)
    #   x1: 0.1/0.725, 0.8/0.825 = 0.969697, 0.85/0.85 = 1.0 -> y2
    #   x2: 0.2/0.45 = 0.444444, 0.3/0.55 = 0.545455, 0.25/0.575 = 0.434783 -> y1
    margins = scores.margin_matrix(HUB, k=1)
    assert margins[0] == pytest.approx([0.6 / 0.65, 0.1 / 0.75, 0.7 / 0.775])
    assert margins[1] == pytest.approx([0.1 / 0.725, 0.8 / 0.825, 1.0])
    assert margins[2] == pytest.approx([0.2 / 0.45, 0.3 / 0.55, 0.25 / 0.575])
    assert margins.argmax(axis=1).tolist() == [0, 2, 1]
    # k = 2: x0's mean (0.7 + 0.6) / 2 = 0.65, y0's (0.6 + 0.2) / 2 = 0.4: margin(x0, y0) = 0.6 / 0.525.
    assert scores.margin_matrix(HUB, k=2)[0, 0] == pytest.approx(0.6 / 0.525)


def test_threshold_of_best_f1_by_hand():
    # The forward candidates above, best first: x1-y2 (1.0, wrong), x0-y0 (0.923, right), x2-y1 (0.545, wrong);
    # 2 gold pairs (x0-y0, x1-y1). Cuts: after 1: F1 0; after 2: P 1/2, R 1/2, F1 1/2; after 3: P 1/3, R 1/2,
    # F1 0.4. Best: 2 kept, threshold halfway between 0.923077 and 0.545455.
    margins = np.array([0.6 / 0.65, 1.0, 0.3 / 0.55])
    correct = np.array([True, False, False])
    best = scores.best_threshold(margins, correct, gold=2)
    assert best.threshold == pytest.approx((0.6 / 0.65 + 0.3 / 0.55) / 2)
    assert (best.precision, best.recall, best.f1) == pytest.approx((50.0, 50.0, 50.0))
    assert (best.predicted, best.correct) == (2, 1)
    assert scores.scores_at(0.95, margins, correct, 2).f1 == 0.0  # only the wrong x1-y2 kept
    assert scores.scores_at(None, margins, correct, 2).predicted == 0
    assert scores.best_threshold(margins, np.zeros(3, bool), gold=2).threshold is None


def test_threshold_never_splits_equal_margins():
    # Margins 0.9 (right), 0.8 (right), 0.8 (wrong); 2 gold pairs. Keeping the first two would give F1 1, but no
    # threshold keeps one 0.8 and not the other: the cuts are after 0.9 (P 1, R 1/2, F1 2/3) and after both 0.8
    # (P 2/3, R 1, F1 0.8); the threshold is the last margin, 0.8.
    best = scores.best_threshold(np.array([0.9, 0.8, 0.8]), np.array([True, True, False]), gold=2)
    assert best.threshold == pytest.approx(0.8)
    assert best.f1 == pytest.approx(80.0)
    assert best.predicted == 3


def test_margin_candidates_in_blocks_match_the_definition():
    rng = np.random.default_rng(1)
    source, target = rng.normal(size=(7, 5)), rng.normal(size=(9, 5))
    unit = scores.unit_rows
    for k in (1, 4, 20):  # 20: more than either side has
        expected = scores.margin_matrix(unit(source) @ unit(target).T, k)
        found = scores.margin_candidates(source, target, k=k, block=3)
        assert found.target.tolist() == expected.argmax(axis=1).tolist()
        assert found.margin == pytest.approx(expected.max(axis=1), rel=1e-5)


def test_spearman_with_ties_by_hand():
    # x = 1, 2, 2, 3 -> ranks 1, 2.5, 2.5, 4; y = 10, 20, 30, 30 -> ranks 1, 2, 3.5, 3.5 (means 2.5 and 2.5).
    # Deviations -1.5, 0, 0, 1.5 and -1.5, -0.5, 1, 1: sum of products 2.25 + 1.5 = 3.75, sums of squares 4.5 and
    # 4.5: rho = 3.75 / 4.5 = 0.8333.
    assert correlation.average_ranks([1, 2, 2, 3]).tolist() == [1, 2.5, 2.5, 4]
    assert correlation.average_ranks([30, 10, 30, 20]).tolist() == [3.5, 1, 3.5, 2]
    assert correlation.spearman([1, 2, 2, 3], [10, 20, 30, 30]) == pytest.approx(100 * 3.75 / 4.5)


def test_pearson_by_hand():
    # x = 1, 2, 3 and y = 1, 3, 2: deviations -1, 0, 1 and -1, 1, 0; products sum to 1, squares to 2 and 2: r = 0.5.
    assert correlation.pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(50.0)
    assert correlation.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(100.0)
    assert math.isnan(correlation.pearson([1, 1, 1], [1, 2, 3]))


# ---------------------------------------------------------------------------------------------------- readers


@needs_tatoeba
def test_tatoeba_laser_layout_on_the_sample():
    data = readers.read_tatoeba(TATOEBA)
    assert (data.layout, data.gold_aligned) == ("laser", True)
    assert [pair.language for pair in data.languages] == ["ara", "cmn", "deu", "hin"]
    for pair in data.languages:
        assert len(pair.source) == len(pair.english) == 1000  # the data README: 1,000 sentences each
    deu = data.languages[2]
    assert deu.source[0] == lines(TATOEBA / "tatoeba.deu-eng.deu", 1)[0]
    assert deu.english[999] == lines(TATOEBA / "tatoeba.deu-eng.eng")[999]


@needs_tatoeba
def test_tatoeba_xtreme_layout_predicts_without_accuracy(tmp_path):
    # XTREME's processed copy: 2-letter codes, each English side sorted alphabetically (the gold hidden).
    folder = tmp_path / "tatoeba"
    for three, two in (("deu", "de"), ("cmn", "zh")):
        write(folder / f"{two}-en.{two}", lines(TATOEBA / f"tatoeba.{three}-eng.{three}"))
        write(folder / f"{two}-en.en", sorted(lines(TATOEBA / f"tatoeba.{three}-eng.eng")))
    data = readers.read_tatoeba(folder)
    assert (data.layout, data.gold_aligned) == ("xtreme", False)
    assert [pair.language for pair in data.languages] == ["de", "zh"]
    assert data.languages[0].english == sorted(lines(TATOEBA / "tatoeba.deu-eng.eng"))
    # Evaluated, it writes predictions (a line of the English file per source line) and no accuracy.
    embedder = LookupEmbedder({})
    results = evaluate("tatoeba", embedder, data, tmp_path / "out")
    assert results["metrics"] == [] and results["average"] == {}
    assert "x_to_en" not in results["per_language"]["de"]
    assert "predictions" in results["notes"][0] and "no accuracy" in results["notes"][0]
    predictions = lines(tmp_path / "out" / "predictions" / "tatoeba.de.x_to_en.txt")
    assert len(predictions) == 1000 and all(0 <= int(p) < 1000 for p in predictions)
    xtreme = lines(tmp_path / "out" / "predictions" / "tatoeba" / "test-de.tsv")
    assert xtreme == lines(tmp_path / "out" / "predictions" / "tatoeba.de.en_to_x.txt")


def xtreme_accuracy(prediction_file: Path, label_file: Path) -> float:
    """XTREME's evaluate.py for tatoeba, restated: ``read_label`` (each line stripped) of both files, the same
    number of lines asserted, ``accuracy`` = the share of lines whose strings are equal, x100."""
    predictions = [line.strip() for line in prediction_file.read_text(encoding="utf-8").splitlines()]
    labels = [line.strip() for line in label_file.read_text(encoding="utf-8").splitlines()]
    assert len(predictions) == len(labels)
    return 100.0 * sum(p == label for p, label in zip(predictions, labels)) / len(predictions)


def test_tatoeba_directions_by_hand_and_xtreme_predictions_scored_as_xtreme_scores_them(tmp_path):
    # The hand case of test_retrieval_accuracy_by_hand with texts: x->en 3/3, en->x 2/3 (English "Zebra" at 5
    # degrees is right, "Apples" at 80 right, "Moon" at 12 nearest to the source at 0 degrees: wrong).
    source, english = (
        ["Zebra läuft.", "Äpfel fallen.", "Der Mond geht auf."],
        ["Zebra runs.", "Apples fall.", "Moon rises."],
    )
    embedder = LookupEmbedder(dict(zip(source + english, at_angles(0, 90, 45, 5, 80, 12))))
    laser = tmp_path / "laser"
    write(laser / "tatoeba.deu-eng.deu", source)
    write(laser / "tatoeba.deu-eng.eng", english)
    results = evaluate("tatoeba", embedder, readers.read_tatoeba(laser), tmp_path / "laser-out")
    row = results["per_language"]["deu"]
    assert (row["x_to_en"], row["en_to_x"]) == (100.0, pytest.approx(66.67))
    assert any("MTEB" in note and "XTREME" in note for note in results["notes"])
    out = tmp_path / "laser-out" / "predictions"
    assert lines(out / "tatoeba.deu.x_to_en.txt") == ["0", "1", "2"]  # one line per source line: an English line
    assert lines(out / "tatoeba.deu.en_to_x.txt") == ["0", "1", "0"]  # one line per English line: a source line
    # XTREME's layout as its utils_preprocess.py makes it: the source copied, the English sorted; its hidden label of
    # sorted English line j is the original line of that sentence (the source line of its translation).
    xtreme = tmp_path / "xtreme"
    write(xtreme / "de-en.de", source)
    order = sorted(range(len(english)), key=lambda i: english[i])
    write(xtreme / "de-en.en", [english[i] for i in order])
    labels = write(tmp_path / "labels" / "tatoeba" / "test-de.tsv", order)  # 1, 2, 0
    evaluate("tatoeba", embedder, readers.read_tatoeba(xtreme), tmp_path / "xtreme-out")
    predicted = tmp_path / "xtreme-out" / "predictions" / "tatoeba" / "test-de.tsv"
    assert len(lines(predicted)) == len(english)  # XTREME's orientation: one source line per English line
    assert xtreme_accuracy(predicted, labels) == pytest.approx(row["en_to_x"], abs=0.01)


def test_tatoeba_readers_refuse_bad_folders(tmp_path):
    laser = tmp_path / "laser"
    write(laser / "tatoeba.deu-eng.deu", ["Hallo.", "Danke."])
    write(laser / "tatoeba.deu-eng.eng", ["Hello."])
    with pytest.raises(InputFormatError) as error:
        readers.read_tatoeba(laser)
    assert "tatoeba.deu-eng.deu" in str(error.value) and "tatoeba.deu-eng.eng" in str(error.value)
    write(laser / "de-en.de", ["Hallo."])  # both layouts in one folder
    with pytest.raises(InputFormatError, match="both"):
        readers.read_tatoeba(laser)
    missing = tmp_path / "missing"
    write(missing / "fr-en.fr", ["Bonjour."])
    with pytest.raises(InputFormatError, match="fr-en.en"):
        readers.read_tatoeba(missing)
    with pytest.raises(InputFormatError, match="no Tatoeba files"):
        readers.read_tatoeba(tmp_path / "missing" / "..")


@needs_shared
def test_bucc_reader_on_the_sample():
    assert readers.bucc_languages(BUCC, "dev") == ["zh"] and readers.bucc_languages(BUCC, "test") == []
    split = readers.read_bucc(BUCC, "zh", "dev")
    assert (len(split.source), len(split.english), len(split.gold)) == (8624, 13589, 257)  # the data README's counts
    assert split.source_ids[0] == "zh-000000001" and split.english_ids[-1] == "en-000013589"
    assert ("zh-000000057", "en-000008530") in split.gold and split.skipped == {}
    with pytest.raises(InputFormatError, match="no BUCC files of the test split"):
        read_task("bucc", BUCC, "test")


@needs_sts
def test_sts_readers_on_the_sample():
    sets = {s.name: s for s in readers.read_sts(STS)}
    assert list(sets) == ["track3.es-es", "track4a.es-en", "track5.en-en", "sts-b dev"]  # sts-train.csv: not read
    track5 = sets["track5.en-en"]
    first, second = lines(STS / "STS2017.eval.v1.1" / "STS.input.track5.en-en.txt", 1)[0].split("\t")
    assert (track5.first[0], track5.second[0]) == (first, second)
    assert track5.scores[:3] == [float(x) for x in lines(STS / "STS2017.gs" / "STS.gs.track5.en-en.txt", 3)]
    # the data README: 250 pairs a STS2017 track, 1,500 pairs in sts-dev.csv
    assert all(len(s.scores) == 250 and not s.skipped for name, s in sets.items() if name.startswith("track"))
    stsb = sets["sts-b dev"]
    assert len(stsb.scores) == 1500 and stsb.scores[0] == 5.0
    # Row 1479 has 9 columns (the text's source twice): its sentences are still columns 5 and 6.
    assert stsb.first[1478] == "US Supreme Court limits president's recess appointments power"
    assert stsb.second[1478] == "High court checks President's recess appointment power"
    assert any("22 rows have more than 7 columns" in note for note in stsb.notes)


@needs_sts
def test_sts2017_extended_reads_the_pairs_of_its_lines(tmp_path):
    # A hand-written STS2017-extended file (sentence1<TAB>sentence2<TAB>score) of the first 8 real pairs of track 5
    # and their gold scores: read, it is those pairs with those scores, named by its file.
    track = readers.read_sts2017_track(
        STS / "STS2017.eval.v1.1" / "STS.input.track5.en-en.txt", STS / "STS2017.gs" / "STS.gs.track5.en-en.txt"
    )
    rows = [f"{a}\t{b}\t{score}" for a, b, score in list(zip(track.first, track.second, track.scores))[:8]]
    write(tmp_path / "STS2017-extended" / "STS.en-en.txt", rows)
    (only,) = read_task("sts", tmp_path)
    assert only.name == "STS.en-en"
    assert (only.first, only.second, only.scores) == (track.first[:8], track.second[:8], track.scores[:8])
    error = "2 tab-separated columns, expected 3 (sentence1, sentence2, score)"
    write(tmp_path / "STS2017-extended" / "STS.en-en.txt", rows[:3] + [rows[3].rsplit("\t", 1)[0]])
    with pytest.raises(InputFormatError, match="STS.en-en.txt:4: " + re.escape(error)):
        read_task("sts", tmp_path)


def test_paired_similarities_and_the_max_of_four_by_hand(tmp_path):
    # Pairs A (1,0)-(2,0), B (1,0)-(0,1), C (3,0)-(3,0.3); gold 2, 1, 3.
    # cosine 1, 0, 0.995 -> ranks 3, 1, 2 against gold ranks 2, 1, 3: Spearman 1 - 6*(1+0+1)/(3*8) = 0.5.
    # -L1 -1, -2, -0.3; -L2 -1, -1.414, -0.3; dot 2, 0, 9: ranks 2, 1, 3 each, Spearman 1.
    first, second = np.array([[1, 0], [1, 0], [3, 0]]), np.array([[2, 0], [0, 1], [3, 0.3]])
    similarities = scores.paired_similarities(first, second)
    assert similarities["manhattan"] == pytest.approx([-1, -2, -0.3])
    assert similarities["euclidean"] == pytest.approx([-1, -math.sqrt(2), -0.3])
    assert similarities["dot"] == pytest.approx([2, 0, 9])
    assert similarities["cosine"] == pytest.approx([1, 0, 3 / math.sqrt(9.09)], abs=1e-6)
    texts = ["a1", "b1", "c1", "a2", "b2", "c2"]
    embedder = LookupEmbedder(dict(zip(texts, np.concatenate([first, second]))))
    sts = readers.StsSet("hand", texts[:3], texts[3:], [2.0, 1.0, 3.0], tmp_path, tmp_path)
    plain = evaluate("sts", embedder, [sts], tmp_path / "plain")
    assert plain["metrics"] == ["spearman", "pearson"] and "max4_spearman" not in plain["per_track"]["hand"]
    results = evaluate("sts", embedder, [sts], tmp_path / "four", sts_max_of_four=True)
    row = results["per_track"]["hand"]
    assert (row["spearman"], row["max4_spearman"], row["max4_of"]) == (50.0, 100.0, "manhattan")
    assert results["metrics"][-1] == "max4_spearman" and results["average"]["max4_spearman"] == 100.0


@needs_sts
def test_track6_scores_the_first_pairs_and_counts_the_rest(tmp_path):
    # SemEval 2017's track 6 input has more pairs than its gold file: gold line i scores pair i, the tail is
    # unscored. Built from real lines: track 5's 250 pairs and 50 of track 3's after them, track 5's 250 scores.
    pairs = lines(STS / "STS2017.eval.v1.1" / "STS.input.track5.en-en.txt") + lines(
        STS / "STS2017.eval.v1.1" / "STS.input.track3.es-es.txt", 50
    )
    gold = lines(STS / "STS2017.gs" / "STS.gs.track5.en-en.txt")
    write(tmp_path / "six" / "STS.input.track6.tr-en.txt", pairs)
    write(tmp_path / "six" / "STS.gs.track6.tr-en.txt", gold)
    (track6,) = readers.read_sts(tmp_path / "six")
    assert len(track6.scores) == 250 and track6.scores == [float(x) for x in gold]
    assert (track6.first[249], track6.second[249]) == tuple(pairs[249].split("\t"))
    assert track6.skipped == {"unscored pairs after the last gold line (track 6)": 50}
    # Evaluated, the tail is reported, not silently dropped.
    results = evaluate("sts", LookupEmbedder({}), [track6], tmp_path / "out")
    assert results["per_track"]["track6.tr-en"]["n"] == 250
    assert results["skipped"]["track6.tr-en"] == {"unscored pairs after the last gold line (track 6)": 50}
    # Any other track with fewer gold lines than pairs is an error naming both files.
    write(tmp_path / "five" / "STS.input.track5.en-en.txt", pairs)
    write(tmp_path / "five" / "STS.gs.track5.en-en.txt", gold)
    with pytest.raises(InputFormatError) as error:
        readers.read_sts(tmp_path / "five")
    assert "STS.gs.track5.en-en.txt" in str(error.value) and "STS.input.track5.en-en.txt" in str(error.value)


def test_blank_gold_lines_leave_pairs_unscored_and_counted(tmp_path):
    write(tmp_path / "STS.input.track1.ar-ar.txt", ["a\tb", "c\td", "e\tf"])
    write(tmp_path / "STS.gs.track1.ar-ar.txt", ["1.0", "", "3.5"])
    (track,) = readers.read_sts(tmp_path)
    assert track.first == ["a", "e"] and track.scores == [1.0, 3.5]
    assert track.skipped == {"pairs with a blank gold line": 1}


MALFORMED = {  # name: (files to write, the file and line the error must name)
    "sts pair without a tab": (
        {"STS.input.track5.en-en.txt": ["a\tb", "only one sentence"], "STS.gs.track5.en-en.txt": ["1", "2"]},
        "STS.input.track5.en-en.txt",
        2,
    ),
    "sts gold not a number": (
        {"STS.input.track5.en-en.txt": ["a\tb", "c\td", "e\tf"], "STS.gs.track5.en-en.txt": ["1", "2", "high"]},
        "STS.gs.track5.en-en.txt",
        3,
    ),
    "sts-b row of 6 columns": (
        {"sts-dev.csv": ["g\tf\t2012\t1\t5.0\ta\tb", "g\tf\t2012\t2\t4.0\tc"]},
        "sts-dev.csv",
        2,
    ),
    "sts-b score not a number": ({"sts-dev.csv": ["g\tf\t2012\t1\tfive\ta\tb"]}, "sts-dev.csv", 1),
    "bucc sentence without id": (
        {"zh-en.dev.zh": ["zh-1\t一", "二"], "zh-en.dev.en": ["en-1\tone"]},
        "zh-en.dev.zh",
        2,
    ),
    "bucc id twice": ({"zh-en.dev.zh": ["zh-1\t一"], "zh-en.dev.en": ["en-1\tone", "en-1\ttwo"]}, "zh-en.dev.en", 2),
    "bucc gold of an unknown id": (
        {"zh-en.dev.zh": ["zh-1\t一"], "zh-en.dev.en": ["en-1\tone"], "zh-en.dev.gold": ["zh-1\ten-1", "zh-1\ten-9"]},
        "zh-en.dev.gold",
        2,
    ),
    "bucc gold of one column": (
        {"zh-en.dev.zh": ["zh-1\t一"], "zh-en.dev.en": ["en-1\tone"], "zh-en.dev.gold": ["zh-1"]},
        "zh-en.dev.gold",
        1,
    ),
    "tatoeba bad utf-8": ({"tatoeba.deu-eng.deu": [], "tatoeba.deu-eng.eng": []}, "tatoeba.deu-eng.deu", 1),
    "sts2017-extended row of 2 columns": (
        {"STS.en-de.txt": ["A man.\tEin Mann.\t4.2", "A dog.\tEin Hund."]},
        "STS.en-de.txt",
        2,
    ),
    "sts2017-extended row of 4 columns": ({"STS.en-de.txt": ["A man.\tEin Mann.\t4.2\tx"]}, "STS.en-de.txt", 1),
    "sts2017-extended score not a number": ({"STS.en-de.txt": ["A man.\tEin Mann.\tvier"]}, "STS.en-de.txt", 1),
    "sts2017-extended empty sentence": (
        {"STS.en-de.txt": ["A man.\tEin Mann.\t4", "\tEin Hund.\t1"]},
        "STS.en-de.txt",
        2,
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_rows_name_file_and_line(tmp_path, case):
    files, bad_file, line = MALFORMED[case]
    for name, rows in files.items():
        write(tmp_path / name, rows)
    if case == "tatoeba bad utf-8":
        (tmp_path / bad_file).write_bytes(b"\xff\xfe bad\n")
    task = "bucc" if bad_file.startswith("zh-en") else "tatoeba" if bad_file.startswith("tatoeba") else "sts"
    with pytest.raises(InputFormatError) as error:
        read_task(task, tmp_path, "dev")
    assert str(error.value).startswith(f"{tmp_path / bad_file}:{line}: ")


def test_bucc_test_split_takes_the_dev_threshold(tmp_path):
    # Both splits: sources at 0 and 90 degrees, English sentences at 5 and 40 degrees; k = 1.
    # x0 (0) and y0 (5) are each other's nearest: margin 1. x1's (90) nearest is y1 (40), but y1's nearest source is
    # x0: margin(x1, y1) = cos 50 / ((cos 50 + cos 40) / 2) = 0.9125.
    # dev gold: x0-y0 only, so the best threshold keeps x0-y0 and drops x1-y1: (1 + 0.9125) / 2.
    # test gold: x0-y0 and x1-y1; the dev threshold keeps x0-y0 only: precision 100, recall 50.
    vectors = dict(zip("abAB", at_angles(0, 90, 5, 40))) | dict(zip("cdCD", at_angles(0, 90, 5, 40)))
    folder = tmp_path / "bucc"
    write(folder / "zh-en.dev.zh", ["z1\ta", "z2\tb"])
    write(folder / "zh-en.dev.en", ["e1\tA", "e2\tB"])
    write(folder / "zh-en.dev.gold", ["z1\te1"])
    write(folder / "zh-en.test.zh", ["z1\tc", "z2\td"])
    write(folder / "zh-en.test.en", ["e1\tC", "e2\tD"])
    write(folder / "zh-en.test.gold", ["z1\te1", "z2\te2", "z2\te2"])
    data = read_task("bucc", folder, "test")
    assert data.splits[0].skipped == {"repeated gold lines (counted once)": 1}
    results = evaluate("bucc", LookupEmbedder(vectors), data, tmp_path / "out", k=1)
    row = results["per_language"]["zh"]
    margin = math.cos(math.radians(50)) / ((math.cos(math.radians(50)) + math.cos(math.radians(40))) / 2)
    assert row["threshold"] == pytest.approx((1 + margin) / 2, abs=1e-5)
    assert row["threshold_from"] == "the dev split's best F1"
    assert (row["precision"], row["recall"], row["f1"]) == (100.0, 50.0, 66.67)
    assert (row["gold_pairs"], row["predicted"], row["correct"], row["gold_among_candidates"]) == (2, 1, 1, 2)
    assert lines(tmp_path / "out" / "predictions" / "zh-en.test.pairs.tsv") == ["z1\te1"]
    candidates = [line.split("\t") for line in lines(tmp_path / "out" / "predictions" / "zh-en.test.candidates.tsv")]
    assert [c[:2] for c in candidates] == [["z1", "e1"], ["z2", "e2"]]  # best margin first
    assert float(candidates[1][2]) == pytest.approx(margin, abs=1e-5)
    assert results["skipped"] == {"zh test": {"repeated gold lines (counted once)": 1}}
    assert row["dev_f1"] == 100.0
    # The dev split alone: its own best threshold, said to be optimistic.
    dev = evaluate("bucc", LookupEmbedder(vectors), read_task("bucc", folder, "dev"), tmp_path / "dev", k=1)
    assert dev["per_language"]["zh"]["f1"] == 100.0
    assert "dev-optimal" in dev["per_language"]["zh"]["threshold_from"]


def test_fine_tuned_checkpoints_are_told_from_releases():
    from stabletune_fairseq.embeddings.encoder import is_fine_tuned

    weights = {"encoder.sentence_encoder.embed_tokens.weight": torch.zeros(1)}
    assert not is_fine_tuned({"model": weights, "cfg": {"model": {"_name": "stabletune_xlmr_e5_small"}}})
    assert not is_fine_tuned({"model": weights, "cfg": {"task": {"_name": "masked_lm"}}})
    assert is_fine_tuned({"model": {**weights, "heads.xnli.out_proj.weight": torch.zeros(1)}})
    assert is_fine_tuned({"model": weights, "cfg": {"task": {"_name": "xtreme_sentence"}}})


# ---------------------------------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def e5_embedder(e5_dir):
    from stabletune_fairseq.embeddings.encoder import EmbeddingSettings, SentenceEmbedder

    return SentenceEmbedder.load(e5_dir / "model.pt", EmbeddingSettings(prefix="query: "), torch.device("cpu"))


def test_long_sentences_are_cut_and_counted(e5_embedder):
    before = e5_embedder.truncated
    tokens = e5_embedder.tokens(["word " * 600, "short"])
    assert len(tokens[0]) == 512 and tokens[0][0] == e5_embedder.bos and tokens[0][-1] == e5_embedder.eos
    assert e5_embedder.truncated == before + 1


def test_layers_and_poolings(e5_embedder):
    from stabletune_fairseq.embeddings.encoder import EmbeddingSettings, SentenceEmbedder

    texts = ["Der Hund schläft.", "The dog sleeps in the sun all afternoon."]
    last = e5_embedder.embed(texts)
    tokens = torch.tensor(e5_embedder.tokens(texts[:1]))
    with torch.no_grad():  # the last layer through the encoder's own forward, mean over every token
        assert last[0] == pytest.approx(e5_embedder.loaded.encoder(tokens)[0].mean(0).numpy(), abs=1e-5)
    device = torch.device("cpu")
    first = SentenceEmbedder(e5_embedder.loaded, EmbeddingSettings(layer=0, pooling="cls", prefix="query: "), device)
    with torch.no_grad():  # layer 0 is the embedding layer's output: <s>'s embedding + position, layer-normed
        states = e5_embedder.loaded.encoder.sentence_encoder.forward_embedding(tokens)[0]
    assert first.embed(texts[:1])[0] == pytest.approx(states[0, 0].numpy(), abs=1e-5)
    with pytest.raises(ValueError, match="layers 0"):
        SentenceEmbedder(e5_embedder.loaded, EmbeddingSettings(layer=13), device)


@needs_tatoeba
@needs_sts
def test_cli_end_to_end_on_slices(tmp_path, e5_dir, capsys):
    from stabletune_fairseq.cli.embed_eval import main

    tatoeba = tmp_path / "tatoeba"
    for language in ("deu", "cmn"):
        for side in (language, "eng"):
            name = f"tatoeba.{language}-eng.{side}"
            write(tatoeba / name, lines(TATOEBA / name, 50))
    sts = tmp_path / "sts"
    write(
        sts / "input" / "STS.input.track5.en-en.txt",
        lines(STS / "STS2017.eval.v1.1" / "STS.input.track5.en-en.txt", 50),
    )
    write(sts / "gold" / "STS.gs.track5.en-en.txt", lines(STS / "STS2017.gs" / "STS.gs.track5.en-en.txt", 50))

    common = ["--checkpoint", str(e5_dir / "model.pt"), "--prefix", "query: ", "--cpu"]
    assert main([*common, "--task", "tatoeba", "--data", str(tatoeba), "--out", str(tmp_path / "t")]) == 0
    assert "| deu |" in capsys.readouterr().out
    results = json.loads((tmp_path / "t" / "results.json").read_text(encoding="utf-8"))
    assert {
        "task",
        "checkpoint",
        "data",
        "metrics",
        "per_language",
        "average",
        "settings",
        "model",
        "truncated",
        "notes",
        "skipped",
        "seconds",
        "layout",
        "gold_aligned",
    } <= set(results)
    assert results["settings"] == {
        "layer": 12,
        "pooling": "mean",
        "prefix": "query: ",
        "batch_size": 64,
        "device": "cpu",
        "precision": "fp32",
    }
    assert results["truncated"] == {"sentences": 0, "of": 200, "max_tokens": 512}
    assert results["model"]["kind"] == "release" and results["gold_aligned"] is True
    # e5-small (4-bit) measured 98% x->en on these 50 German sentences (chance: 2%)
    assert results["per_language"]["deu"]["x_to_en"] > 90
    assert results["per_language"]["cmn"]["x_to_en"] > 50 and results["average"]["count"] == 2
    assert (tmp_path / "t" / "results.md").read_text().startswith("# Tatoeba")

    assert main([*common, "--task", "sts", "--data", str(sts), "--out", str(tmp_path / "s"), "--sts-max-of-four"]) == 0
    results = json.loads((tmp_path / "s" / "results.json").read_text(encoding="utf-8"))
    row = results["per_track"]["track5.en-en"]
    assert row["n"] == 50 and 60 < row["spearman"] <= 100 and 60 < row["pearson"] <= 100  # measured 83.65 / 83.63
    assert row["spearman"] <= row["max4_spearman"] <= 100 and row["max4_of"] in scores.FOUR_SIMILARITIES
    assert len(lines(tmp_path / "s" / "predictions" / "track5.en-en.txt")) == 50

    write(sts / "gold" / "STS.gs.track5.en-en.txt", ["1.0", "2.0", "nan?"] + ["1"] * 47)
    capsys.readouterr()
    assert main([*common, "--task", "sts", "--data", str(sts), "--out", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f"stabletune-embed-eval: {sts / 'gold' / 'STS.gs.track5.en-en.txt'}:3: gold score 'nan?' is not a number"
    ]  # one line, before the model is loaded
