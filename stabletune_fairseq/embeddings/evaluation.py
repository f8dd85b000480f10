"""A task's files through an embedder and the metrics into a results dict, and its predictions into files.

``read_task`` reads (and checks) every file first, so bad input fails before the model is loaded; ``evaluate``
then takes any object with ``embed(list[str]) -> float32 array`` (``encoder.SentenceEmbedder``, or a stand-in in
the tests). Results share one shape: ``metrics`` (the names, the first is the main one), ``per_language`` or
``per_track`` (one row of metrics and counts each), ``average`` (over the scored rows), ``skipped`` (rows left out of
the scores, counted, by reason) and ``notes`` (what a reader of the numbers must know).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.errors import InputFormatError
from ..metrics.correlation import pearson, spearman
from .readers import BuccSplit, StsSet, TatoebaData, bucc_languages, read_bucc, read_sts, read_tatoeba
from .scores import (
    FOUR_SIMILARITIES,
    best_threshold,
    margin_candidates,
    nearest,
    paired_similarities,
    retrieval_accuracy,
    scores_at,
)

logger = logging.getLogger(__name__)

TASKS = ("tatoeba", "bucc", "sts")
DIGITS = 2


def _round(value: float | None) -> float | None:
    """Rounded for the tables; NaN (a constant side of a correlation) becomes None, which JSON can hold."""
    return None if value is None or value != value else round(float(value), DIGITS)


def _average(rows: dict, metrics: list[str]) -> dict:
    scored = [row for row in rows.values() if all(row.get(m) is not None for m in metrics)]
    if not scored:
        return {}
    return {**{m: _round(sum(row[m] for row in scored) / len(scored)) for m in metrics}, "count": len(scored)}


# ---------------------------------------------------------------------------------------------------- reading


@dataclass
class BuccData:
    """The split to score and, for a test split, the dev split of the same language (its threshold)."""

    splits: list[BuccSplit]
    dev: dict[str, BuccSplit]


def read_task(task: str, folder: str | Path, split: str = "dev"):
    """The task's data, read and checked (``InputFormatError`` for anything malformed)."""
    if task == "tatoeba":
        return read_tatoeba(folder)
    if task == "sts":
        return read_sts(folder)
    if task != "bucc":
        raise ValueError(f"--task {task!r}: one of {', '.join(TASKS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFormatError(folder, None, "not a folder (the BUCC 2018 folder: <xx>-en.<split>.{<xx>,en,gold})")
    languages = bucc_languages(folder, split)
    if not languages:
        raise InputFormatError(
            folder,
            None,
            f"no BUCC files of the {split} split: expected <xx>-en.{split}.<xx> and "
            f"<xx>-en.{split}.en (XTREME's layout)",
        )
    dev_languages = set(bucc_languages(folder, "dev")) if split == "test" else set()
    return BuccData(
        [read_bucc(folder, lang, split) for lang in languages],
        {lang: read_bucc(folder, lang, "dev") for lang in languages if lang in dev_languages},
    )


def evaluate(task: str, embedder, data, out_dir: str | Path, k: int = 4, sts_max_of_four: bool = False) -> dict:
    out_dir = Path(out_dir)
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    if task == "tatoeba":
        return evaluate_tatoeba(embedder, data, out_dir)
    if task == "bucc":
        return evaluate_bucc(embedder, data, out_dir, k)
    return evaluate_sts(embedder, data, out_dir, sts_max_of_four)


# ---------------------------------------------------------------------------------------------------- Tatoeba

TATOEBA_METRICS = ["x_to_en", "en_to_x", "mean"]
TATOEBA_DIRECTIONS = (
    "x_to_en: every source sentence searched among the English sentences (MTEB's BitextMiningEvaluator direction); "
    "en_to_x: every English sentence searched among the source sentences (XTREME's evaluate_retrieval.py: it "
    "indexes the source side and queries it with the English lines)"
)


def _write_lines(path: Path, values) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in values), encoding="utf-8")


def evaluate_tatoeba(embedder, data: TatoebaData, out_dir: Path) -> dict:
    """Accuracy per language in both directions (LASER's layout), predictions always, named by direction:
    ``predictions/tatoeba.<lang>.x_to_en.txt`` (one line per source line: the 0-based English line nearest to it)
    and ``tatoeba.<lang>.en_to_x.txt`` (one line per English line: the 0-based source line nearest to it). XTREME's
    layout also gets ``predictions/tatoeba/test-<xx>.tsv``, XTREME's submission file, in XTREME's orientation (en->x,
    one source line per English line), the path XTREME's evaluate.py reads."""
    rows = {}
    for pair in data.languages:
        logger.info("tatoeba %s: %d sentences, %d English", pair.language, len(pair.source), len(pair.english))
        source, english = embedder.embed(pair.source), embedder.embed(pair.english)
        x_to_en, en_to_x = nearest(source, english), nearest(english, source)
        _write_lines(out_dir / "predictions" / f"tatoeba.{pair.language}.x_to_en.txt", x_to_en.tolist())
        _write_lines(out_dir / "predictions" / f"tatoeba.{pair.language}.en_to_x.txt", en_to_x.tolist())
        if data.layout == "xtreme":
            _write_lines(out_dir / "predictions" / "tatoeba" / f"test-{pair.language}.tsv", en_to_x.tolist())
        row = {"n": len(pair.source), "english": len(pair.english)}
        if data.gold_aligned:
            accuracy = retrieval_accuracy(source, english)
            row.update({name: _round(getattr(accuracy, name)) for name in TATOEBA_METRICS})
        rows[pair.language] = row
    return {
        "task": "tatoeba",
        "layout": data.layout,
        "gold_aligned": data.gold_aligned,
        "metrics": TATOEBA_METRICS if data.gold_aligned else [],
        "per_language": rows,
        "average": _average(rows, TATOEBA_METRICS) if data.gold_aligned else {},
        "skipped": {},
        "notes": [data.description, TATOEBA_DIRECTIONS],
    }


# ---------------------------------------------------------------------------------------------------- BUCC

BUCC_METRICS = ["f1", "precision", "recall"]


@dataclass
class Mined:
    """A split's forward candidates: ``pairs[i]`` = (source id, English id), with its margin; ``correct[i]``: a gold
    pair (all False without gold)."""

    split: BuccSplit
    pairs: list[tuple[str, str]]
    margin: np.ndarray
    cosine: np.ndarray
    correct: np.ndarray


def mine(embedder, split: BuccSplit, k: int) -> Mined:
    logger.info(
        "bucc %s-en %s: %d sentences, %d English", split.language, split.split, len(split.source), len(split.english)
    )
    candidates = margin_candidates(embedder.embed(split.source), embedder.embed(split.english), k)
    pairs = [(split.source_ids[i], split.english_ids[j]) for i, j in enumerate(candidates.target.tolist())]
    correct = np.array([split.gold is not None and pair in split.gold for pair in pairs], dtype=bool)
    return Mined(split, pairs, candidates.margin, candidates.cosine, correct)


def _write_bucc_predictions(mined: Mined, threshold: float | None, out_dir: Path) -> None:
    """``<xx>-en.<split>.candidates.tsv``: every forward candidate, best margin first (id_xx, id_en, margin, cosine);
    ``<xx>-en.<split>.pairs.tsv``: the pairs kept by the threshold, in BUCC's gold format."""
    stem = out_dir / "predictions" / f"{mined.split.language}-en.{mined.split.split}"
    order = np.argsort(-mined.margin, kind="stable")
    Path(f"{stem}.candidates.tsv").write_text(
        "".join(
            f"{mined.pairs[i][0]}\t{mined.pairs[i][1]}\t{mined.margin[i]:.6f}\t{mined.cosine[i]:.6f}\n" for i in order
        ),
        encoding="utf-8",
    )
    kept = [] if threshold is None else [i for i in order if mined.margin[i] >= threshold]
    Path(f"{stem}.pairs.tsv").write_text(
        "".join(f"{mined.pairs[i][0]}\t{mined.pairs[i][1]}\n" for i in kept), encoding="utf-8"
    )


def _threshold(embedder, data: BuccData, mined: Mined, k: int, row: dict):
    """The threshold for ``mined`` and where it comes from (None, None: no gold to choose one with). A test split
    takes its dev split's (its dev-optimal F1 goes into ``row``), else a split with gold its own optimum."""
    split = mined.split
    if split.split == "test" and split.language in data.dev and data.dev[split.language].gold is not None:
        dev = mine(embedder, data.dev[split.language], k)
        chosen = best_threshold(dev.margin, dev.correct, len(dev.split.gold))
        row["dev_f1"] = _round(chosen.f1)
        return chosen.threshold, "the dev split's best F1"
    if split.gold is None:
        return None, None
    chosen = best_threshold(mined.margin, mined.correct, len(split.gold))
    if split.split == "dev":
        return chosen.threshold, "best F1 on this dev split itself (dev-optimal: optimistic)"
    return (
        chosen.threshold,
        "best F1 on this test split itself (no dev split with gold: an upper bound, not a fair score)",
    )


def evaluate_bucc(embedder, data: BuccData, out_dir: Path, k: int = 4) -> dict:
    """Margin mining per language, scored with the threshold of ``_threshold``; without gold, predictions only."""
    rows, notes, skipped = {}, [], {}
    for split in data.splits:
        mined = mine(embedder, split, k)
        row = {"source_sentences": len(split.source), "english_sentences": len(split.english), "k": k}
        threshold, source = _threshold(embedder, data, mined, k, row)
        if split.gold is not None:
            scored = scores_at(threshold, mined.margin, mined.correct, len(split.gold))
            row.update(
                {
                    "f1": _round(scored.f1),
                    "precision": _round(scored.precision),
                    "recall": _round(scored.recall),
                    "gold_pairs": len(split.gold),
                    "predicted": scored.predicted,
                    "correct": scored.correct,
                    "gold_among_candidates": int(mined.correct.sum()),
                }
            )
        else:
            notes.append(
                f"{split.language}-en.{split.split}: no gold file: predictions only"
                + ("" if threshold is not None else " (candidates; no threshold without a dev split)")
            )
        row.update({"threshold": None if threshold is None else round(threshold, 6), "threshold_from": source})
        _write_bucc_predictions(mined, threshold, out_dir)
        for part in (split, data.dev.get(split.language) if source == "the dev split's best F1" else None):
            if part is not None and part.skipped:
                skipped[f"{split.language} {part.split}"] = part.skipped
        rows[split.language] = row
    notes.append(
        f"margin: ratio margin with k={k} nearest neighbours (Artetxe & Schwenk 2019); forward candidates "
        "(each source sentence's best English sentence); a pair is predicted when its margin >= threshold"
    )
    scored_rows = {lang: row for lang, row in rows.items() if "f1" in row}
    return {
        "task": "bucc",
        "split": data.splits[0].split,
        "metrics": BUCC_METRICS if scored_rows else [],
        "per_language": rows,
        "average": _average(scored_rows, BUCC_METRICS),
        "skipped": skipped,
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------------- STS

STS_METRICS = ["spearman", "pearson"]
FILE_NAME_UNSAFE = re.compile(r"[^\w.-]+")  # "sts-b dev" -> predictions/sts-b-dev.txt


MAX_OF_FOUR = "max4_spearman"


def _max_of_four(similarities: dict, gold: list[float]) -> tuple[float | None, str | None]:
    """The multi-stage framework's STS score: the highest Spearman of the four similarities (NaN ones left out)."""
    found = {name: spearman(similarities[name], gold) for name in FOUR_SIMILARITIES}
    found = {name: value for name, value in found.items() if value == value}
    if not found:
        return None, None
    name = max(found, key=found.get)
    return found[name], name


def evaluate_sts(embedder, sets: list[StsSet], out_dir: Path, max_of_four: bool = False) -> dict:
    """Pearson and Spearman x100 of the pairs' cosine similarities against the gold scores, per track/file;
    ``predictions/<name>.txt``: the cosine of each scored pair, one a line. ``max_of_four``: also
    ``max4_spearman``, the highest Spearman of cosine, -L1, -L2 and dot (the multi-stage framework's figure, an
    upper bound on the cosine one), and ``max4_of``, the similarity that gave it."""
    rows, skipped, notes = {}, {}, []
    for set_ in sets:
        logger.info("sts %s: %d pairs", set_.name, len(set_.scores))
        similarities = paired_similarities(embedder.embed(set_.first), embedder.embed(set_.second))
        cosine = similarities["cosine"]
        (out_dir / "predictions" / (FILE_NAME_UNSAFE.sub("-", set_.name) + ".txt")).write_text(
            "".join(f"{c:.6f}\n" for c in cosine.tolist()), encoding="utf-8"
        )
        rows[set_.name] = {
            "spearman": _round(spearman(cosine, set_.scores)),
            "pearson": _round(pearson(cosine, set_.scores)),
            "n": len(set_.scores),
        }
        if max_of_four:
            best, name = _max_of_four(similarities, set_.scores)
            rows[set_.name].update({MAX_OF_FOUR: _round(best), "max4_of": name})
        if set_.skipped:
            skipped[set_.name] = set_.skipped
        notes += set_.notes
    if max_of_four:
        notes.append(
            f"{MAX_OF_FOUR}: per file the highest Spearman of four similarities (cosine, -L1, -L2, dot) of the "
            "embeddings, as the multi-stage distillation framework reports STS: chosen on the scored data, an upper "
            "bound on the cosine Spearman"
        )
    metrics = STS_METRICS + ([MAX_OF_FOUR] if max_of_four else [])
    return {
        "task": "sts",
        "metrics": metrics,
        "per_track": rows,
        "average": _average(rows, metrics),
        "skipped": skipped,
        "notes": notes,
    }
