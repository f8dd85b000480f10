"""process.sh for sentence-pair tasks: counts, truncation, recoverable words, atomic output."""

import numpy as np
import pytest
from conftest import SHARED_SAMPLE, needs_shared, read_metadata, run
from fairseq.data import data_utils

from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary


def line_count(path):
    return sum(1 for _ in open(path, encoding="utf-8"))


def test_toy_layout_and_counts(toy_data, toy_xtreme):
    meta = read_metadata(toy_data)
    assert meta["labels"] == ["contradiction", "entailment", "neutral"]
    assert set(meta["splits"]) == {"train"} | {
        f"{s}_{lang}" for s in ("valid", "test") for lang in ("de", "en", "es", "fr", "zh")
    }
    for name, split in meta["splits"].items():
        assert split["examples"] == line_count(split["source"]), name
        labels = np.load(toy_data / "label" / f"{name}.npy")
        assert len(labels) == split["examples"]
        assert (labels >= 0).all() == split["labelled"] == (not name.startswith("test_"))
        assert split["truncated"] == 0 and split["unk_pieces"] == 0


def test_words_are_recoverable(toy_data, toy_xtreme):
    dictionary = load_xlmr_dictionary(str(toy_data / "dict.txt"))
    encoder = PieceEncoder(str(toy_data / "sentencepiece.bpe.model"), dictionary)
    tokens = data_utils.load_indexed_dataset(str(toy_data / "input0" / "valid_fr"), dictionary)
    lines = (toy_xtreme / "xnli" / "dev-fr.tsv").read_text(encoding="utf-8").splitlines()
    assert len(tokens) == len(lines)
    for ids, line in zip(tokens, lines):
        assert encoder.words(ids.tolist()) == line.split("\t")[0].split(" ")


def pair_lengths(data_dir, split, dictionary):
    first = data_utils.load_indexed_dataset(str(data_dir / "input0" / split), dictionary)
    second = data_utils.load_indexed_dataset(str(data_dir / "input1" / split), dictionary)
    return first.sizes + second.sizes + 4  # <s> a </s></s> b </s>


def test_truncation_is_counted(toy_data, toy_xtreme, e5_dir, tmp_path):
    run(["bash", "preprocess/xtreme/process.sh", toy_xtreme, "xnli", e5_dir, tmp_path, "MAX_LEN=16"])
    meta = read_metadata(tmp_path / "xnli")
    dictionary = load_xlmr_dictionary(str(e5_dir / "dict.txt"))
    full = pair_lengths(toy_data, "train", dictionary)
    cut = pair_lengths(tmp_path / "xnli", "train", dictionary)
    assert cut.max() <= 16 and (cut == np.minimum(full, 16)).all()
    assert meta["splits"]["train"]["truncated"] == int((full > 16).sum()) > 0


def test_failed_run_leaves_previous_output_intact(toy_xtreme, e5_dir, tmp_path):
    run(["bash", "preprocess/xtreme/process.sh", toy_xtreme, "xnli", e5_dir, tmp_path])
    before = read_metadata(tmp_path / "xnli")
    broken = tmp_path / "broken" / "xnli"
    broken.mkdir(parents=True)
    for f in (toy_xtreme / "xnli").iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    with open(broken / "dev-de.tsv", "a", encoding="utf-8") as f:
        f.write("Ein Satz.\tNoch einer.\tvielleicht\n")
    result = run(["bash", "preprocess/xtreme/process.sh", broken.parent, "xnli", e5_dir, tmp_path], check=False)
    assert result.returncode != 0
    assert f"{broken / 'dev-de.tsv'}:151: unknown label 'vielleicht'" in result.stderr
    assert read_metadata(tmp_path / "xnli") == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial folder left


@needs_shared
@pytest.mark.parametrize("task", ["xnli", "pawsx"])
def test_shared_sample(task, e5_dir, tmp_path):
    run(["bash", "preprocess/xtreme/process.sh", SHARED_SAMPLE, task, e5_dir, tmp_path])
    meta = read_metadata(tmp_path / task)
    sources = sorted(p.name for p in (SHARED_SAMPLE / task).glob("*.tsv"))
    assert sorted(s["source"].rsplit("/", 1)[1] for s in meta["splits"].values()) == sources
    for name, split in meta["splits"].items():
        assert split["examples"] == line_count(split["source"]), name
    assert not meta["splits"]["test_zh"]["labelled"] and meta["splits"]["valid_zh"]["labelled"]
