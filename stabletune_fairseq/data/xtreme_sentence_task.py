"""Preprocess an XTREME sentence-pair task (XNLI, PAWS-X) into a fairseq dataset folder.

Layout written to ``<out>/<task>/``::

    dict.txt, sentencepiece.bpe.model     copies of the model's files (the task reads both)
    input0/<split>.{bin,idx}              first text, dictionary ids without <s>/</s>
    input1/<split>.{bin,idx}              second text, likewise
    label/<split>.npy                     label index, -1 for unlabelled test rows
    metadata.json                         labels, and per split: source, language, counts

with splits ``train`` (English), ``valid_<lang>`` and ``test_<lang>``. Pairs longer than
``max_positions`` (with the four special tokens ``<s> a </s></s> b </s>``) are cut longest-first,
and counted per split.
"""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from .atomic_dir import atomic_output_dir
from .binarize import truncate_pair, write_int_array, write_token_dataset
from .encoding import PieceEncoder, load_xlmr_dictionary
from .errors import InputFormatError
from .metadata import save_metadata
from .sentence_pairs import read_sentence_pairs

logger = logging.getLogger(__name__)

LABELS = {
    "xnli": ["contradiction", "entailment", "neutral"],
    "pawsx": ["0", "1"],
}
PAIR_SPECIAL_TOKENS = 4
_FILE = re.compile(r"^(train|dev|test)-([A-Za-z_-]+)\.tsv$")
_SPLIT_PREFIX = {"train": "train", "dev": "valid", "test": "test"}


def find_split_files(folder: Path) -> dict[str, tuple[str, Path]]:
    """``{split name: (language, path)}`` for train-en.tsv, dev-LG.tsv and test-LG.tsv in ``folder``."""
    if not folder.is_dir():
        raise InputFormatError(folder, None, "folder not found")
    found = {}
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if not match:
            continue
        kind, language = match.groups()
        name = "train" if kind == "train" else f"{_SPLIT_PREFIX[kind]}_{language}"
        if kind == "train" and language != "en":
            logger.warning("ignoring %s: training data is English (translations come with translate-train)", path)
            continue
        found[name] = (language, path)
    if "train" not in found:
        raise InputFormatError(folder / "train-en.tsv", None, "file not found (the English training set)")
    if not any(name.startswith("valid_") for name in found):
        raise InputFormatError(folder, None, "no dev-<lang>.tsv file")
    return found


def prepare_sentence_task(task: str, xtreme_dir: str | Path, dict_dir: str | Path, out_root: str | Path,
                          max_positions: int) -> Path:
    labels = LABELS[task]
    dict_dir = Path(dict_dir)
    dictionary = load_xlmr_dictionary(str(dict_dir / "dict.txt"))
    encoder = PieceEncoder(str(dict_dir / "sentencepiece.bpe.model"), dictionary)
    files = find_split_files(Path(xtreme_dir) / task)
    final = Path(out_root) / task
    budget = max_positions - PAIR_SPECIAL_TOKENS
    splits = {}
    with atomic_output_dir(final) as out:
        for name, (language, path) in files.items():
            pairs = read_sentence_pairs(path, labels, labels_required=not name.startswith("test_"))
            text_a, text_b = encoder.encode(pairs.text_a), encoder.encode(pairs.text_b)
            truncated = 0
            for i in range(len(pairs)):
                text_a[i], text_b[i], cut = truncate_pair(text_a[i], text_b[i], budget)
                truncated += cut
            write_token_dataset(out / "input0" / name, text_a, len(dictionary))
            write_token_dataset(out / "input1" / name, text_b, len(dictionary))
            write_int_array(out / "label" / f"{name}.npy", pairs.labels)
            unk = int(sum((t == encoder.unk).sum() for t in text_a + text_b))
            splits[name] = {"language": language, "source": str(path.resolve()), "examples": len(pairs),
                            "labelled": pairs.labelled, "truncated": truncated, "unk_pieces": unk}
            if truncated:
                logger.warning("%s: %d of %d pairs cut to %d tokens", path, truncated, len(pairs), max_positions)
            logger.info("%s -> %s: %d pairs (%s), %d truncated, %d unknown pieces", path, name, len(pairs),
                        "labelled" if pairs.labelled else "no labels", truncated, unk)
        shutil.copy(dict_dir / "dict.txt", out / "dict.txt")
        shutil.copy(dict_dir / "sentencepiece.bpe.model", out / "sentencepiece.bpe.model")
        save_metadata(out, {"task": task, "kind": "sentence_pair", "labels": labels,
                            "max_positions": max_positions, "splits": splits})
    return final
