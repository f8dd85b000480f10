"""Entity F1 from summed per-sentence counts equals seqeval's f1_score called directly."""

import random

import pytest
from seqeval.metrics import f1_score as seqeval_f1

from stabletune_fairseq.metrics.entities import entity_counts, f1_score

NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
UPOS_TAGS = ["NOUN", "VERB", "ADJ", "ADP", "ADV", "AUX", "DET", "PRON", "PROPN", "PUNCT", "SCONJ", "X", "INTJ", "SYM"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("tags", [NER_TAGS, UPOS_TAGS], ids=["panx", "udpos"])
def test_summed_counts_match_seqeval(tags):
    rng = random.Random(7)
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(200)]
    for sentence in gold:  # a sentence-initial "X" depends on the previous sentence in seqeval (see entities.py)
        sentence[0] = "NOUN" if sentence[0] == "X" else sentence[0]
    # predictions: gold with some tags changed, so the score is neither 0 nor 100
    predicted = [[t if rng.random() < 0.7 else rng.choice(tags) for t in sentence] for sentence in gold]
    for sentence in predicted:
        sentence[0] = "NOUN" if sentence[0] == "X" else sentence[0]
    # split the sentences over two "languages" and two "batches", as validation does
    batches = [
        {0: list(zip(gold[:60], predicted[:60])), 1: list(zip(gold[60:100], predicted[60:100]))},
        {0: list(zip(gold[100:], predicted[100:]))},
    ]
    counts = [entity_counts(batch, ["de", "zh"]) for batch in batches]
    de = [sum(c[k + "de"] for c in counts) for k in ("ntp_", "npred_", "ngold_")]
    expected = 100 * seqeval_f1(gold[:60] + gold[100:], predicted[:60] + predicted[100:])
    assert f1_score(*de) == pytest.approx(expected, abs=1e-9)
    assert 5 < expected < 95
    zh = [counts[0][k + "zh"] for k in ("ntp_", "npred_", "ngold_")]
    assert f1_score(*zh) == pytest.approx(100 * seqeval_f1(gold[60:100], predicted[60:100]), abs=1e-9)


def test_every_language_is_logged_even_without_sentences():
    counts = entity_counts({}, ["ar", "de"])
    assert counts == {f"{k}{lang}": 0 for lang in ("ar", "de") for k in ("ntp_", "npred_", "ngold_")}
