"""The metrics of the embedding tasks, numpy only (docs/embeddings.md gives each definition).

- Retrieval accuracy (Tatoeba): each sentence's nearest neighbour by cosine among the other side's sentences is right
  when it is its translation; x->en (sources searched among the English) is MTEB's number, en->x (English searched
  among the sources) XTREME's (its evaluate_retrieval.py indexes the source side); their mean is reported too.
- Ratio margin (Artetxe & Schwenk 2019), for BUCC mining: cos(x, y) divided by the mean of the average cosine of x to
  its k nearest targets and of y to its k nearest sources; every source keeps its best target (forward candidates),
  a threshold on the margin picks the pairs.
- Pearson and Spearman (average ranks for ties) correlation, x100, for STS: ``metrics/correlation.py``.

Similarities of large sets (BUCC: ~10k x ~10k sentences) are computed a block of rows at a time, so memory stays at
``block`` x targets floats instead of the whole matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 2048  # source rows per block of the similarity matrix


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32), so that dot products are cosines; a zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def _blocks(rows: int, block: int):
    for start in range(0, rows, block):
        yield slice(start, min(start + block, rows))


def nearest(queries: np.ndarray, keys: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """For each query row, the index of the key row of highest cosine (the first one on ties)."""
    queries, keys = unit_rows(queries), unit_rows(keys)
    out = np.empty(len(queries), dtype=np.int64)
    for rows in _blocks(len(queries), block):
        out[rows] = (queries[rows] @ keys.T).argmax(axis=1)
    return out


# ---------------------------------------------------------------------------------------------------- retrieval


@dataclass
class RetrievalScores:
    """Accuracies in percent: ``x_to_en`` (MTEB's direction), ``en_to_x`` (XTREME's direction), their ``mean``."""

    x_to_en: float
    en_to_x: float
    mean: float


def retrieval_accuracy(source: np.ndarray, english: np.ndarray, block: int = BLOCK) -> RetrievalScores:
    """Row i of ``source`` and of ``english`` are translations (the gold); every row is searched among all rows of
    the other side."""
    if len(source) != len(english):
        raise ValueError(f"retrieval accuracy needs aligned sides: {len(source)} and {len(english)} rows")
    gold = np.arange(len(source))
    x_to_en = 100.0 * float(np.mean(nearest(source, english, block) == gold))
    en_to_x = 100.0 * float(np.mean(nearest(english, source, block) == gold))
    return RetrievalScores(x_to_en, en_to_x, (x_to_en + en_to_x) / 2)


# ---------------------------------------------------------------------------------------------------- margin mining


def top_k_mean(queries: np.ndarray, keys: np.ndarray, k: int, block: int = BLOCK) -> np.ndarray:
    """For each query row, the mean cosine to its ``k`` nearest key rows (all keys when there are fewer)."""
    queries, keys = unit_rows(queries), unit_rows(keys)
    k = min(k, len(keys))
    out = np.empty(len(queries), dtype=np.float64)
    for rows in _blocks(len(queries), block):
        similarity = queries[rows] @ keys.T
        out[rows] = np.partition(similarity, -k, axis=1)[:, -k:].mean(axis=1)
    return out


def margin_matrix(similarity: np.ndarray, k: int) -> np.ndarray:
    """The ratio margin of every (source row, target column) of a cosine matrix; the definition, for small inputs:
    ``margin(x, y) = cos(x, y) / (sum_{z in NN_k(x)} cos(x, z) / 2k + sum_{z in NN_k(y)} cos(y, z) / 2k)``, NN_k(x)
    the k targets nearest to x, NN_k(y) the k sources nearest to y."""
    similarity = np.asarray(similarity, dtype=np.float64)
    k_rows, k_columns = min(k, similarity.shape[1]), min(k, similarity.shape[0])
    source_mean = np.partition(similarity, -k_rows, axis=1)[:, -k_rows:].mean(axis=1)
    target_mean = np.partition(similarity, -k_columns, axis=0)[-k_columns:, :].mean(axis=0)
    return similarity / ((source_mean[:, None] + target_mean[None, :]) / 2)


@dataclass
class Candidates:
    """Forward candidates: source row i's best target row ``target[i]``, its ``margin[i]`` and ``cosine[i]``."""

    target: np.ndarray
    margin: np.ndarray
    cosine: np.ndarray


def margin_candidates(source: np.ndarray, target: np.ndarray, k: int = 4, block: int = BLOCK) -> Candidates:
    """Each source row's target of highest ratio margin (``margin_matrix``), computed a block of rows at a time."""
    source, target = unit_rows(source), unit_rows(target)
    source_mean = top_k_mean(source, target, k, block)
    target_mean = top_k_mean(target, source, k, block)
    best = np.empty(len(source), dtype=np.int64)
    margin = np.empty(len(source), dtype=np.float64)
    cosine = np.empty(len(source), dtype=np.float64)
    for rows in _blocks(len(source), block):
        similarity = (source[rows] @ target.T).astype(np.float64)
        margins = similarity / ((source_mean[rows, None] + target_mean[None, :]) / 2)
        best[rows] = margins.argmax(axis=1)
        picked = np.arange(rows.stop - rows.start), best[rows]
        margin[rows], cosine[rows] = margins[picked], similarity[picked]
    return Candidates(best, margin, cosine)


@dataclass
class ThresholdScores:
    """Pairs with a margin >= ``threshold`` are predicted (None: none is); precision, recall and F1 in percent
    against the gold pairs."""

    threshold: float | None
    precision: float
    recall: float
    f1: float
    predicted: int
    correct: int


def _prf(predicted: int, correct: int, gold: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
    return 100 * precision, 100 * recall, 100 * f1


def scores_at(threshold: float | None, margins: np.ndarray, correct: np.ndarray, gold: int) -> ThresholdScores:
    """Precision, recall and F1 of the candidates whose margin is >= ``threshold``; ``correct[i]``: candidate i is a
    gold pair; ``gold``: the number of gold pairs (those no candidate found count as missed)."""
    chosen = np.zeros(len(margins), dtype=bool) if threshold is None else np.asarray(margins) >= threshold
    predicted, hits = int(chosen.sum()), int(np.asarray(correct)[chosen].sum())
    return ThresholdScores(threshold, *_prf(predicted, hits, gold), predicted, hits)


def best_threshold(margins: np.ndarray, correct: np.ndarray, gold: int) -> ThresholdScores:
    """The threshold of highest F1: candidates sorted by margin, every cut between two different margins tried, the
    threshold halfway between the last margin kept and the next (the last margin when all are kept). Of cuts with
    equal F1 the highest threshold wins (fewest predictions)."""
    margins, correct = np.asarray(margins, dtype=np.float64), np.asarray(correct, dtype=bool)
    if not len(margins) or not correct.any():
        return scores_at(None, margins, correct, gold)
    order = np.argsort(-margins, kind="stable")
    ranked, hits = margins[order], np.cumsum(correct[order])
    predicted = np.arange(1, len(ranked) + 1)
    precision, recall = hits / predicted, hits / gold
    f1 = np.where(hits > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
    f1[:-1][ranked[1:] == ranked[:-1]] = -1  # no threshold separates equal margins
    cut = int(np.argmax(f1))
    threshold = (ranked[cut] + ranked[cut + 1]) / 2 if cut + 1 < len(ranked) else ranked[cut]
    return scores_at(float(threshold), margins, correct, gold)


# ---------------------------------------------------------------------------------------------------- correlation


FOUR_SIMILARITIES = ("cosine", "manhattan", "euclidean", "dot")


def paired_similarities(first: np.ndarray, second: np.ndarray) -> dict[str, np.ndarray]:
    """Row i of ``first`` against row i of ``second``, the four similarities the multi-stage distillation framework
    scores STS with (``evaluator/evaluate/embedding_similarity_evaluator.py``): cosine, the negative Manhattan (L1)
    and Euclidean (L2) distances and the dot product, on the embeddings as given (not normalised)."""
    cosine = (unit_rows(first) * unit_rows(second)).sum(axis=1).astype(np.float64)  # float32 products, as before
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    difference = first - second
    return {
        "cosine": cosine,
        "manhattan": -np.abs(difference).sum(axis=1),
        "euclidean": -np.sqrt((difference**2).sum(axis=1)),
        "dot": (first * second).sum(axis=1),
    }
