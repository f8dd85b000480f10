"""XNLI's ``contradictory`` (XTREME's translate-train files, XNLI-MT) is read as ``contradiction`` in every XNLI
file, and the rows read that way are counted per split and per translation; other unknown labels still fail
with file and line. Real text: rows of the shared XTREME sample; the translate-train files pair the English
dev set with its German / Chinese translation, line by line."""

import shutil

import numpy as np
import pytest
from conftest import SHARED_SAMPLE, needs_shared, read_metadata, run

from stabletune_fairseq.data.binarize.xtreme_sentence import LABEL_ALIASES, LABELS, label_aliases
from stabletune_fairseq.data.errors import InputFormatError
from stabletune_fairseq.data.readers.xtreme_tsv import read_sentence_pairs

pytestmark = needs_shared

XNLI = SHARED_SAMPLE / "xnli"
N_TRAIN, N_TRANSLATED, N_DEV, N_TEST = 30, 45, 30, 10  # sample training rows, dev-en rows added to training, ...
KEY = "contradictory->contradiction"
CONTRADICTION = LABELS["xnli"].index("contradiction")


def rows(name):
    return [line.split("\t") for line in (XNLI / name).read_text(encoding="utf-8").splitlines()]


def relabel(table, column, count, skip=0):
    """Relabel ``count`` ``contradiction`` rows of ``table`` (after the first ``skip``) as ``contradictory``, in
    place; their indices."""
    chosen = [i for i, r in enumerate(table) if r[column] == "contradiction"][skip : skip + count]
    assert len(chosen) == count
    for i in chosen:
        table[i][column] = "contradictory"
    return chosen


def write(path, table):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(r) + "\n" for r in table), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    """An XTREME-layout folder: xnli/{train-en,dev-de,test-de}.tsv and XNLI translate-train files (de, zh), with
    some contradictions relabelled ``contradictory``; returns (folder, what was relabelled)."""
    root = tmp_path_factory.mktemp("xnli-alias")
    en, de, zh = rows("dev-en.tsv"), rows("dev-de.tsv"), rows("dev-zh.tsv")
    assert [r[2] for r in en] == [r[2] for r in de] == [r[2] for r in zh]  # translations, line by line
    train = rows("train-en.tsv")[:N_TRAIN] + [list(r) for r in en[:N_TRANSLATED]]
    relabelled_train = relabel(train[:N_TRAIN], 2, 2) + [N_TRAIN + i for i in relabel(train[N_TRAIN:], 2, 3)]
    dev = [list(r) for r in de[N_TRANSLATED : N_TRANSLATED + N_DEV]]
    relabelled_dev = relabel(dev, 2, 2)
    write(root / "xnli" / "train-en.tsv", train)
    write(root / "xnli" / "dev-de.tsv", dev)
    write(root / "xnli" / "test-de.tsv", rows("test-de.tsv")[:N_TEST])
    folder = root / "xtreme_translations" / "XNLI" / "translate-train"
    # src_a, src_b, tgt_a, tgt_b, label: the English row (label as XTREME's files write it) and its translation
    translated_de = [e[:2] + t[:2] + [e[2]] for e, t in zip(en[:N_TRANSLATED], de)]
    relabelled_de = relabel(translated_de, 4, 6, skip=1)
    english_relabelled = {i - N_TRAIN for i in relabelled_train if i >= N_TRAIN}
    # either side may say "contradictory" while the other says "contradiction", or both
    assert set(relabelled_de) - english_relabelled and english_relabelled - set(relabelled_de)
    assert set(relabelled_de) & english_relabelled
    write(folder / "en-de-translated.tsv", translated_de)
    write(folder / "en-zh-translated.tsv", [e[:2] + t[:2] + [e[2]] for e, t in zip(en[:N_TRANSLATED], zh)])
    return root, {"train": relabelled_train, "valid_de": relabelled_dev, "de": relabelled_de}


@pytest.fixture(scope="module")
def processed(download, e5_dir, tmp_path_factory):
    root, relabelled = download
    out = tmp_path_factory.mktemp("xnli-alias-out")
    result = run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            root,
            "xnli",
            e5_dir,
            out,
            f"TRANSLATIONS={root / 'xtreme_translations'}",
        ]
    )
    return out / "xnli", relabelled, result.stderr


def test_contradictory_is_stored_as_contradiction(processed):
    data, relabelled, _ = processed
    for split in ("train", "valid_de"):
        labels = np.load(data / "label" / f"{split}.npy")
        assert (labels[relabelled[split]] == CONTRADICTION).all()
        assert (labels >= 0).all()
    expected_dev = [LABELS["xnli"].index(r[2]) for r in rows("dev-de.tsv")[N_TRANSLATED : N_TRANSLATED + N_DEV]]
    assert np.load(data / "label" / "valid_de.npy").tolist() == expected_dev
    train = rows("train-en.tsv")[:N_TRAIN] + rows("dev-en.tsv")[:N_TRANSLATED]
    assert np.load(data / "label" / "train.npy").tolist() == [LABELS["xnli"].index(r[2]) for r in train]


def test_remapped_rows_are_counted_in_the_metadata_and_logged(processed):
    data, relabelled, log = processed
    meta = read_metadata(data)
    assert meta["label_aliases"] == {"contradictory": "contradiction"}
    splits = meta["splits"]
    assert splits["train"]["labels_remapped"] == {KEY: len(relabelled["train"])} == {KEY: 5}
    assert splits["valid_de"]["labels_remapped"] == {KEY: len(relabelled["valid_de"])} == {KEY: 2}
    assert "labels_remapped" not in splits["test_de"]  # present only where rows were remapped
    assert meta["translations"]["de"]["labels_remapped"] == {KEY: len(relabelled["de"])} == {KEY: 6}
    assert "labels_remapped" not in meta["translations"]["zh"]
    assert "train-en.tsv: 5 rows labelled 'contradictory' read as 'contradiction'" in log
    assert "dev-de.tsv: 2 rows labelled 'contradictory' read as 'contradiction'" in log
    assert "en-de-translated.tsv: 6 rows labelled 'contradictory' read as 'contradiction'" in log


def test_translations_with_the_alias_still_match_their_english_rows(processed):
    data, _, _ = processed
    meta = read_metadata(data)
    for lang in ("de", "zh"):
        info = meta["translations"][lang]
        assert info["pairs"] == N_TRANSLATED and info["unmatched"] == 0, lang
        sources = np.load(data / "translation" / "source" / f"train_{lang}.npy")
        assert sources.tolist() == list(range(N_TRAIN, N_TRAIN + N_TRANSLATED))
    assert not (data / "translation" / "unmatched_de.tsv").exists()


@pytest.mark.parametrize(
    "where", ["xnli/train-en.tsv", "xnli/dev-de.tsv", "xtreme_translations/XNLI/translate-train/en-de-translated.tsv"]
)
def test_a_truly_unknown_label_still_fails_with_file_and_line(where, download, e5_dir, tmp_path):
    root = tmp_path / "xtreme"
    shutil.copytree(download[0], root)
    path = root / where
    table = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    line = 7
    table[line - 1][-1] = "contradictoryy"
    write(path, table)
    result = run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            root,
            "xnli",
            e5_dir,
            tmp_path / "out",
            f"TRANSLATIONS={root / 'xtreme_translations'}",
        ],
        check=False,
    )
    assert result.returncode == 2
    assert f"{path}:{line}: unknown label 'contradictoryy'" in result.stderr
    assert not (tmp_path / "out" / "xnli").exists()


def test_aliases_are_per_task(tmp_path):
    assert LABEL_ALIASES.keys() == LABELS.keys() and label_aliases("pawsx") == {}
    path = tmp_path / "dev-de.tsv"
    path.write_text("".join("\t".join(r) + "\n" for r in rows("dev-de.tsv")[:3]), encoding="utf-8")
    pairs = read_sentence_pairs(path, LABELS["xnli"], labels_required=True, aliases=label_aliases("xnli"))
    assert pairs.remapped == {}  # a file without the alias: nothing remapped
    path.write_text("Ein Satz.\tNoch einer.\t1\nEin Satz.\tNoch einer.\tcontradictory\n", encoding="utf-8")
    with pytest.raises(InputFormatError) as err:  # PAWS-X labels 0/1 have no alias
        read_sentence_pairs(path, LABELS["pawsx"], labels_required=True, aliases=label_aliases("pawsx"))
    assert str(err.value).startswith(f"{path}:2: unknown label 'contradictory'")
