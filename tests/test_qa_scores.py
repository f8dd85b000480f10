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


# --- MLQA normalisation (mlqa_evaluation_v1.py of facebookresearch/MLQA) ----------------------------------
# Expected values below are worked out by hand from the official script's rules, in its order: lowercase,
# delete punctuation (Unicode P* and string.punctuation), replace the language's articles by a space,
# then tokenise (zh: mixed segmentation over U+4E00..U+9FA5; the other languages: whitespace).


def test_unicode_punctuation_is_removed_by_mlqa_but_not_by_squad():
    text = "«Le Monde», 北京。 بيروت، — OK!"
    # guillemets (Pi/Pf), the ideographic full stop (Po), the Arabic comma (Po) and the em dash (Pd) are
    # Unicode punctuation, but none of them is in string.punctuation; "le" is no English article
    assert normalize_answer(text, "en", "mlqa") == ["le", "monde", "北京", "بيروت", "ok"]
    assert normalize_answer(text) == ["«le", "monde»", "北京。", "بيروت،", "—", "ok"]
    assert exact_match("Le Monde", ["«Le Monde»"], style="mlqa", lang="en") == 1.0
    assert exact_match("Le Monde", ["«Le Monde»"]) == 0.0
    # SQuAD: pred [le, monde] vs gold [«le, monde»]: no common token
    assert f1("Le Monde", ["«Le Monde»"]) == 0.0


def test_mlqa_also_removes_ascii_symbols_of_string_punctuation():
    # "$" and "+" are Unicode symbols (Sc, Sm), not punctuation, but are in string.punctuation
    assert normalize_answer("$5 + tax", "en", "mlqa") == ["5", "tax"]
    # symbols outside ASCII are in neither set: "€" (Sc) and the full-width plus (Sm) stay
    assert normalize_answer("5€ 1＋1 1+1", "en", "mlqa") == ["5€", "1＋1", "11"]


def test_mlqa_english_articles():
    assert normalize_answer("The Eiffel Tower, an icon", "en", "mlqa") == ["eiffel", "tower", "icon"]


def test_mlqa_punctuation_goes_before_the_articles():
    # "the-end": the hyphen is deleted first, leaving the single word "theend", which holds no article
    assert normalize_answer("the-end", "en", "mlqa") == ["theend"]
    # Spanish "el-la" becomes "ella" (a word, not the articles el and la)
    assert normalize_answer("el-la", "es", "mlqa") == ["ella"]


def test_mlqa_articles_are_replaced_by_a_space():
    # "→" (Sm) is not removed; the article "a" between two arrows is a whole word (\b on both sides) and
    # becomes a space, which splits "x→a→y" into two tokens (deleting it would have left one token "x→→y")
    assert normalize_answer("x→a→y", "en", "mlqa") == ["x→", "→y"]


def test_mlqa_hindi_has_no_articles_and_unknown_languages_are_rejected():
    # hi: whitespace tokens, no article rule (not even the English one)
    assert normalize_answer("The tower", "hi", "mlqa") == ["the", "tower"]
    # the script knows en, es, hi, vi, de, ar and zh only and stops on any other language
    for lang in (None, "xx", "fr", "ja"):
        with pytest.raises(ValueError, match="language"):
            normalize_answer("The tower", lang, "mlqa")
        with pytest.raises(ValueError, match="language"):
            exact_match("The tower", ["tower"], style="mlqa", lang=lang)


def test_mlqa_german_articles():
    assert normalize_answer("Der Hund des Nachbarn, einem Freund", "de", "mlqa") == ["hund", "nachbarn", "freund"]
    # "derzeit" and "denken" start with an article but are whole words of their own
    assert normalize_answer("derzeit denken die", "de", "mlqa") == ["derzeit", "denken"]
    # die, der, einen, einer are in the list; "eins" and "dessen" are not
    assert normalize_answer("Die Geschichte der Stadt, einen Tag einer Woche", "de", "mlqa") == [
        "geschichte",
        "stadt",
        "tag",
        "woche",
    ]
    assert normalize_answer("eins dessen", "de", "mlqa") == ["eins", "dessen"]
    assert exact_match("die Stadt Berlin", ["Stadt Berlin"], style="mlqa", lang="de") == 1.0
    # English articles are not German articles
    assert normalize_answer("the Hund", "de", "mlqa") == ["the", "hund"]


def test_mlqa_spanish_and_vietnamese_articles():
    assert normalize_answer("Los libros de la casa", "es", "mlqa") == ["libros", "de", "casa"]
    # el, la, unas are articles; "lo" is not in the script's list, "Elena" and "unidad" are whole words
    assert normalize_answer("El niño y la niña, unas veces", "es", "mlqa") == ["niño", "y", "niña", "veces"]
    assert normalize_answer("lo mejor de Elena, una unidad", "es", "mlqa") == ["lo", "mejor", "de", "elena", "unidad"]
    assert normalize_answer("những cái bàn của tôi", "vi", "mlqa") == ["bàn", "tôi"]


def test_mlqa_arabic_article_is_removed_everywhere():
    # word start: "الكتاب" -> " كتاب"
    assert normalize_answer("الكتاب", "ar", "mlqa") == ["كتاب"]
    # the guillemets go first; then every "ال" becomes a space, also the one ending "مال" (-> "م ")
    assert normalize_answer("«الكتاب» الجديد مال", "ar", "mlqa") == ["كتاب", "جديد", "م"]
    # inside a word: "مالك" (م ا ل ك) -> "م ك", two tokens; "فالكتاب" -> "ف كتاب"
    assert normalize_answer("مالك", "ar", "mlqa") == ["م", "ك"]
    assert normalize_answer("فالكتاب", "ar", "mlqa") == ["ف", "كتاب"]
    # "الجمال" (ا ل ج م ا ل) loses both: " جم " -> [جم]; "جمال" (ج م ا ل) -> "جم " -> [جم]: the same answer
    assert exact_match("الجمال", ["جمال"], style="mlqa", lang="ar") == 1.0
    assert exact_match("الكتاب الجديد", ["كتاب جديد"], style="mlqa", lang="ar") == 1.0
    # SQuAD keeps the article: no common token
    assert f1("الكتاب الجديد", ["كتاب جديد"]) == 0.0


def test_mlqa_arabic_f1_with_an_article_inside_a_word():
    # pred "فالكتاب" -> [ف, كتاب], gold "الكتاب" -> [كتاب]: common 1, P = 1/2, R = 1, F1 = 2/3
    assert f1("فالكتاب", ["الكتاب"], style="mlqa", lang="ar") == pytest.approx(2 / 3)
    assert exact_match("فالكتاب", ["الكتاب"], style="mlqa", lang="ar") == 0.0
    # pred "مالك" -> [م, ك], gold "ملك" (no "ال") -> [ملك]: nothing shared, F1 0
    assert f1("مالك", ["ملك"], style="mlqa", lang="ar") == 0.0


def test_mlqa_chinese_mixed_segmentation():
    # 北 京 年 奥 运 会 all lie in U+4E00..U+9FA5: one token each; "2008" is a run between them
    assert normalize_answer("北京 2008年奥运会", "zh", "mlqa") == ["北", "京", "2008", "年", "奥", "运", "会"]
    assert normalize_answer("iPhone手机", "zh", "mlqa") == ["iphone", "手", "机"]
    # full-width punctuation is Unicode punctuation (Po) and goes first; full-width digits are not Chinese
    # characters and make one run: "２００８年，北京" -> "２００８年北京" -> [２００８, 年, 北, 京]
    assert normalize_answer("２００８年，北京", "zh", "mlqa") == ["２００８", "年", "北", "京"]
    # other languages keep whitespace tokens
    assert normalize_answer("北京 2008年奥运会", "en", "mlqa") == ["北京", "2008年奥运会"]


def test_mlqa_chinese_characters_outside_the_official_range_are_not_cut_out():
    # 鿏 (U+9FCF, a unified ideograph added after U+9FA5) is not cut out: after the full-width brackets are
    # deleted, "鿏mt" is one whitespace run, one token
    assert normalize_answer("鿏（Mt）", "zh", "mlqa") == ["鿏mt"]
    # 𠮷 (U+20BB7, extension B) and 㐀 (U+3400, extension A) are not in the range either: two of them in a
    # row are one run; 野 (U+91CE) is in the range and ends the run
    assert normalize_answer("𠮷𠮷野", "zh", "mlqa") == ["𠮷𠮷", "野"]
    assert normalize_answer("㐀1 2", "zh", "mlqa") == ["㐀1", "2"]
    # compatibility ideograph 﨑 (U+FA11) is outside too; 山 (U+5C71) is inside: [山, 﨑2]
    assert normalize_answer("山﨑2", "zh", "mlqa") == ["山", "﨑2"]
    # pred [鿏] vs gold [鿏mt]: no common token, F1 0; vs gold "鿏": EM
    assert f1("鿏", ["鿏（Mt）"], style="mlqa", lang="zh") == 0.0
    assert exact_match("鿏", ["鿏（Mt）", "鿏。"], style="mlqa", lang="zh") == 1.0


def test_mlqa_chinese_character_f1():
    # pred [北, 京, 奥, 运, 会] vs gold [2008, 年, 北, 京, 奥, 运, 会]: common 5, P = 5/5, R = 5/7,
    # F1 = 2 * 1 * 5/7 / (1 + 5/7) = 10/12
    assert f1("北京奥运会。", ["2008年北京奥运会"], style="mlqa", lang="zh") == pytest.approx(10 / 12)
    # with whitespace tokens the two are single different tokens
    assert f1("北京奥运会。", ["2008年北京奥运会"], style="mlqa", lang="en") == 0.0
    # pred [北, 京, 北] vs gold [北, 京]: common = 2, P = 2/3, R = 1, F1 = 0.8
    assert f1("北京北", ["北京"], style="mlqa", lang="zh") == pytest.approx(0.8)
    assert exact_match("北 京", ["北京"], style="mlqa", lang="zh") == 1.0


def test_mlqa_em_and_f1_of_german_and_spanish_answers():
    # es: pred "la casa blanca" -> [casa, blanca], gold "Casa Blanca." -> [casa, blanca]: EM 1, F1 1
    assert exact_match("la casa blanca", ["Casa Blanca."], style="mlqa", lang="es") == 1.0
    assert f1("la casa blanca", ["Casa Blanca."], style="mlqa", lang="es") == 1.0
    # de: pred "der Fluss Arna" -> [fluss, arna], gold "die Arna" -> [arna]: common 1, P = 1/2, R = 1, F1 = 2/3
    assert exact_match("der Fluss Arna", ["die Arna"], style="mlqa", lang="de") == 0.0
    assert f1("der Fluss Arna", ["die Arna"], style="mlqa", lang="de") == pytest.approx(2 / 3)
    # best of two golds: vs "Arna" [arna] 2/3 as well; vs "Fluss Arna, 1905" [fluss, arna, 1905]:
    # common 2, P = 1, R = 2/3, F1 = 0.8 -> 0.8
    assert f1("der Fluss Arna", ["Arna", "Fluss Arna, 1905"], style="mlqa", lang="de") == pytest.approx(0.8)


def test_mlqa_f1_is_zero_when_both_answers_normalise_to_nothing():
    # "The" and "a" both normalise to "" (en): the strings are equal (EM 1), but no token is shared, and
    # the script's F1 is 0 whenever nothing is shared; "ال" alone becomes a space in Arabic
    assert exact_match("The", ["a"], style="mlqa", lang="en") == 1.0
    assert f1("The", ["a"], style="mlqa", lang="en") == 0.0
    assert (
        exact_match("ال", ["ال"], style="mlqa", lang="ar") == 1.0 and f1("ال", ["ال"], style="mlqa", lang="ar") == 0.0
    )
    # SQuAD style (SQuAD 2.0's rule): two empty answers agree
    assert f1("The", ["a"]) == 1.0
    # no gold answer at all (not a case of the MLQA script): an empty answer scores 1, any other 0
    assert exact_match("the", [], style="mlqa", lang="en") == 1.0 and f1("the", [], style="mlqa", lang="en") == 1.0
    assert f1("Paris", [], style="mlqa", lang="en") == 0.0


def test_mlqa_score_questions_in_arabic():
    golds = {"q1": ["الكتاب"], "q2": ["ملك"], "q3": ["جمال"]}
    predictions = {"q1": "فالكتاب", "q2": "مالك", "q3": "الجمال"}
    # q1: EM 0, F1 2/3; q2: EM 0, F1 0; q3: EM 1, F1 1 -> EM 1/3, F1 (2/3 + 1)/3 = 5/9
    scores = score_questions(predictions, golds, style="mlqa", lang="ar")
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(500 / 9)


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
