"""Encode QA contexts and questions word by word, keeping every piece's characters in the original text.

A context is split into words at whitespace (as SQuAD's reference preprocessing does) and every word is
encoded on its own, so views can re-segment or replace a word without touching the others. Each piece
gets the ``[begin, end)`` characters of the original context it covers (sentencepiece reports them
through its normaliser: a ligature, a full-width letter or a combining sequence maps back to exactly the
characters it came from), so a predicted span is cut out of the original text, never re-assembled from
pieces. A word without a piece (a lone zero-width space) becomes ``<unk>`` covering the word. Offsets come from
the pieces' surfaces (see ``_encode_with_offsets``), the same with every sentencepiece version.
Text without spaces (Chinese, Japanese) is one long word whose pieces still carry their own characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EncodedText:
    pieces: np.ndarray  # dictionary ids
    word_pieces: np.ndarray  # piece count of every word
    char_spans: np.ndarray  # (pieces, 2): [begin, end) in the original text


def split_words(text: str) -> list[tuple[int, int]]:
    """``[begin, end)`` of every maximal run of non-whitespace characters."""
    words, begin = [], None
    for i, char in enumerate(text):
        if char.isspace():
            if begin is not None:
                words.append((begin, i))
                begin = None
        elif begin is None:
            begin = i
    if begin is not None:
        words.append((begin, len(text)))
    return words


def encode_texts(encoder, texts: list[str]) -> tuple[list[EncodedText], int]:
    """Encode every text word by word; returns the encodings and the number of words read as ``<unk>``."""
    spans = [split_words(t) for t in texts]
    flat = [t[b:e] for t, words in zip(texts, spans) for b, e in words]
    protos = _encode_with_offsets(encoder.sp, flat) if flat else []
    out, unk_words, k = [], 0, 0
    for words in spans:
        ids, counts, char_spans = [], [], []
        for begin, end in words:
            pieces = protos[k]
            k += 1
            if len(pieces) == 0:
                unk_words += 1
                ids.append(encoder.unk)
                char_spans.append((begin, end))
                counts.append(1)
                continue
            for piece_id, piece_begin, piece_end in pieces:
                ids.append(int(encoder.id_table[piece_id]))
                char_spans.append((begin + piece_begin, begin + piece_end))
            counts.append(len(pieces))
        out.append(
            EncodedText(
                np.asarray(ids, dtype=np.int64),
                np.asarray(counts, dtype=np.int64),
                np.asarray(char_spans, dtype=np.int64).reshape(-1, 2),
            )
        )
    return out, unk_words


def _encode_with_offsets(sp, texts: list[str]) -> list[list[tuple[int, int, int]]]:
    """``(sentencepiece id, begin, end)`` of every piece of every text, in characters of the text.

    Each piece's surface (the original characters it came from) is found in the text after the previous
    one, so the offsets are characters whatever the sentencepiece version: 0.2.0's immutable proto reports
    offsets in characters, the proto of later versions in UTF-8 bytes (an H100 image with 0.2.2 cut Chinese
    answers out of nowhere when they were read as characters). Characters the normaliser drops (e.g. a
    left-to-right mark) belong to no piece."""
    try:
        encoded = sp.encode(texts, out_type="immutable_proto")
    except ValueError:  # sentencepiece >= 0.2.1
        encoded = sp.encode(texts, return_type="proto")
    out = []
    for text, proto in zip(texts, encoded):
        pieces, at = [], 0
        for piece in proto.pieces:
            begin = text.find(piece.surface, at)
            if begin < 0:
                raise ValueError(f"sentencepiece's piece {piece.surface!r} is not in {text!r} after character {at}")
            at = begin + len(piece.surface)
            pieces.append((piece.id, begin, at))
        out.append(pieces)
    return out


def truncate_words(text: EncodedText, budget: int) -> tuple[EncodedText, bool]:
    """The first ``budget`` pieces; a word cut in two keeps its first pieces."""
    if len(text.pieces) <= budget:
        return text, False
    counts, kept = [], 0
    for count in text.word_pieces:
        if kept == budget:
            break
        counts.append(min(int(count), budget - kept))
        kept += counts[-1]
    return EncodedText(text.pieces[:budget], np.asarray(counts, dtype=np.int64), text.char_spans[:budget]), True


def answer_pieces(char_spans: np.ndarray, begin: int, end: int) -> tuple[int, int, bool]:
    """First and last piece covering characters ``[begin, end)`` of the text, and whether the pieces
    start and end exactly there (False: the answer begins or ends inside a piece)."""
    nonempty = char_spans[:, 1] > char_spans[:, 0]
    first = np.flatnonzero(nonempty & (char_spans[:, 1] > begin))
    last = np.flatnonzero(nonempty & (char_spans[:, 0] < end))
    if len(first) == 0 or len(last) == 0 or last[-1] < first[0]:
        raise ValueError(f"characters [{begin}, {end}) are covered by no piece")
    s, e = int(first[0]), int(last[-1])
    return s, e, bool(char_spans[s, 0] == begin and char_spans[e, 1] == end)
