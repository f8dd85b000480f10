"""Preprocess an XTREME tagging task (UD-POS, PAN-X) into a fairseq dataset folder.

Layout written to ``<out>/<task>/``::

    dict.txt, sentencepiece.bpe.model     copies of the model's files
    tokens/<split>.{bin,idx}              a sentence's pieces (dictionary ids, no <s>/</s>)
    word_pieces/<split>.{bin,idx}         the number of pieces of each word of the sentence
    tags/<split>.npy                      one tag index per word, all sentences in a row; -1 without tags
    words/<split>.jsonl                   the words as read (one JSON list per sentence), for predictions
    metadata.json                         labels, and per split: source, language, counts

Every word is encoded on its own, so word boundaries are exact whatever the word holds (spaces, tabs,
characters the normaliser removes). A word that encodes to nothing (e.g. a lone zero-width joiner)
becomes ``<unk>``, as the reference does, and is counted. Tags come from the training file, in sorted
order; a dev/test tag outside that list is kept (so scores stay honest: it can never be predicted),
indexed after the trainable labels (``unseen_labels``), and reported per split. Nothing is cut here:
sentences longer than the model are split into chunks when loaded and merged back for prediction.
Translate-train sentences (the xTune release's ``translate_train.<task>.txt``, ``data/readers/tagging_translations.py``)
are stored per language under ``translation/`` with the English sentence each translates: unlabelled
stage-2 copies (R1/R2 only).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from ..encoding import PieceEncoder, load_xlmr_dictionary
from ..metadata import save_metadata
from ..readers.tagged_words import read_tagged_sentences
from ..readers.tagging_translations import read_tagging_translations, translation_file
from ..readers.xtreme_split_files import find_split_files
from .atomic_dir import atomic_output_dir
from .token_files import write_int_array, write_token_dataset

logger = logging.getLogger(__name__)

UNLABELLED = -1
SPECIAL_TOKENS = 2  # <s> words </s>


def encode_words(encoder: PieceEncoder, sentences: list[list[str]]) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """(pieces of each sentence, piece count of each word of it, number of words encoded as <unk>)."""
    flat = [w for sentence in sentences for w in sentence]
    encoded = encoder.encode(flat)
    unk_words = 0
    for i, ids in enumerate(encoded):
        if len(ids) == 0:
            encoded[i] = np.array([encoder.unk], dtype=np.int64)
            unk_words += 1
    tokens, lengths, start = [], [], 0
    for sentence in sentences:
        words = encoded[start : start + len(sentence)]
        start += len(sentence)
        tokens.append(np.concatenate(words))
        lengths.append(np.array([len(w) for w in words], dtype=np.int64))
    return tokens, lengths, unk_words


def write_sentences(
    out: Path, folder: str, name: str, encoder: PieceEncoder, words: list[list[str]], max_positions: int
) -> dict:
    """Write ``<folder>/tokens``, ``word_pieces`` and ``words`` of one split; return its counts
    (``long_sentences``: how many will be split into chunks of ``max_positions``)."""
    tokens, lengths, unk_words = encode_words(encoder, words)
    vocab = len(encoder.dictionary)
    write_token_dataset(out / folder / "tokens" / name, tokens, vocab)
    write_token_dataset(out / folder / "word_pieces" / name, lengths, vocab)
    (out / folder / "words").mkdir(parents=True, exist_ok=True)
    with open(out / folder / "words" / f"{name}.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(sentence, ensure_ascii=False) + "\n" for sentence in words)
    return {
        "examples": len(words),
        "words": sum(len(s) for s in words),
        "unk_words": unk_words,
        "unk_pieces": int(sum((t == encoder.unk).sum() for t in tokens)),
        "max_pieces": int(max(len(t) for t in tokens)),
        "long_sentences": int(sum(len(t) > max_positions - SPECIAL_TOKENS for t in tokens)),
    }


def tag_indices(sentences_tags, labels: list[str], unseen: list[str]) -> tuple[np.ndarray, Counter]:
    """Flat tag indices; tags outside ``labels`` are appended to ``unseen`` and counted."""
    index = {tag: i for i, tag in enumerate(labels + unseen)}
    outside = Counter()
    flat = []
    for tags in sentences_tags:
        for tag in tags:
            if tag not in index:
                index[tag] = len(labels) + len(unseen)
                unseen.append(tag)
            if index[tag] >= len(labels):
                outside[tag] += 1
            flat.append(index[tag])
    return np.asarray(flat, dtype=np.int64), outside


def prepare_tagging_task(
    task: str,
    xtreme_dir: str | Path,
    dict_dir: str | Path,
    out_root: str | Path,
    max_positions: int,
    translations_dir: str | Path | None = None,
) -> Path:
    dict_dir = Path(dict_dir)
    dictionary = load_xlmr_dictionary(str(dict_dir / "dict.txt"))
    encoder = PieceEncoder(str(dict_dir / "sentencepiece.bpe.model"), dictionary)
    files = find_split_files(Path(xtreme_dir) / task)
    read = {
        name: read_tagged_sentences(path, tags_required=not name.startswith("test_"))
        for name, (_, path) in files.items()
    }
    labels = sorted({tag for tags in read["train"].tags for tag in tags})
    unseen: list[str] = []
    final = Path(out_root) / task
    splits = {}
    with atomic_output_dir(final) as out:
        for name, (language, path) in files.items():
            sentences = read[name]
            counts = write_sentences(out, "", name, encoder, sentences.words, max_positions)
            if sentences.labelled:
                tags, outside = tag_indices(sentences.tags, labels, unseen)
            else:
                tags, outside = np.full(counts["words"], UNLABELLED, dtype=np.int64), Counter()
            write_int_array(out / "tags" / f"{name}.npy", tags)
            splits[name] = {
                "language": language,
                "source": str(path.resolve()),
                "labelled": sentences.labelled,
                **counts,
                "unseen_tags": dict(outside),
            }
            if outside:
                logger.warning(
                    "%s: %d words carry tags not seen in training (never predicted, scored as errors): %s",
                    path,
                    sum(outside.values()),
                    dict(outside),
                )
            if counts["unk_words"]:
                logger.warning("%s: %d words encode to no piece and are read as <unk>", path, counts["unk_words"])
            logger.info(
                "%s -> %s: %d sentences, %d words (%s), %d longer than %d tokens (split into chunks)",
                path,
                name,
                counts["examples"],
                counts["words"],
                "tagged" if sentences.labelled else "no tags",
                counts["long_sentences"],
                max_positions,
            )
        translations, translation_file_report = {}, None
        if translations_dir is not None:
            translations, translation_file_report = prepare_tagging_translations(
                out, task, translations_dir, encoder, max_positions, read["train"].words
            )
        shutil.copy(dict_dir / "dict.txt", out / "dict.txt")
        shutil.copy(dict_dir / "sentencepiece.bpe.model", out / "sentencepiece.bpe.model")
        save_metadata(
            out,
            {
                "task": task,
                "kind": "tagging",
                "labels": labels,
                "unseen_labels": unseen,
                "max_positions": max_positions,
                "splits": splits,
                "translations": translations,
                **({"translation_file": translation_file_report} if translation_file_report else {}),
            },
        )
    return final


def prepare_tagging_translations(
    out: Path, task: str, translations_dir, encoder, max_positions: int, english: list[list[str]]
) -> tuple[dict, dict]:
    """Translated training sentences (unlabelled) and the English sentence each translates (``source``);
    ``translation/canonical.npy`` gives every English sentence the first one with the same words, whose
    translations it shares."""
    path = translation_file(translations_dir, task)
    found = read_tagging_translations(path, english)
    report = {}
    for language in sorted(found.words):
        name = f"train_{language}"
        report[language] = {
            "source": str(path.resolve()),
            **write_sentences(out, "translation", name, encoder, found.words[language], max_positions),
        }
        write_int_array(
            out / "translation" / "source" / f"{name}.npy", np.asarray(found.sources[language], dtype=np.int64)
        )
        logger.info("%s -> translation/%s: %d sentences", path, name, len(found.words[language]))
    write_int_array(out / "translation" / "canonical.npy", np.asarray(found.canonical, dtype=np.int64))
    with open(out / "translation" / "unmatched.tsv", "w", encoding="utf-8") as f:
        f.writelines(f"{path}:{line}\t{reason}\n" for line, reason in found.unmatched)
    if found.unmatched:
        logger.warning(
            "%s: %d translations of sentences that are not in the training set, not used (listed in "
            "translation/unmatched.tsv)",
            path,
            len(found.unmatched),
        )
    if found.dropped:
        logger.warning(
            "%s: translations into languages written without spaces left out, as the reference does: %s",
            path,
            dict(found.dropped),
        )
    return report, {
        "source": str(path.resolve()),
        "unmatched": len(found.unmatched),
        "dropped_languages": dict(found.dropped),
    }
