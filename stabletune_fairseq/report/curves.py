"""Training curves from fairseq's plain log (``--log-format simple``, ``<run dir>/train.log``).

Training lines (every ``--log-interval`` updates) give the task loss, R1 and R2; validation lines give
the dev score the run selects its best checkpoint by (fairseq's ``best_<metric>``: GLUE's ``acc_en``, ``mcc_en``,
``pearson_spearman_en``, MNLI ``acc_m``; XTREME's ``*_avg`` or ``*_en``), or, in a log without one, the average
(``f1_avg`` where logged, else ``acc_avg``). A resumed run repeats the updates after its last checkpoint:
the later line for an update wins.
"""

from __future__ import annotations

import re

TRAIN = re.compile(r"\| train_inner \| epoch \d+:\s+\d+ / \d+ (?P<pairs>.*)$")
VALID = re.compile(r"\| valid \| epoch \d+ \| valid on '[^']*' subset \| (?P<pairs>.*)$")
TRAIN_KEYS = ("task_loss", "r1", "r2")


def _numbers(pairs: str, separator: str) -> dict[str, float]:
    values = {}
    for item in pairs.split(separator):
        key, _, value = item.strip().partition("=" if separator == "," else " ")
        try:
            values[key] = float(value)
        except ValueError:
            continue
    return values


def read_curves(log_file: str) -> dict:
    """``{"train": {key: [(update, value), ...]}, "valid": [(update, average), ...], "valid_metric": name}``."""
    train, valid, metric = {}, {}, None
    with open(log_file, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if match := TRAIN.search(line):
                values = _numbers(match["pairs"], ",")
                if "num_updates" in values:
                    train[int(values["num_updates"])] = values
            elif match := VALID.search(line):
                values = _numbers(match["pairs"], "|")
                if "num_updates" in values:
                    valid[int(values["num_updates"])] = values
                    # fairseq logs the selection metric's best so far as best_<metric> (from the 2nd validation on)
                    metric = metric or next((k[len("best_") :] for k in values if k.startswith("best_")), None)
    if metric is None:  # the average: F1 for tagging and QA (they log accuracy or EM too)
        averages = [k for values in valid.values() for k in values if k.endswith("_avg")]
        metric = next((k for k in ("f1_avg", "acc_avg") if k in averages), averages[0] if averages else None)
    curves = {key: [(u, train[u][key]) for u in sorted(train) if key in train[u]] for key in TRAIN_KEYS}
    points = [(u, valid[u][metric]) for u in sorted(valid) if metric in valid[u]]
    return {"train": curves, "valid": points, "valid_metric": metric if points else None}
