"""EM/F1 of extractive QA answers against hand-computed values (SQuAD and MLQA normalisations)."""
from __future__ import annotations

import pytest

from stabletune_fairseq.metrics.qa_scores import exact_match, f1, normalize_answer, score_questions, token_f1


# --- SQuAD normalisation -------------------------------------------------------------------------------------

def test_squad_normalisation_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("  The  Eiffel-Tower,   a landmark! ") == ["eiffeltower", "landmark"]


def test_squad_articles_are_whole_words_only():
    # "another", "theatre" and "anthem" start with an article but are not articles
    assert normalize_answer("An anthem in another theatre") == ["anthem", "in", "another", "theatre"]


def test_squad_punctuation_is_deleted_not_replaced_by_a_space():
    assert normalize_answer("U.S.A.") == ["usa"]
    assert normalize_answer("state-of-the-art") == ["stateoftheart"]


def test_squad_ignores_lang():
    assert normalize_answer("Der Hund", lang="de") == ["der", "hund"]


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="style"):
        normalize_answer("x", style="squad2")


def test_exact_match_after_normalisation():
    assert exact_match("the Eiffel Tower", ["Eiffel tower!"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel tower"]) == 0.0


def test_f1_of_a_longer_prediction():
    # pred tokens [in, paris, france], gold [paris]: P = 1/3, R = 1, F1 = 2*(1/3*1)/(1/3+1) = 0.5
    assert f1("in Paris France", ["Paris"]) == pytest.approx(0.5)
    assert exact_match("in Paris France", ["Paris"]) == 0.0


def test_f1_counts_repeated_tokens_as_a_multiset():
    # pred [new, new, york], gold [new, york, city]: common = {new: 1, york: 1} = 2, P = R = 2/3
    assert f1("new new york", ["New York City"]) == pytest.approx(2 / 3)


def test_f1_without_common_token_is_zero():
    assert f1("London", ["Paris"]) == 0.0


def test_maximum_over_several_golds():
    golds = ["Paris", "in Paris", "the city of Paris, France"]
    # vs "in Paris": EM; vs "Paris": P = 1/2, R = 1, F1 = 2/3; vs [city, of, paris, france]: P = 1/2, R = 1/4
    assert exact_match("in Paris", golds) == 1.0
    assert f1("in Paris", golds) == 1.0
    # pred [city, paris]: vs [paris] F1 = 2/3, vs [in, paris] F1 = 1/2, vs [city, of, paris, france]:
    # P = 1, R = 1/2, F1 = 2/3 -> best 2/3, and no exact match
    assert f1("city Paris", golds) == pytest.approx(2 / 3)
    assert exact_match("city Paris", golds) == 0.0


# --- unanswerable questions (SQuAD 2.0) ---------------------------------------------------------------------

def test_empty_gold_list_only_accepts_an_empty_prediction():
    assert exact_match("", []) == 1.0 and f1("", []) == 1.0
    # a prediction that normalises to nothing is the empty answer
    assert exact_match("The ...", []) == 1.0 and f1("the", []) == 1.0
    assert exact_match("Paris", []) == 0.0 and f1("Paris", []) == 0.0


def test_empty_prediction_against_an_answer_scores_zero():
    assert exact_match("", ["Paris"]) == 0.0 and f1("", ["Paris"]) == 0.0


def test_token_f1_edge_cases():
    assert token_f1([], []) == 1.0
    assert token_f1(["a"], []) == 0.0 and token_f1([], ["a"]) == 0.0
    assert token_f1(["x", "y"], ["y", "x"]) == 1.0


# --- MLQA normalisation --------------------------------------------------------------------------------------

def test_unicode_punctuation_is_removed_by_mlqa_but_not_by_squad():
    text = "«Le Monde», 北京。 بيروت، — OK!"
    # guillemets (Pi/Pf), the ideographic full stop (Po), the Arabic comma (Po) and the em dash (Pd) are
    # Unicode punctuation, but none of them is in string.punctuation
    assert normalize_answer(text, "fr", "mlqa") == ["le", "monde", "北京", "بيروت", "ok"]
    assert normalize_answer(text) == ["«le", "monde»", "北京。", "بيروت،", "—", "ok"]
    assert exact_match("Le Monde", ["«Le Monde»"], style="mlqa", lang="fr") == 1.0
    assert exact_match("Le Monde", ["«Le Monde»"]) == 0.0
    # SQuAD: pred [le, monde] vs gold [«le, monde»]: no common token
    assert f1("Le Monde", ["«Le Monde»"]) == 0.0


def test_mlqa_also_removes_ascii_symbols_of_string_punctuation():
    # "$" and "+" are Unicode symbols (Sc, Sm), not punctuation, but are in string.punctuation
    assert normalize_answer("$5 + tax", "en", "mlqa") == ["5", "tax"]


def test_mlqa_english_articles():
    assert normalize_answer("The Eiffel Tower, an icon", "en", "mlqa") == ["eiffel", "tower", "icon"]


def test_mlqa_without_language_removes_no_article():
    assert normalize_answer("The tower", None, "mlqa") == ["the", "tower"]
    assert normalize_answer("The tower", "hi", "mlqa") == ["the", "tower"]
    assert normalize_answer("The tower", "xx", "mlqa") == ["the", "tower"]


def test_mlqa_german_articles():
    assert normalize_answer("Der Hund des Nachbarn, einem Freund", "de", "mlqa") == ["hund", "nachbarn", "freund"]
    # "derzeit" and "denken" start with an article but are whole words of their own
    assert normalize_answer("derzeit denken die", "de", "mlqa") == ["derzeit", "denken"]
    assert exact_match("die Stadt Berlin", ["Stadt Berlin"], style="mlqa", lang="de") == 1.0
    # English articles are not German articles
    assert normalize_answer("the Hund", "de", "mlqa") == ["the", "hund"]


def test_mlqa_spanish_and_vietnamese_articles():
    assert normalize_answer("Los libros de la casa", "es", "mlqa") == ["libros", "de", "casa"]
    assert normalize_answer("những cái bàn của tôi", "vi", "mlqa") == ["bàn", "tôi"]


def test_mlqa_arabic_article_prefix():
    assert normalize_answer("الكتاب", "ar", "mlqa") == ["كتاب"]
    # removed from the start of every word, not in the middle, and punctuation goes first
    assert normalize_answer("«الكتاب» الجديد مال", "ar", "mlqa") == ["كتاب", "جديد", "مال"]
    assert exact_match("الكتاب الجديد", ["كتاب جديد"], style="mlqa", lang="ar") == 1.0
    # SQuAD keeps the prefix: no common token
    assert f1("الكتاب الجديد", ["كتاب جديد"]) == 0.0


def test_mlqa_chinese_mixed_segmentation():
    assert normalize_answer("北京 2008年奥运会", "zh", "mlqa") == ["北", "京", "2008", "年", "奥", "运", "会"]
    assert normalize_answer("iPhone手机", "zh", "mlqa") == ["iphone", "手", "机"]
    # other languages keep whitespace tokens
    assert normalize_answer("北京 2008年奥运会", "ja", "mlqa") == ["北京", "2008年奥运会"]


def test_mlqa_chinese_character_f1():
    # pred [北, 京, 奥, 运, 会] vs gold [2008, 年, 北, 京, 奥, 运, 会]: common 5, P = 5/5, R = 5/7,
    # F1 = 2 * 1 * 5/7 / (1 + 5/7) = 10/12
    assert f1("北京奥运会。", ["2008年北京奥运会"], style="mlqa", lang="zh") == pytest.approx(10 / 12)
    # with whitespace tokens the two are single different tokens
    assert f1("北京奥运会。", ["2008年北京奥运会"], style="mlqa", lang="en") == 0.0
    # pred [北, 京, 北] vs gold [北, 京]: common = 2, P = 2/3, R = 1, F1 = 0.8
    assert f1("北京北", ["北京"], style="mlqa", lang="zh") == pytest.approx(0.8)
    assert exact_match("北 京", ["北京"], style="mlqa", lang="zh") == 1.0


# --- over a subset -------------------------------------------------------------------------------------------

def test_score_questions_with_missing_and_extra_ids():
    golds = {"q1": ["Paris"], "q2": ["Paris"], "q3": ["the Eiffel Tower"], "q4": []}
    predictions = {"q1": "Paris", "q2": "in Paris France", "q4": "", "q9": "stray"}
    scores = score_questions(predictions, golds)
    # EM: 1, 0, 0 (missing), 1 -> 50%; F1: 1, 0.5, 0, 1 -> 62.5%
    assert scores["exact_match"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(62.5)
    assert (scores["n"], scores["missing"], scores["extra"]) == (4, 1, 1)


def test_score_questions_passes_style_and_lang():
    golds = {"q1": ["2008年北京奥运会"]}
    scores = score_questions({"q1": "北京奥运会"}, golds, style="mlqa", lang="zh")
    assert scores["f1"] == pytest.approx(100 * 10 / 12) and scores["exact_match"] == 0.0
    assert score_questions({"q1": "北京奥运会"}, golds)["f1"] == 0.0


def test_score_questions_without_questions():
    assert score_questions({"x": "a"}, {}) == {"exact_match": 0.0, "f1": 0.0, "n": 0, "missing": 0, "extra": 1}
