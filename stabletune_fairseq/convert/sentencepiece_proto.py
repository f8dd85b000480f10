"""Write a sentencepiece unigram model file from a list of pieces and scores.

A sentencepiece ``.model`` file is a serialised ``ModelProto`` protobuf. We only need a handful of its
fields, so we encode them by hand instead of depending on ``protobuf``:
  ModelProto:      1 pieces (repeated), 2 trainer_spec, 3 normalizer_spec
  SentencePiece:   1 piece (string), 2 score (float), 3 type (1 normal, 2 unknown, 3 control)
  TrainerSpec:     3 model_type (1 = unigram), 4 vocab_size
The normaliser spec (with its precompiled character map) is taken from a throw-away model that
sentencepiece itself trains with the requested rule, so the normalisation is sentencepiece's own.
"""

from __future__ import annotations

import io
import struct

import sentencepiece as spm

NORMAL, UNKNOWN, CONTROL = 1, 2, 3
_VARINT, _FIXED32, _BYTES = 0, 5, 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint((number << 3) | wire)
    if wire == _BYTES:
        return key + _varint(len(payload)) + payload
    return key + payload


def _read_fields(buf: bytes):
    """Yield (field number, wire type, raw value) of one protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _BYTES:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == _FIXED32:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def normalizer_spec_for(rule_name: str) -> bytes:
    """The serialised NormalizerSpec sentencepiece builds for ``rule_name`` (e.g. ``nmt_nfkc``)."""
    model = io.BytesIO()
    corpus = ["a b c d e f g h i j k l m n o p q r s t u v w x y z"] * 10
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=30,
        hard_vocab_limit=False,
        normalization_rule_name=rule_name,
        minloglevel=2,
    )
    for number, _, value in _read_fields(model.getvalue()):
        if number == 3:
            return value
    raise RuntimeError("sentencepiece trained a model without a normalizer spec")


def unigram_model_bytes(pieces: list[tuple[str, float, int]], rule_name: str = "nmt_nfkc") -> bytes:
    """Serialise a unigram ModelProto. ``pieces`` are (piece, score, type) in id order."""
    out = bytearray()
    for piece, score, kind in pieces:
        body = _field(1, _BYTES, piece.encode("utf-8")) + _field(2, _FIXED32, struct.pack("<f", score))
        if kind != NORMAL:
            body += _field(3, _VARINT, _varint(kind))
        out += _field(1, _BYTES, body)
    trainer = _field(3, _VARINT, _varint(1)) + _field(4, _VARINT, _varint(len(pieces)))
    out += _field(2, _BYTES, trainer)
    out += _field(3, _BYTES, normalizer_spec_for(rule_name))
    return bytes(out)


def precompiled_charsmap(model_bytes: bytes) -> bytes:
    """The normaliser's precompiled character map (NormalizerSpec field 2) of a serialised ModelProto; empty
    when the model normalises by rule name alone."""
    for number, _, spec in _read_fields(model_bytes):
        if number == 3:
            return next((value for field, _, value in _read_fields(spec) if field == 2), b"")
    return b""
