"""QA preprocessing: words and character spans on multilingual text, answers mapped to pieces, windows
that cover every context piece, and window targets that cut out exactly the answer."""

import json
import sys

import numpy as np
import pytest
from conftest import QA_MAX_LEN, SHARED_SAMPLE, needs_shared, read_metadata, run

from stabletune_fairseq.data.datasets.qa_views import QADataset
from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary
from stabletune_fairseq.data.qa_encoding import answer_pieces, encode_texts, split_words, truncate_words
from stabletune_fairseq.data.qa_windows import plan_windows
from stabletune_fairseq.tasks.xtreme_qa import XtremeQAConfig, XtremeQATask

AWKWARD = [
    "北京2008年奥运会在中国举行。",  # no spaces: one word, many pieces
    "Reykjavi\u0301k and Cafe\u0301 noir",  # combining accents (NFKC composes them)
    "ﬁnancial ＡＢＣ  tab\there\u3000ideographic space",  # ligature, full-width letters, odd spaces
    "zero\u200bwidth \u200b alone, emoji 🙂 and العربية",
]


@pytest.fixture(scope="module")
def encoder(e5_dir):
    return PieceEncoder(str(e5_dir / "sentencepiece.bpe.model"), load_xlmr_dictionary(str(e5_dir / "dict.txt")))


def test_split_words_at_every_kind_of_whitespace():
    text = " a\tbc\u3000d\u202fe\n\nf "
    assert [text[b:e] for b, e in split_words(text)] == ["a", "bc", "d", "e", "f"]
    assert split_words("   ") == []


@pytest.mark.parametrize("text", AWKWARD)
def test_pieces_cover_each_word_exactly_in_order(encoder, text):
    [encoded], _ = encode_texts(encoder, [text])
    assert len(encoded.pieces) == len(encoded.char_spans) == encoded.word_pieces.sum()
    spans = np.split(encoded.char_spans, np.cumsum(encoded.word_pieces)[:-1])
    for (begin, end), word_spans in zip(split_words(text), spans):
        nonempty = [(b, e) for b, e in word_spans.tolist() if e > b]
        # The pieces of a word tile its characters: no gap, no overlap, nothing outside the word.
        assert nonempty[0][0] == begin and nonempty[-1][1] == end
        assert all(prev[1] == nxt[0] for prev, nxt in zip(nonempty, nonempty[1:]))


def test_cjk_answer_inside_a_long_word_maps_to_its_pieces(encoder):
    text = AWKWARD[0]
    [encoded], _ = encode_texts(encoder, [text])
    begin = text.index("奥运会")
    first, last, exact = answer_pieces(encoded.char_spans, begin, begin + 3)
    assert text[encoded.char_spans[first, 0] : encoded.char_spans[last, 1]] == "奥运会" and exact
    begin = text.index("运")  # inside the piece 奥运会: the whole piece, flagged as inexact
    first, last, exact = answer_pieces(encoded.char_spans, begin, begin + 1)
    assert "运" in text[encoded.char_spans[first, 0] : encoded.char_spans[last, 1]] and not exact


def test_combining_character_answer_keeps_the_original_characters(encoder):
    text = AWKWARD[1]
    [encoded], _ = encode_texts(encoder, [text])
    begin = text.index("Reykjavi\u0301k")
    first, last, _ = answer_pieces(encoded.char_spans, begin, begin + len("Reykjavi\u0301k"))
    assert text[encoded.char_spans[first, 0] : encoded.char_spans[last, 1]] == "Reykjavi\u0301k"  # not the NFKC form


def test_a_word_without_pieces_becomes_unk_covering_it(encoder):
    [encoded], unk_words = encode_texts(encoder, ["a \u200b b"])
    assert unk_words == 1 and encoder.unk in encoded.pieces.tolist()
    assert encoded.char_spans[encoded.pieces.tolist().index(encoder.unk)].tolist() == [2, 3]


def test_truncated_question_keeps_its_first_pieces(encoder):
    [encoded], _ = encode_texts(encoder, ["What is the name of the longest river in the country?"])
    cut, truncated = truncate_words(encoded, 5)
    assert truncated and cut.pieces.tolist() == encoded.pieces[:5].tolist() and cut.word_pieces.sum() == 5
    same, truncated = truncate_words(encoded, 100)
    assert not truncated and same.pieces.tolist() == encoded.pieces.tolist()


@pytest.mark.parametrize(
    "n,budget,stride",
    [(0, 10, 4), (7, 10, 4), (10, 10, 4), (11, 10, 4), (300, 50, 16), (300, 50, 128), (129, 128, 128)],
)
def test_windows_cover_every_context_piece(n, budget, stride):
    windows = plan_windows(n, budget, stride)
    covered = np.zeros(n, dtype=int)
    for start, length in windows:
        assert 0 < length <= budget or n == 0
        covered[start : start + length] += 1
    assert (covered >= 1).all()
    assert windows[-1][0] + windows[-1][1] == n
    assert all(b[0] - a[0] == min(stride, a[1]) for a, b in zip(windows, windows[1:]))


def make_task(data, **overrides):
    return XtremeQATask.setup_task(XtremeQAConfig(data=str(data), seed=3, **overrides))


def test_preprocessed_answers_cut_out_the_answer_text(toy_xquad):
    meta = read_metadata(toy_xquad)
    assert meta["kind"] == "qa" and meta["doc_stride"] == 16 and meta["max_query_length"] == 64
    assert set(meta["splits"]) == {"train", "valid_en", "valid_de", "valid_zh"}
    for name in meta["splits"]:
        spans = np.load(toy_xquad / "char_spans" / f"{name}.npy")
        answers = np.load(toy_xquad / "answers" / f"{name}.npy")
        records = [json.loads(line) for line in open(toy_xquad / "examples" / f"{name}.jsonl", encoding="utf-8")]
        task = make_task(toy_xquad)
        contexts = task._stored("context", [name])  # kept: its sizes live in its memory map
        offsets = np.concatenate([[0], np.cumsum(contexts.sizes)])
        for q, record in enumerate(records):
            first, last = answers[q] + offsets[q]
            assert record["context"][spans[first, 0] : spans[last, 1]] == record["answers"][0]
    assert meta["splits"]["valid_zh"]["long_contexts"] > 0 and meta["splits"]["train"]["answers_unmatched"] == 0


def test_windows_of_a_question_cover_its_context_and_targets_cut_out_the_answer(toy_xquad):
    task = make_task(toy_xquad)
    dataset = task.load_dataset("train").dataset
    records = [json.loads(line) for line in open(toy_xquad / "examples" / "train.jsonl", encoding="utf-8")]
    covered, answered = {}, set()
    for index in range(len(dataset)):
        number, q, start, length, size = dataset.windows[index]
        item = dataset[index]
        assert len(item["tokens"]) == size <= QA_MAX_LEN
        covered.setdefault(q, set()).update(range(start, start + length))
        s, e = item["target"].tolist()
        context_positions = np.flatnonzero(item["span_mask"].numpy())[1:]
        if s == 0:
            assert e == 0
            continue
        assert s in context_positions and e in context_positions and s <= e
        part = dataset.parts[number]
        first, last = (part.span_offsets[q] + start + p - context_positions[0] for p in (s, e))
        assert records[q]["context"][part.char_spans[first, 0] : part.char_spans[last, 1]] == records[q]["answers"][0]
        answered.add(q)
    sizes = np.asarray(dataset.parts[0].context.sizes)
    assert all(covered[q] == set(range(sizes[q])) for q in covered)
    assert answered == set(range(len(records)))  # every answer is inside some window
    assert len(dataset) > len(records)  # the long contexts have several windows


@needs_shared
def test_shared_sample_tydiqa_dev_without_answers_is_a_test_set(e5_dir, tmp_path):
    run(["bash", "preprocess/xtreme/process.sh", SHARED_SAMPLE, "tydiqa", e5_dir, tmp_path])
    meta = read_metadata(tmp_path / "tydiqa")
    assert sorted(meta["splits"]) == ["test_ar", "test_en", "test_ko", "train"]
    # 3,696 questions: the data README's count of the TyDiQA-GoldP English training file
    assert meta["splits"]["train"]["examples"] == 3696 and meta["splits"]["train"]["duplicate_ids"] > 0
    assert not meta["splits"]["test_ar"]["labelled"]


def test_views_keep_the_words_and_the_support_pairs_identical_pieces(toy_xquad):
    task = make_task(toy_xquad, view_augmentation="subword_sampling", subword_sampling_prob=0.5)
    dataset = task.load_dataset("train").dataset
    pieces = lambda ids: "".join(task.dictionary[i] for i in ids)  # noqa: E731
    perturbed = 0
    for index in range(0, len(dataset), 5):
        item = dataset[index]
        rows, views = item["tokens"], item["view"]
        assert len(views) <= QA_MAX_LEN
        row_support, view_support = item["support"]
        assert row_support[0] == view_support[0] == 0
        assert rows[row_support].tolist() == views[view_support].tolist()
        assert item["span_mask"][row_support].all() and item["view_span_mask"][view_support].all()
        row_context, view_context = rows[item["span_mask"]][1:], views[item["view_span_mask"]][1:]
        assert pieces(row_context) == pieces(view_context)  # re-segmented, the same text
        perturbed += len(row_context) + 1 - len(row_support)
    assert perturbed > 0


def test_evaluation_batches_hold_whole_questions(toy_xquad):
    task = make_task(toy_xquad)
    dataset = task.load_dataset("valid_zh")
    batches = dataset.batch_by_size(dataset.ordered_indices(), max_sentences=3)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(dataset)))
    owner = {}
    for number, batch in enumerate(batches):
        for index in batch:
            question = tuple(dataset.windows[index, :2])
            assert owner.setdefault(question, number) == number
    assert max(len(b) for b in batches) > 3  # a question with more windows than a batch holds gets its own


def test_answers_at_window_edges(toy_xquad):
    """An answer ending on a window's last context piece or starting on its first is inside it; one that
    crosses an edge is not (null target there, found in the next window)."""
    task = make_task(toy_xquad)
    stored = task.load_dataset("train").dataset
    # short windows moving 2 pieces at a time: answers meet their edges
    dataset = QADataset(stored.parts, task.dictionary, 32, 2, seed=1, training=True)
    edges = {"first": 0, "last": 0, "crossing": 0}
    for index in range(len(dataset)):
        number, q, start, length, _ = dataset.windows[index]
        first, last = dataset.parts[number].answers[q]
        target = dataset[index]["target"].tolist()
        inside = start <= first and last < start + length
        assert (target != [0, 0]) == inside
        edges["first"] += inside and first == start
        edges["last"] += inside and last == start + length - 1
        edges["crossing"] += (first < start <= last) or (first < start + length <= last)
    assert min(edges.values()) > 0, edges


def test_offsets_are_characters_found_from_the_pieces_surfaces(encoder):
    """Offsets come from the pieces' surfaces (sentencepiece >= 0.2.1 reports bytes, 0.2.0 characters); with
    0.2.0 they equal its character offsets, also where the normaliser drops a character (a direction mark)."""
    from stabletune_fairseq.data.qa_encoding import _encode_with_offsets

    words = [w for text in AWKWARD for w in text.split()] + ["العربية\u200e", "\u200eabc", "a\u00adb"]
    ours = _encode_with_offsets(encoder.sp, words)
    for word, pieces in zip(words, ours):
        assert all(0 <= b <= e <= len(word) for _, b, e in pieces)
    try:
        api = [[(p.id, p.begin, p.end) for p in encoder.sp.encode(w, out_type="immutable_proto").pieces] for w in words]
    except ValueError:
        pytest.skip("this sentencepiece reports byte offsets only")
    assert ours == api


def test_translated_copies_one_per_question_and_epoch(toy_qa_xtreme, e5_dir, tmp_path):
    """Translate-train-all stage 2 as the reference: every epoch one copy per English question, one of the
    translations with its id drawn at random (a random translated question when none has its id); the
    windows, so the batches and the schedule, follow the copies drawn."""
    english = json.loads(
        (toy_qa_xtreme / "tydiqa" / "tydiqa-goldp-v1.1-train" / "tydiqa.goldp.en.train.json").read_text(
            encoding="utf-8"
        )
    )
    folder = tmp_path / "translations" / "TyDiQA" / "translate-train"
    folder.mkdir(parents=True)
    paired = json.loads(json.dumps(english))
    paired["data"][0]["paragraphs"] = paired["data"][0]["paragraphs"][:40]  # questions of 40 paragraphs keep their ids
    (folder / "tydiqa.translate.train.en-de.json").write_text(json.dumps(paired, ensure_ascii=False), encoding="utf-8")
    (folder / "tydiqa.translate.train.en-fr.json").write_bytes(  # the toy German questions: ids of no English one
        (
            toy_qa_xtreme / "translations" / "TyDiQA" / "translate-train" / "tydiqa.translate.train.en-de.json"
        ).read_bytes()
    )
    run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            toy_qa_xtreme,
            "tydiqa",
            e5_dir,
            tmp_path / "out",
            f"MAX_LEN={QA_MAX_LEN}",
            f"TRANSLATIONS={tmp_path / 'translations'}",
        ]
    )
    data = tmp_path / "out" / "tydiqa"
    task = XtremeQATask.setup_task(XtremeQAConfig(data=str(data), seed=1, copy_augmentation="translation"))
    dataset = task.load_dataset("train")
    assert isinstance(dataset, QADataset) and not dataset.can_reuse_epoch_itr_across_epochs
    ids = [
        [json.loads(line)["id"] for line in open(data / folder_ / "examples" / f"{name}.jsonl", encoding="utf-8")]
        for folder_, name in (("", "train"), ("translation", "train_de"), ("translation", "train_fr"))
    ]
    english_ids, paired_ids = ids[0], set(ids[1])
    de_part, fr_part = dataset._first_translation_part, dataset._first_translation_part + 1
    rows = len(dataset._fixed)
    fallbacks = []
    for epoch in (1, 2, 3):
        dataset.set_epoch(epoch)
        chosen = dataset.copies_of_epoch
        assert len(chosen) == len(english_ids)  # one copy per English question
        for qid, (part, q) in zip(english_ids, chosen):
            if qid in paired_ids:
                assert part == de_part and ids[1][q] == qid  # its own translation
            else:
                assert part in (de_part, fr_part)
        fallbacks.append([c for qid, c in zip(english_ids, chosen) if qid not in paired_ids])
        copies = dataset.windows[rows:]
        assert sorted({(int(p), int(q)) for p, q in copies[:, :2]}) == sorted(set(chosen))
        expected = sum(
            len(
                plan_windows(
                    int(dataset.parts[p].context.sizes[q]),
                    QA_MAX_LEN - 4 - int(dataset.parts[p].question.sizes[q]),
                    dataset.stride,
                )
            )
            for p, q in chosen
        )
        assert len(dataset) == rows + expected
        item = dataset[rows]
        assert item["teacher"]
    assert fallbacks[0] and fallbacks[0] != fallbacks[1]  # re-drawn every epoch
    # The schedule counts each epoch's own batches (batch 8: ceil(windows / 8) updates per epoch).
    lengths = []
    for epoch in (1, 2, 3):
        dataset.set_epoch(epoch)
        lengths.append(-(-len(dataset) // 8))
    counted = run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.count_updates",
            data,
            "--user-dir",
            "stabletune_fairseq",
            "--task",
            "xtreme_qa",
            "--arch",
            "stabletune_xlmr_e5_small",
            "--copy-augmentation",
            "translation",
            "--batch-size",
            "8",
            "--max-epoch",
            "3",
            "--seed",
            "1",
            "--cpu",
        ]
    ).stdout
    assert f"per_epoch={','.join(map(str, lengths))} " in counted or (
        len(set(lengths)) == 1 and f"per_epoch={lengths[0]} " in counted
    ), counted
    assert f"total={sum(lengths)}" in counted


@pytest.mark.parametrize("answer_boundaries", ["keep", "augment"])
def test_stage2_resegmented_copies_still_cut_out_the_answer(toy_xquad, answer_boundaries):
    """Stage 2's subword-sampled copies re-segment the window's words (with boundaries "augment" the answer's
    first and last words too): each copy's target still cuts out its answer, exactly when the boundary
    words are kept (the reference), and the copies do differ from the stored rows."""
    import unicodedata

    task = make_task(
        toy_xquad, copy_augmentation="subword_sampling", subword_sampling_prob=1.0, answer_boundaries=answer_boundaries
    )
    dataset = task.load_dataset("train").dataset
    assert [p.role for p in dataset.parts] == ["rows", "copies"]
    records = [json.loads(line) for line in open(toy_xquad / "examples" / "train.jsonl", encoding="utf-8")]
    spell = lambda ids: "".join(task.dictionary[i] for i in ids).replace("\u2581", "")  # noqa: E731
    plain = lambda text: "".join(unicodedata.normalize("NFKC", text).split())  # noqa: E731
    row_of = {tuple(w[1:3]): i for i, w in enumerate(dataset.windows) if w[0] == 0}
    answered = changed = wider = 0
    for index in np.flatnonzero(dataset.windows[:, 0] == 1):
        copy, row = dataset[int(index)], dataset[row_of[tuple(dataset.windows[index, 1:3])]]
        assert copy["teacher"] and not row["teacher"]
        (s, e), (row_s, row_e) = copy["target"].tolist(), row["target"].tolist()
        assert (s == 0) == (row_s == 0)  # the same windows hold the answer
        changed += copy["tokens"].tolist() != row["tokens"].tolist()
        if s == 0:
            continue
        q = int(dataset.windows[index, 1])
        answer, target = plain(records[q]["answers"][0]), spell(copy["tokens"][s : e + 1])
        assert spell(row["tokens"][row_s : row_e + 1]) == answer
        if answer_boundaries == "keep":  # the reference: the answer's first and last words as stored
            assert target == answer
        else:  # a re-segmented boundary word: the target widens to that word's new pieces, never narrower
            assert answer in target and target in plain(records[q]["context"])
            wider += target != answer
        answered += 1
    assert answered >= len(records) and changed > len(records) // 2
    print(f"{answered} answered copies, {wider} with a wider target")
