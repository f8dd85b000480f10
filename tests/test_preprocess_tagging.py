"""process.sh for UD-POS and PAN-X: what is stored, what is counted and reported, what is refused."""

import json
from collections import Counter

import numpy as np
from conftest import (
    SHARED_SAMPLE,
    TAGGING_MAX_LEN,
    dry_run,
    needs_shared,
    read_metadata,
    run,
    write_tagging_translations,
)

from stabletune_fairseq.data.readers.tagged_words import read_tagged_sentences


def stored_words(data_dir, split):
    with open(data_dir / "words" / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_panx_splits_counts_and_words(toy_panx, toy_tagging_xtreme):
    meta = read_metadata(toy_panx)
    assert meta["kind"] == "tagging" and meta["max_positions"] == TAGGING_MAX_LEN
    train = read_tagged_sentences(toy_tagging_xtreme / "panx" / "train-en.tsv", tags_required=True)
    assert meta["labels"] == sorted({t for tags in train.tags for t in tags})
    assert set(meta["splits"]) == {"train", "valid_en", "valid_de", "test_de"}
    dev = read_tagged_sentences(toy_tagging_xtreme / "panx" / "dev-de.tsv", tags_required=True)
    split = meta["splits"]["valid_de"]
    assert (split["examples"], split["words"]) == (len(dev), dev.word_count)
    assert stored_words(toy_panx, "valid_de") == dev.words  # words as read, a tab inside one included
    assert any("Anna\tMaria" in s for s in dev.words)
    assert split["unk_words"] == 1  # the lone zero-width space encodes to no piece
    assert split["long_sentences"] >= 1  # the long sentence will be split into chunks
    tags = np.load(toy_panx / "tags" / "valid_de.npy")
    assert [meta["labels"][t] for t in tags] == [t for s in dev.tags for t in s]
    test = meta["splits"]["test_de"]
    assert not test["labelled"] and (np.load(toy_panx / "tags" / "test_de.npy") == -1).all()


def test_tags_unseen_in_training_are_kept_and_reported(toy_udpos, toy_tagging_xtreme):
    meta = read_metadata(toy_udpos)
    dev = read_tagged_sentences(toy_tagging_xtreme / "udpos" / "dev-de.tsv", tags_required=True)
    expected = Counter(t for s in dev.tags for t in s if t not in meta["labels"])
    assert expected and meta["splits"]["valid_de"]["unseen_tags"] == dict(expected)
    names = meta["labels"] + meta["unseen_labels"]
    stored = [names[t] for t in np.load(toy_udpos / "tags" / "valid_de.npy")]
    assert stored == [t for s in dev.tags for t in s]  # gold tags intact, unseen ones included


def test_a_missing_tag_line_fails_with_file_and_line_and_writes_nothing(toy_tagging_xtreme, e5_dir, tmp_path):
    broken = tmp_path / "xtreme" / "panx"
    broken.mkdir(parents=True)
    for f in (toy_tagging_xtreme / "panx").iterdir():
        broken.joinpath(f.name).write_bytes(f.read_bytes())
    lines = broken.joinpath("dev-de.tsv").read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2].split("\t")[0]
    broken.joinpath("dev-de.tsv").write_text("\n".join(lines), encoding="utf-8")
    result = run(
        ["bash", "preprocess/xtreme/process.sh", tmp_path / "xtreme", "panx", e5_dir, tmp_path / "out"], check=False
    )
    assert result.returncode == 2
    assert f"{broken / 'dev-de.tsv'}:3: missing tag column" in result.stderr
    assert not (tmp_path / "out" / "panx").exists()


def test_tagging_translations_are_paired_with_their_english_sentences(toy_tagging_xtreme, e5_dir, tmp_path):
    english = read_tagged_sentences(toy_tagging_xtreme / "panx" / "train-en.tsv", tags_required=True).words
    de = read_tagged_sentences(toy_tagging_xtreme / "panx" / "dev-de.tsv", tags_required=True).words
    path = write_tagging_translations(
        tmp_path / "translations",
        "panx",
        english[:20],
        de[:20],
        extra_lines=(
            f"{' '.join(english[3])}\tzh\t一 个 句子",  # written without spaces: left out, as the reference does
            f"{' '.join(english[4])}\tja\t文 です",
            "An English sentence nobody wrote .\tde\tEin Satz .",  # not a training sentence: listed, not used
            f"{' '.join(english[5])}\tfr\t{' '.join(de[30])}",
        ),
    )
    run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            toy_tagging_xtreme,
            "panx",
            e5_dir,
            tmp_path / "out",
            f"TRANSLATIONS={tmp_path / 'translations'}",
        ]
    )
    out = tmp_path / "out" / "panx"
    meta = read_metadata(out)
    assert sorted(meta["translations"]) == ["de", "fr"]
    assert meta["translations"]["de"]["examples"] == 20 and meta["translations"]["fr"]["examples"] == 1
    assert meta["translations"]["de"]["words"] == sum(len(s) for s in de[:20])
    assert meta["translation_file"]["dropped_languages"] == {"zh": 1, "ja": 1}
    assert meta["translation_file"]["unmatched"] == 1
    assert (out / "translation" / "unmatched.tsv").read_text().splitlines() == [
        f"{path}:23\tEnglish sentence not found in the training set"
    ]
    # Each translation knows its English sentence; repeated English sentences share the first one's.
    first_of = {}
    canonical = [first_of.setdefault(" ".join(w), i) for i, w in enumerate(english)]
    assert np.load(out / "translation" / "source" / "train_de.npy").tolist() == [canonical[i] for i in range(20)]
    assert np.load(out / "translation" / "source" / "train_fr.npy").tolist() == [canonical[5]]
    assert np.load(out / "translation" / "canonical.npy").tolist() == canonical


def test_tagging_translation_file_errors(toy_tagging_xtreme, e5_dir, tmp_path):
    english = read_tagged_sentences(toy_tagging_xtreme / "panx" / "train-en.tsv", tags_required=True).words
    path = write_tagging_translations(
        tmp_path / "translations", "panx", english[:2], english[2:4], extra_lines=("only two\tcolumns",)
    )
    result = run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            toy_tagging_xtreme,
            "panx",
            e5_dir,
            tmp_path / "out",
            f"TRANSLATIONS={tmp_path / 'translations'}",
        ],
        check=False,
    )
    assert result.returncode != 0 and f"{path}:3: 2 tab-separated columns, expected 3 or 4" in result.stderr
    result = run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            toy_tagging_xtreme,
            "panx",
            e5_dir,
            tmp_path / "out",
            f"TRANSLATIONS={tmp_path / 'nothing'}",
        ],
        check=False,
    )
    assert result.returncode != 0 and "translate_train.panx.txt: translate-train file not found" in result.stderr
    assert not (tmp_path / "out" / "panx").exists()


UPOS = ("ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X").split()


@needs_shared
def test_udpos_sample_with_an_unlabeled_test_file(e5_dir, tmp_path):
    """The shared sample names German's untagged UD test file test-de.unlabeled.tsv."""
    folder = tmp_path / "xtreme" / "udpos"
    folder.mkdir(parents=True)
    for name, keep in (
        ("train-en.tsv", 300),
        ("dev-de.tsv", 100),
        ("test-de.unlabeled.tsv", 100),
        ("test-zh.tsv", 100),
    ):
        sentences = (SHARED_SAMPLE / "udpos" / name).read_text(encoding="utf-8").split("\n\n")[:keep]
        folder.joinpath(name).write_text("\n\n".join(sentences) + "\n\n", encoding="utf-8")
    run(["bash", "preprocess/xtreme/process.sh", tmp_path / "xtreme", "udpos", e5_dir, tmp_path / "out"])
    meta = read_metadata(tmp_path / "out" / "udpos")
    assert meta["max_positions"] == 128
    assert meta["splits"]["test_de"]["labelled"] is False and meta["splits"]["test_zh"]["labelled"] is True
    expected = read_tagged_sentences(folder / "test-de.unlabeled.tsv", tags_required=False)
    assert stored_words(tmp_path / "out" / "udpos", "test_de") == expected.words
    # C, the classes the reference's lambdas are divided by (its KL is averaged over them): the 17 UPOS tags
    assert meta["labels"] == sorted(UPOS)
    args, _ = dry_run("UDPOS", e5_dir, tmp_path / "out" / "udpos", tmp_path / "run", "STAGE=1")
    assert args["--r1-lambda"] == str(5 / 17) and args["--pooling"] == "sum"
    args, _ = dry_run(
        "UDPOS", e5_dir, tmp_path / "out" / "udpos", tmp_path / "run", "STAGE=2", f"TEACHER={e5_dir / 'model.pt'}"
    )
    assert (
        args["--r1-lambda"] == str(5 / 17) and args["--r2-lambda"] == str(0.3 / 17) and "--r2-hard-labels" not in args
    )
