"""Augmentations: sampled views spell the same words, code-switching replaces dictionary words only,
and the same (seed, epoch, example) always gives the same view."""

import numpy as np
import pytest
from conftest import SHARED_SAMPLE, needs_shared

from stabletune_fairseq.data.augment.code_switch import CodeSwitcher, read_muse_dictionary, split_punctuation
from stabletune_fairseq.data.augment.subword_sampling import UnigramWordSampler
from stabletune_fairseq.data.augment.views import augment_words, view_rng
from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary
from stabletune_fairseq.data.errors import InputFormatError
from stabletune_fairseq.data.words import word_groups, word_text

SENTENCES = [
    "The international conference on multilingual representations starts tomorrow.",
    "Die Weltgesundheitsorganisation veröffentlichte gestern ihren Jahresbericht.",
    "我们明天在图书馆见面。",
    "Unbelievably, the extraordinarily long words were segmented.",
]


@pytest.fixture(scope="module")
def tools(e5_dir):
    dictionary = load_xlmr_dictionary(str(e5_dir / "dict.txt"))
    encoder = PieceEncoder(str(e5_dir / "sentencepiece.bpe.model"), dictionary)
    return dictionary, encoder, UnigramWordSampler(str(e5_dir / "sentencepiece.bpe.model"), dictionary)


def sampled_view(tools, ids, seed, prob=1.0):
    dictionary, _, sampler = tools
    return augment_words(ids, dictionary, prob, view_rng(seed, 1, 0), lambda w, rng: sampler.sample(w, 0.3, rng))


def test_sampled_views_spell_the_same_words(tools):
    dictionary, encoder, _ = tools
    changed = 0
    for ids in encoder.encode(SENTENCES):
        original = [word_text(g, dictionary) for g in word_groups(ids, dictionary)]
        for seed in range(5):
            groups = sampled_view(tools, ids, seed)
            assert [word_text(g, dictionary) for g in groups] == original  # one group per word, same text
            changed += sum(g != o for g, o in zip(groups, word_groups(ids, dictionary)))
    assert changed > 0  # sampling does produce other segmentations


def test_same_seed_same_view_other_seed_other_view(tools):
    _, encoder, _ = tools
    ids = encoder.encode(SENTENCES[:1])[0]
    assert sampled_view(tools, ids, 7) == sampled_view(tools, ids, 7)
    assert any(sampled_view(tools, ids, 7) != sampled_view(tools, ids, s) for s in range(8, 20))


def _segmentations(sampler, text):
    """Every segmentation of ``text`` into pieces of the model, by plain recursion (the oracle)."""
    if not text:
        yield []
        return
    for k in range(1, min(len(text), sampler.max_piece_chars) + 1):
        if text[:k] in sampler.pieces:
            for rest in _segmentations(sampler, text[k:]):
                yield [text[:k], *rest]


def _chi_square_fits(counts: dict, expected: dict, draws: int) -> tuple[float, float]:
    """Pearson's statistic over the segmentations expected >= 5 times (the rest pooled in one bin), and
    its 0.999 quantile (Wilson-Hilferty approximation of the chi-square quantile)."""
    big = [k for k, p in expected.items() if p * draws >= 5]
    observed = [counts.get(k, 0) for k in big] + [draws - sum(counts.get(k, 0) for k in big)]
    wanted = [expected[k] * draws for k in big] + [draws * (1 - sum(expected[k] for k in big))]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, wanted) if e > 0)
    df = len(big)  # bins - 1, the pooled bin included
    return statistic, df * (1 - 2 / (9 * df) + 3.09 * (2 / (9 * df)) ** 0.5) ** 3


def test_sampling_frequencies_follow_the_unigram_model_at_alpha_0_3(tools):
    """10,000 draws for one word against P(segmentation) ∝ exp(0.3 · Σ piece scores), enumerated; and
    sentencepiece's own sampler against the same probabilities (so the definition is sentencepiece's)."""
    import sentencepiece as spm

    _, _, sampler = tools
    segmentations = [tuple(s) for s in _segmentations(sampler, "▁garden")]
    weights = np.array([0.3 * sum(sampler.pieces[p][1] for p in s) for s in segmentations])
    probs = np.exp(weights - weights.max())
    expected = dict(zip(segmentations, probs / probs.sum()))
    assert len(expected) == 57 and max(expected.values()) < 0.6  # many segmentations with real mass
    by_ids = {tuple(sampler.pieces[p][0] for p in s): s for s in segmentations}
    rng, draws = np.random.default_rng(0), 10_000
    ours = {}
    for _ in range(draws):
        key = by_ids[tuple(sampler.sample("garden", 0.3, rng))]
        ours[key] = ours.get(key, 0) + 1
    statistic, critical = _chi_square_fits(ours, expected, draws)
    assert statistic < critical, (statistic, critical)
    spm.set_random_generator_seed(1)
    theirs = {}
    for _ in range(draws):
        key = tuple(sampler.sp.encode("garden", out_type=str, enable_sampling=True, alpha=0.3, nbest_size=-1))
        theirs[key] = theirs.get(key, 0) + 1
    statistic, critical = _chi_square_fits(theirs, expected, draws)
    assert statistic < critical, (statistic, critical)
    # a wrong alpha is caught: alpha 1.0's probabilities do not fit draws made at 0.3
    sharp = np.exp(weights / 0.3 - (weights / 0.3).max())
    assert _chi_square_fits(ours, dict(zip(segmentations, sharp / sharp.sum())), draws)[0] > critical


def test_sampling_at_a_large_alpha_is_the_viterbi_segmentation(tools):
    """With alpha large the sampler must return sentencepiece's best (Viterbi) segmentation."""
    dictionary, encoder, sampler = tools
    for word in ["international", "Weltgesundheitsorganisation", "segmented"]:
        best = encoder.encode([word])[0].tolist()
        assert sampler.sample(word, 50.0, np.random.default_rng(0)) == best


def test_probability_zero_changes_nothing(tools):
    dictionary, encoder, _ = tools
    ids = encoder.encode(SENTENCES[1:2])[0]
    assert sampled_view(tools, ids, 3, prob=0.0) == word_groups(ids, dictionary)


def test_muse_reader(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("dog\tHund\ndog Köter\nnew york\tNew York\ntwo words\tzwei Wörter\n", encoding="utf-8")
    assert read_muse_dictionary(path, one_word_only=True) == {"dog": ["Hund", "Köter"]}
    assert read_muse_dictionary(path, one_word_only=False)["two words"] == ["zwei Wörter"]
    bad = tmp_path / "en-fr.txt"
    bad.write_text("chien\nchat\tchat\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"en-fr.txt:1: expected"):
        read_muse_dictionary(bad, one_word_only=True)


def test_missing_dictionary_language_is_an_error(tmp_path):
    (tmp_path / "en-de.txt").write_text("dog\tHund\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="'fr' not found"):
        CodeSwitcher(tmp_path, ["de", "fr"])


def test_punctuation_is_kept_around_translations(tmp_path):
    assert split_punctuation("«dog.»") == ("«", "dog", ".»")
    (tmp_path / "en-de.txt").write_text("dog\tHund\n", encoding="utf-8")
    switcher = CodeSwitcher(tmp_path, ["de"])
    assert switcher.translate("Dog,", np.random.default_rng(0)) == "Hund,"
    assert switcher.translate("cat", np.random.default_rng(0)) is None


@needs_shared
def test_code_switch_replaces_only_dictionary_words_one_for_one(tools):
    dictionary, encoder, _ = tools
    switcher = CodeSwitcher(SHARED_SAMPLE / "dicts", ["de", "fr", "zh"])
    ids = encoder.encode(["The dog sleeps in the house near the river."])[0]
    original = [word_text(g, dictionary) for g in word_groups(ids, dictionary)]

    def replace(word, rng):
        new = switcher.translate(word, rng)
        return None if new is None else encoder.encode([new])[0].tolist()

    groups = augment_words(ids, dictionary, 1.0, view_rng(1, 1, 0), replace)
    assert len(groups) == len(original)  # one word for one word
    swapped = [(o, word_text(g, dictionary)) for o, g in zip(original, groups) if word_text(g, dictionary) != o]
    assert swapped, "nothing was switched"
    for source, target in swapped:
        _, core, _ = split_punctuation(source)
        assert any(target.strip(".") in switcher.tables[lang].get(core.lower(), []) for lang in switcher.languages)


def test_nbest_sampling_stays_within_the_n_best(tools):
    dictionary, encoder, sampler = tools
    word = "Weltgesundheitsorganisation"
    best = encoder.encode([word])[0].tolist()
    assert {tuple(sampler.sample(word, 0.3, np.random.default_rng(s), nbest=1)) for s in range(10)} == {tuple(best)}
    two_best = {tuple(encoder.id_table[i] for i in ids) for ids in encoder.sp.nbest_encode(word, nbest_size=2)}
    drawn = {tuple(sampler.sample(word, 0.3, np.random.default_rng(s), nbest=2)) for s in range(30)}
    assert drawn == two_best
