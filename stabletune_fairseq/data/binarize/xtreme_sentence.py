"""Preprocess an XTREME sentence-pair task (XNLI, PAWS-X) into a fairseq dataset folder.

Layout written to ``<out>/<task>/``::

    dict.txt, sentencepiece.bpe.model     copies of the model's files (the task reads both)
    input0/<split>.{bin,idx}              first text, dictionary ids without <s>/</s>
    input1/<split>.{bin,idx}              second text, likewise
    label/<split>.npy                     label index, -1 for unlabelled test rows
    metadata.json                         labels, label aliases, and per split: source, language, counts

with splits ``train`` (English), ``valid_<lang>`` and ``test_<lang>``; with a translations folder also
``translation/{input0,input1}/train_<lang>`` and ``translation/source/train_<lang>.npy`` (the English
training row each translation belongs to, see ``translations.py``). Pairs longer than
``max_positions`` (with the four special tokens ``<s> a </s></s> b </s>``) are cut longest-first,
and counted per split. A label read through one of the task's aliases (``LABEL_ALIASES``: XTREME's XNLI
translate-train files and XNLI-MT say ``contradictory`` for ``contradiction``) is stored as its label and
counted: ``"labels_remapped": {"contradictory->contradiction": N}`` in that split's or translation's
report, present only where N > 0.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..encoding import PieceEncoder, load_xlmr_dictionary
from ..metadata import save_metadata
from ..readers.xtreme_split_files import find_split_files
from ..readers.xtreme_translations import match_translations, translation_files
from ..readers.xtreme_tsv import read_sentence_pairs
from .atomic_dir import atomic_output_dir
from .token_files import PAIR_SPECIAL_TOKENS, truncate_pair, write_int_array, write_token_dataset

logger = logging.getLogger(__name__)

LABELS = {
    "xnli": ["contradiction", "entailment", "neutral"],
    "pawsx": ["0", "1"],
}
# Other spellings of a label, read as that label: {alias: label}. XTREME's XNLI translate-train files
# (and XNLI-MT's training files) write "contradictory"; XTREME's own preprocessing and TensorFlow
# Datasets read it as "contradiction". PAWS-X's 0/1 have none.
LABEL_ALIASES = {
    "xnli": {"contradictory": "contradiction"},
    "pawsx": {},
}


def label_aliases(task: str) -> dict[str, str]:
    return dict(LABEL_ALIASES.get(task, {}))


def remap_report(path, remapped: dict[str, int]) -> dict:
    """The ``labels_remapped`` entry of a split's / translation's report (nothing when no row was remapped)."""
    remapped = {key: count for key, count in remapped.items() if count}
    for key, count in remapped.items():
        alias, label = key.split("->", 1)
        logger.info("%s: %d rows labelled %r read as %r", path, count, alias, label)
    return {"labels_remapped": remapped} if remapped else {}


def encode_pairs(encoder, text_a, text_b, budget):
    """Encoded, truncated pairs and the number of pairs that were cut."""
    first, second = encoder.encode(text_a), encoder.encode(text_b)
    truncated = 0
    for i in range(len(first)):
        first[i], second[i], cut = truncate_pair(first[i], second[i], budget)
        truncated += cut
    return first, second, truncated


def prepare_translations(out: Path, task: str, translations_dir, train, labels, encoder, budget) -> dict:
    """Binarise every translate-train file, paired with the English training rows; return its metadata."""
    report = {}
    for language, path in translation_files(translations_dir, task).items():
        matched = match_translations(
            path, language, train.text_a, train.text_b, train.labels, labels, aliases=label_aliases(task)
        )
        first, second, truncated = encode_pairs(encoder, matched.text_a, matched.text_b, budget)
        name = f"train_{language}"
        write_token_dataset(out / "translation" / "input0" / name, first, len(encoder.dictionary))
        write_token_dataset(out / "translation" / "input1" / name, second, len(encoder.dictionary))
        write_int_array(out / "translation" / "source" / f"{name}.npy", matched.source_rows)
        if matched.unmatched:
            with open(out / "translation" / f"unmatched_{language}.tsv", "w", encoding="utf-8") as f:
                f.writelines(f"{path}:{line}\t{reason}\n" for line, reason in matched.unmatched)
            logger.warning(
                "%s: %d rows not paired with an English training row (see translation/unmatched_%s.tsv), "
                "first at line %d: %s",
                path,
                len(matched.unmatched),
                language,
                *matched.unmatched[0],
            )
        report[language] = {
            "source": str(path.resolve()),
            "pairs": len(matched.source_rows),
            "unmatched": len(matched.unmatched),
            "truncated": truncated,
            **remap_report(path, matched.remapped),
        }
        logger.info(
            "%s -> translation/%s: %d pairs, %d unmatched, %d truncated",
            path,
            name,
            len(matched.source_rows),
            len(matched.unmatched),
            truncated,
        )
    return report


def prepare_sentence_task(
    task: str,
    xtreme_dir: str | Path,
    dict_dir: str | Path,
    out_root: str | Path,
    max_positions: int,
    translations_dir: str | Path | None = None,
) -> Path:
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
            pairs = read_sentence_pairs(
                path, labels, labels_required=not name.startswith("test_"), aliases=label_aliases(task)
            )
            if name == "train":
                train = pairs
            text_a, text_b, truncated = encode_pairs(encoder, pairs.text_a, pairs.text_b, budget)
            write_token_dataset(out / "input0" / name, text_a, len(dictionary))
            write_token_dataset(out / "input1" / name, text_b, len(dictionary))
            write_int_array(out / "label" / f"{name}.npy", pairs.labels)
            unk = int(sum((t == encoder.unk).sum() for t in text_a + text_b))
            splits[name] = {
                "language": language,
                "source": str(path.resolve()),
                "examples": len(pairs),
                "labelled": pairs.labelled,
                "truncated": truncated,
                "unk_pieces": unk,
                **remap_report(path, pairs.remapped),
            }
            if truncated:
                logger.warning("%s: %d of %d pairs cut to %d tokens", path, truncated, len(pairs), max_positions)
            logger.info(
                "%s -> %s: %d pairs (%s), %d truncated, %d unknown pieces",
                path,
                name,
                len(pairs),
                "labelled" if pairs.labelled else "no labels",
                truncated,
                unk,
            )
        translations = {}
        if translations_dir is not None:
            translations = prepare_translations(out, task, translations_dir, train, labels, encoder, budget)
        shutil.copy(dict_dir / "dict.txt", out / "dict.txt")
        shutil.copy(dict_dir / "sentencepiece.bpe.model", out / "sentencepiece.bpe.model")
        save_metadata(
            out,
            {
                "task": task,
                "kind": "sentence_pair",
                "labels": labels,
                "label_aliases": label_aliases(task),
                "max_positions": max_positions,
                "splits": splits,
                "translations": translations,
            },
        )
    return final
