"""Pearson's and Spearman's correlation, x100: the one implementation of GLUE's STS-B scores and the embedding
evaluation's STS scores.

Spearman's is Pearson's of the ranks, tied values sharing the mean of the ranks they span (the tie-corrected
definition of ``scipy.stats.spearmanr``). With a constant side a correlation is undefined: NaN, as scipy returns
it. Checkpoint selection cannot compare NaN (fairseq would keep it as the best for ever), so GLUE's validation
logs an undefined correlation as 0 (``glue_scores.py``); everything else reports the NaN.
"""

from __future__ import annotations

import numpy as np


def pearson(x, y) -> float:
    """Pearson's r x100 (NaN when either side is constant or has fewer than two values)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"correlation needs two sequences of the same length, not {len(x)} and {len(y)}")
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float(100 * (dx * dy).sum() / denominator) if denominator > 0 else float("nan")


def average_ranks(values) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they occupy ([10, 20, 20, 30] -> [1, 2.5, 2.5, 4])."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(values)] - 1
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends) / 2 + 1, ends - starts + 1)
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho x100: Pearson's r of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))
