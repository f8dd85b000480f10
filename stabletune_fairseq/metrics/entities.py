"""seqeval's entity-level F1 from counts that can be summed over batches and workers.

XTREME scores UD-POS and PAN-X with ``seqeval.metrics.f1_score`` (micro average, default mode). Its
entities never cross a sentence, so the true positives, predicted and gold entities of each sentence
add up to the counts of the whole subset: F1 = 2·TP / (predicted + gold). We take the entities from
seqeval's own ``get_entities``, so the rules (how B-/I- tags open and close an entity, and how tags
without a prefix such as UPOS tags are read) are exactly seqeval's, with one exception: seqeval reads a
list of sentences as one sequence with an ``O`` between sentences, and a sentence that starts with a
one-letter tag (UPOS ``X``) then forms an entity that depends on the previous sentence's last tag.
Batches do not keep sentences in file order, so validation reads every sentence on its own; only such
sentences can count differently. ``stabletune-evaluate`` calls seqeval's ``f1_score`` on the whole
subset, in file order, as XTREME does. (seqeval also merges consecutive equal UPOS tags into one
"entity": UD-POS F1 is XTREME's metric; word accuracy is reported beside it.)
"""

from __future__ import annotations

import warnings

from seqeval.metrics.sequence_labeling import get_entities

from .per_language import log_language_sums

TRUE_POSITIVE, PREDICTED, GOLD = "ntp_", "npred_", "ngold_"


def sentence_entity_counts(gold: list[str], predicted: list[str]) -> tuple[int, int, int]:
    """(true positives, predicted entities, gold entities) of one sentence."""
    with warnings.catch_warnings():  # seqeval warns "NOUN seems not to be NE tag" for every UPOS tag
        warnings.simplefilter("ignore", UserWarning)
        gold_entities, predicted_entities = set(get_entities(gold)), set(get_entities(predicted))
    return len(gold_entities & predicted_entities), len(predicted_entities), len(gold_entities)


def entity_counts(sequences: dict[int, list[tuple[list[str], list[str]]]], languages: list[str]) -> dict[str, int]:
    """``ntp_/npred_/ngold_<lang>`` for every language (zeros included, so every worker logs the same keys)
    from ``{language index: [(gold tags, predicted tags) per sentence]}``."""
    counts = {}
    for index, name in enumerate(languages):
        totals = [0, 0, 0]
        for gold, predicted in sequences.get(index, []):
            for k, value in enumerate(sentence_entity_counts(gold, predicted)):
                totals[k] += value
        counts[TRUE_POSITIVE + name], counts[PREDICTED + name], counts[GOLD + name] = totals
    return counts


def f1_score(true_positives: int, predicted: int, gold: int) -> float:
    """F1 in percent; 0 when there is nothing to find and nothing predicted (as seqeval returns)."""
    return 200.0 * true_positives / (predicted + gold) if predicted + gold else 0.0


def log_entity_f1(logging_outputs) -> None:
    """Log ``f1_<lang>`` for every language with gold entities and their mean ``f1_avg``."""
    log_language_sums(logging_outputs, GOLD, (TRUE_POSITIVE, PREDICTED), {"f1": _f1})


def _f1(meters, name: str) -> float:
    # float(): in distributed runs fairseq sums the counts as tensors
    return f1_score(*(float(meters[key + name].sum) for key in (TRUE_POSITIVE, PREDICTED, GOLD)))
