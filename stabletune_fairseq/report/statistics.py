"""Mean, sample standard deviation and n over seeds; paired differences with a 95% t interval."""

from __future__ import annotations

import math
import statistics

# Two-sided 95% quantiles of Student's t (0.975 quantile) by degrees of freedom; between the rows the
# next smaller df is used (a slightly wider, conservative interval), beyond the last the normal's 1.960.
T_975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t_975(df: int) -> float:
    if df < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom (got {df})")
    if df > 120:
        return 1.960
    return T_975[max(d for d in T_975 if d <= df)]


def summarize(values: list[float]) -> dict:
    """``{"mean", "sd", "n", "values"}``; ``sd`` is the sample deviation (n - 1), None for one value."""
    if not values:
        raise ValueError("no values to summarize")
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
        "values": list(values),
    }


def paired_difference(values: list[float], baseline: list[float]) -> dict:
    """Differences ``values[i] - baseline[i]`` (the same seed), summarized, with ``ci95``: the mean ±
    t(0.975, n - 1) · sd / sqrt(n) (None for one pair)."""
    if len(values) != len(baseline):
        raise ValueError(f"paired values need the same seeds ({len(values)} against {len(baseline)})")
    result = summarize([v - b for v, b in zip(values, baseline)])
    result["ci95"] = None
    if result["n"] > 1:
        half = t_975(result["n"] - 1) * result["sd"] / math.sqrt(result["n"])
        result["ci95"] = [result["mean"] - half, result["mean"] + half]
    return result


def cross_lingual_gap(per_language: dict[str, float]) -> float | None:
    """English minus the mean of the other languages (None without English or without another language)."""
    others = [v for lang, v in per_language.items() if lang != "en"]
    if "en" not in per_language or not others:
        return None
    return per_language["en"] - statistics.fmean(others)


def format_summary(s: dict | None, digits: int = 2) -> str:
    """``mean ± sd`` (just the mean for n = 1); ``–`` when absent."""
    if s is None:
        return "–"
    if s["sd"] is None:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


def format_difference(s: dict | None, digits: int = 2) -> str:
    """``+mean [lo, hi]`` (the 95% interval), or ``+mean`` for one pair."""
    if s is None:
        return "–"
    text = f"{s['mean']:+.{digits}f}"
    if s.get("ci95"):
        low, high = s["ci95"]
        text += f" [{low:+.{digits}f}, {high:+.{digits}f}]"
    return text
