"""Plain text -> blocks of the model's length for masked-LM training (``process.sh <text-folder> mlm``).

Documents (``readers/plain_text.py``: blank-line-separated runs of lines in each ``*.txt`` file) are encoded with
the model's sentencepiece model and cut into blocks of ``max_positions - 2`` consecutive pieces; the task adds
``<s>`` and ``</s>`` around each block, so a block fills the model's positions exactly.

Packing (``PACK=``):
  ``document`` (default): a block never crosses documents. A document's last, shorter part is a block of its own
      when it has at least ``min_tokens`` pieces; a shorter tail is dropped and counted.
  ``stream``: RoBERTa's FULL-SENTENCES: the documents of a split are one stream, each followed by ``</s>`` (the
      extra separator RoBERTa puts between documents), cut into full blocks; only the stream's last part can be
      short (kept or dropped by the same rule).

Held out (``valid``): the documents of ``<text-folder>/valid/*.txt`` when that folder exists, otherwise every
``valid_every``-th document (the 10th, 20th, ... in reading order; 0: none held out). Which rule was used is
stored as ``valid_rule``.

Layout of ``<out>/mlm/``: ``blocks/<split>.{bin,idx}`` (a fairseq ``mmap`` dataset of the blocks' pieces, without
``<s>``/``</s>``), ``dict.txt``, ``sentencepiece.bpe.model``, ``metadata.json`` with, per split: documents,
characters, pieces, blocks (full and short), tails dropped and their pieces, pieces read as ``<unk>``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from ..encoding import PieceEncoder, load_xlmr_dictionary, model_files
from ..errors import InputFormatError
from ..metadata import save_metadata
from ..readers.plain_text import VALID_FOLDER, Document, read_folder
from .atomic_dir import atomic_output_dir
from .token_files import write_token_dataset

logger = logging.getLogger(__name__)

BLOCK_SPECIAL_TOKENS = 2  # <s> block </s>
PACKINGS = ("document", "stream")
DEFAULT_MIN_TOKENS, DEFAULT_VALID_EVERY = 16, 10
ENCODE_BATCH = 1000  # documents per call to sentencepiece: bounded memory on large folders


def split_documents(text_dir: Path, valid_every: int) -> tuple[list[Document], list[Document], str]:
    """(training documents, held-out documents, the rule that chose them)."""
    documents = read_folder(text_dir)
    if (text_dir / VALID_FOLDER).is_dir():
        return documents, read_folder(text_dir / VALID_FOLDER), f"the documents of {VALID_FOLDER}/*.txt"
    if valid_every < 0 or valid_every == 1:
        raise InputFormatError(text_dir, None, f"VALID_EVERY={valid_every}: 0 (nothing held out) or at least 2")
    if valid_every == 0:
        return documents, [], "none held out (VALID_EVERY=0)"
    held = [d for i, d in enumerate(documents) if i % valid_every == valid_every - 1]
    if not held:
        raise InputFormatError(
            text_dir,
            None,
            f"{len(documents)} documents: too few to hold out every "
            f"{valid_every}th for validation (add a {VALID_FOLDER}/ folder, or VALID_EVERY=0)",
        )
    kept = [d for i, d in enumerate(documents) if i % valid_every != valid_every - 1]
    return kept, held, f"every {valid_every}th document in reading order (sorted files, blank-line separated)"


def cut_blocks(sequences: list[np.ndarray], block_pieces: int, min_tokens: int) -> tuple[list[np.ndarray], dict]:
    """Blocks of ``block_pieces`` consecutive pieces of each sequence; a last part of at least ``min_tokens``
    pieces is a short block, a shorter one is dropped. Returns the blocks and their counts."""
    blocks, counts = (
        [],
        {"blocks": 0, "full_blocks": 0, "short_blocks": 0, "tails_dropped": 0, "tail_tokens_dropped": 0},
    )
    for pieces in sequences:
        for start in range(0, len(pieces), block_pieces):
            block = pieces[start : start + block_pieces]
            if len(block) == block_pieces:
                counts["full_blocks"] += 1
            elif len(block) >= min_tokens:
                counts["short_blocks"] += 1
            else:
                counts["tails_dropped"] += 1
                counts["tail_tokens_dropped"] += len(block)
                continue
            blocks.append(block)
    counts["blocks"] = len(blocks)
    return blocks, counts


def encode_documents(
    encoder: PieceEncoder, documents: list[Document], mask_index: int
) -> tuple[list[np.ndarray], dict]:
    """Pieces of every document, and counts. A piece that is the ``<mask>`` symbol (a dictionary whose pieces hold
    it) would break masking: it is read as ``<unk>`` and counted."""
    encoded, counts = [], {"unk_pieces": 0, "mask_pieces_replaced": 0, "empty_documents": 0}
    for start in range(0, len(documents), ENCODE_BATCH):
        for pieces in encoder.encode([d.text for d in documents[start : start + ENCODE_BATCH]]):
            masked = pieces == mask_index
            counts["mask_pieces_replaced"] += int(masked.sum())
            pieces = np.where(masked, encoder.unk, pieces)
            counts["unk_pieces"] += int((pieces == encoder.unk).sum())
            counts["empty_documents"] += len(pieces) == 0
            encoded.append(pieces)
    return encoded, counts


def binarize_split(
    encoder: PieceEncoder,
    documents: list[Document],
    block_pieces: int,
    min_tokens: int,
    packing: str,
    separator: int,
    mask_index: int,
) -> tuple[list[np.ndarray], dict]:
    pieces, counts = encode_documents(encoder, documents, mask_index)
    counts = {
        "documents": len(documents),
        "characters": sum(len(d.text) for d in documents),
        "pieces": int(sum(len(p) for p in pieces)),
        **counts,
    }
    if packing == "stream":  # RoBERTa's FULL-SENTENCES: </s> after every document, one stream
        stream = np.concatenate([np.append(p, separator) for p in pieces]) if pieces else np.zeros(0, np.int64)
        counts["separators"] = len(pieces)
        pieces = [stream]
    blocks, block_counts = cut_blocks(pieces, block_pieces, min_tokens)
    counts.update(block_counts)
    counts["tokens_in_blocks"] = int(sum(len(b) for b in blocks))
    return blocks, counts


def prepare_mlm_task(
    text_dir: str | Path,
    dict_dir: str | Path,
    out_root: str | Path,
    max_positions: int,
    valid_every: int = DEFAULT_VALID_EVERY,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    packing: str = "document",
) -> Path:
    if packing not in PACKINGS:
        raise ValueError(f"PACK={packing}: one of {', '.join(PACKINGS)}")
    block_pieces, text_dir = max_positions - BLOCK_SPECIAL_TOKENS, Path(text_dir)
    if block_pieces < 1 or not 1 <= min_tokens <= block_pieces:
        raise InputFormatError(
            text_dir,
            None,
            f"MAX_LEN={max_positions}, MIN_TOKENS={min_tokens}: a block holds MAX_LEN - 2 "
            "pieces and MIN_TOKENS must be between 1 and that",
        )
    dict_path, sentencepiece_path = model_files(dict_dir)
    dictionary = load_xlmr_dictionary(str(dict_path))
    encoder = PieceEncoder(str(sentencepiece_path), dictionary)
    train, valid, rule = split_documents(text_dir, valid_every)
    splits = {}
    final = Path(out_root) / "mlm"
    with atomic_output_dir(final) as out:
        for name, documents in (("train", train), ("valid", valid)):
            if not documents:
                continue
            blocks, counts = binarize_split(
                encoder, documents, block_pieces, min_tokens, packing, dictionary.eos(), dictionary.index("<mask>")
            )
            if not blocks:
                raise InputFormatError(
                    text_dir,
                    None,
                    f"{name}: no block of at least MIN_TOKENS={min_tokens} pieces in "
                    f"{len(documents)} documents ({counts['pieces']} pieces)",
                )
            write_token_dataset(out / "blocks" / name, blocks, len(dictionary))
            splits[name] = {"source": str(text_dir.resolve()), **counts}
            _log_split(name, counts, max_positions)
        shutil.copy(dict_path, out / "dict.txt")
        shutil.copy(sentencepiece_path, out / "sentencepiece.bpe.model")
        save_metadata(
            out,
            {
                "task": "mlm",
                "kind": "mlm",
                "labels": [],
                "max_positions": max_positions,
                "packing": packing,
                "min_tokens": min_tokens,
                "valid_rule": rule,
                "splits": splits,
            },
        )
    logger.info("held out: %s", rule)
    return final


def _log_split(name: str, c: dict, max_positions: int) -> None:
    logger.info(
        "%s: %d documents, %d characters, %d pieces -> %d blocks of up to %d tokens (%d full, %d short)",
        name,
        c["documents"],
        c["characters"],
        c["pieces"],
        c["blocks"],
        max_positions,
        c["full_blocks"],
        c["short_blocks"],
    )
    if c["tails_dropped"]:
        logger.warning(
            "%s: %d tails shorter than MIN_TOKENS dropped (%d pieces, %.2f%% of the pieces)",
            name,
            c["tails_dropped"],
            c["tail_tokens_dropped"],
            100 * c["tail_tokens_dropped"] / max(1, c["pieces"]),
        )
    for key, what in (
        ("unk_pieces", "pieces read as <unk>"),
        ("empty_documents", "documents that encode to no piece"),
        ("mask_pieces_replaced", "<mask> pieces in the text, read as <unk>"),
    ):
        if c[key]:
            logger.warning("%s: %d %s", name, c[key], what)
