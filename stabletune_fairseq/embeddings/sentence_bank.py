"""The sentence bank: a teacher's embedding of every stored source sentence of a parallel folder (training and
validation rows), computed once with the teacher's own tokenizer, so that ``sentence_distillation`` can distil a
teacher whose vocabulary is not the student's (Reimers & Gurevych's English teacher; docs/embeddings.md).

A bank folder holds
  ``bank.json``   what it was made from: the teacher (folder, its weights file and their sha256, pooling,
                  normalisation, token limit), the parallel folder's identity (as checkpoints record it), the rows
                  and the width of each split, how many sentences the teacher's tokenizer cut;
  ``<split>.npy`` float32, rows x width: row i is the teacher's embedding of stored source row i (memory-mapped);
  ``<split>.lengths.npy`` int64: the stored pieces of each source row, so a batch row read from the bank is checked
                  against the row the bank was made for.
The source text is re-read from the raw files that the folder's ``metadata.json`` records and checked piece by piece
against the stored rows before anything is written (``data/binarize/parallel.py``, ``stored_source_texts``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from ..data.binarize.parallel import stored_source_texts
from ..data.encoding import PieceEncoder, load_xlmr_dictionary
from ..data.metadata import load_metadata
from ..models.teacher_bank import file_sha256
from ..reliability.checkpoint_safety import WrongCheckpoint
from ..reliability.run_identity import data_identity

logger = logging.getLogger(__name__)

FORMAT = 1
KIND = "sentence_embeddings"
SPLITS = ("train", "valid")
IDENTITY_KEYS = ("task", "kind", "vocabulary", "fingerprint")


def _stored_rows(data: Path, split: str, dictionary):
    from fairseq.data import data_utils

    dataset = data_utils.load_indexed_dataset(str(data / "source" / split), dictionary)
    if dataset is None:
        raise FileNotFoundError(f"missing source/{split}.bin in {data}")
    return dataset


def checked_source_texts(data: Path, metadata: dict, split: str) -> tuple[list[str], np.ndarray]:
    """The texts of the stored source rows of ``split`` and their stored lengths in pieces, after checking that each
    text still encodes to its stored row (else the raw files changed since preprocessing: refused, naming the row)."""
    texts = stored_source_texts(metadata, split)
    dictionary = load_xlmr_dictionary(str(data / "dict.txt"))
    stored = _stored_rows(data, split, dictionary)
    if len(texts) != len(stored):
        raise WrongCheckpoint(
            f"{data}: the raw files recorded in metadata.json give {len(texts)} {split} sentences, the folder "
            f"stores {len(stored)}: they changed since preprocessing; run process.sh again"
        )
    encoded = PieceEncoder(str(data / "sentencepiece.bpe.model"), dictionary).encode(texts)
    lengths = np.zeros(len(texts), dtype=np.int64)
    for row, pieces in enumerate(encoded):
        kept = stored[row].numpy()
        if len(pieces) != len(kept) or not np.array_equal(pieces, kept):
            raise WrongCheckpoint(
                f"{data}: {split} row {row} ({texts[row][:40]!r}) does not encode to the stored row: the raw files "
                "recorded in metadata.json changed since preprocessing; run process.sh again"
            )
        lengths[row] = len(kept)
    return texts, lengths


def parallel_metadata(data: Path) -> dict:
    """The metadata of a parallel-sentences folder (process.sh parallel); any other folder is refused in one line."""
    metadata = load_metadata(str(data))
    if metadata.get("kind") != "parallel_sentences":
        raise WrongCheckpoint(f"{data}: a {metadata.get('kind')} folder, not parallel sentences (process.sh parallel)")
    return metadata


def write_sentence_bank(teacher, data: str | Path, out: str | Path) -> Path:
    """Embed every stored source sentence of ``data`` (both splits) with ``teacher`` (``hf_teacher
    .HFSentenceTeacher``) and write the bank folder ``out``."""
    data, out = Path(data), Path(out)
    metadata = parallel_metadata(data)
    start, splits = time.time(), {}
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        texts, lengths = checked_source_texts(data, metadata, split)
        cut_before = teacher.truncated
        embeddings = teacher.embed(texts)
        np.save(out / f"{split}.npy", embeddings.astype(np.float32))
        np.save(out / f"{split}.lengths.npy", lengths)
        splits[split] = {"rows": len(texts), "cut_by_the_teacher": teacher.truncated - cut_before}
        logger.info(
            "%s: %d sentences embedded (%d cut by the teacher's tokenizer)",
            split,
            len(texts),
            splits[split]["cut_by_the_teacher"],
        )
    record = {
        "format": FORMAT,
        "kind": KIND,
        "width": int(teacher.width),
        "teacher": {
            "folder": str(teacher.folder),
            "weights": teacher.weights.name,
            "sha256": file_sha256(teacher.weights),
            "pooling": teacher.settings.pooling,
            "normalize": teacher.settings.normalize,
            "max_seq_length": teacher.settings.max_seq_length,
        },
        "data_identity": data_identity(str(data), metadata),
        "splits": splits,
        "seconds": round(time.time() - start, 1),
    }
    (out / "bank.json").write_text(json.dumps(record, indent=1), encoding="utf-8")  # last: a bank is complete
    return out


def teacher_weights_sha256(name: str) -> str:
    """The sha256 of a teacher folder's (or installed package's) weights, as a bank records it."""
    from .hf_teacher import resolve_teacher_folder, weights_file

    return file_sha256(weights_file(resolve_teacher_folder(name)))


class SentenceBank:
    """A bank folder, memory-mapped and checked against the run that reads it."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        record_file = self.folder / "bank.json"
        if not record_file.is_file():
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: no bank.json (write one with stabletune-sentence-bank, or it was "
                "interrupted: write it again)"
            )
        self.record = json.loads(record_file.read_text(encoding="utf-8"))
        if self.record.get("format") != FORMAT or self.record.get("kind") != KIND:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: not a sentence bank of format {FORMAT} (kind {self.record.get('kind')}, "
                f"format {self.record.get('format')}); a logits bank of stabletune-teacher-bank is for "
                "stability_distillation"
            )
        self.width = int(self.record["width"])
        self.embeddings, self.lengths = {}, {}
        for split in SPLITS:
            self.embeddings[split] = np.load(self.folder / f"{split}.npy", mmap_mode="r")
            self.lengths[split] = np.load(self.folder / f"{split}.lengths.npy")
            rows = self.record["splits"][split]["rows"]
            if self.embeddings[split].shape != (rows, self.width) or len(self.lengths[split]) != rows:
                raise WrongCheckpoint(
                    f"teacher bank {self.folder}: {split}.npy is {self.embeddings[split].shape}, bank.json says "
                    f"{rows} rows of {self.width}: the folder is damaged; write it again"
                )

    def check_run(self, identity: dict, student_width: int, projection: bool, teacher: str | None) -> None:
        """Refuse a bank made for another parallel folder, by another teacher than ``teacher`` (when the run names
        one), or of another width than the student's when no projection may bridge them."""
        made_for = self.record["data_identity"]
        for key in IDENTITY_KEYS:
            if made_for.get(key) != identity.get(key):
                raise WrongCheckpoint(
                    f"teacher bank {self.folder}: made for other data than {identity['data']} ({key} differs: the "
                    f"bank was written for {made_for.get('data')}); write a bank for this folder"
                )
        if teacher is not None and teacher_weights_sha256(teacher) != self.record["teacher"]["sha256"]:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: written by the teacher {self.record['teacher']['folder']}, not by "
                f"{teacher} (the checksums of their weights differ); write the bank with this teacher"
            )
        if self.width != student_width and not projection:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: embeddings of {self.width} dimensions, the student's are "
                f"{student_width}, and --no-projection forbids the learned projection that would compare them"
            )

    def lookup(
        self, split: str, ids: torch.Tensor, tokens: torch.Tensor, added: int, limit: int, like: torch.Tensor
    ) -> torch.Tensor:
        """The stored embeddings of source rows ``ids`` of ``split`` (on ``like``'s device, float32), after checking
        each batch row's tokens (``tokens``: its non-padding count) against the bank's row: its stored pieces plus
        ``added`` (<s>, the prefix, </s>), cut at ``limit``."""
        ids_np = ids.cpu().numpy()
        if len(ids_np) and ids_np.max() >= len(self.lengths[split]):
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: {split} row {int(ids_np.max())} is not in the bank "
                f"({len(self.lengths[split])} rows): made for other data; write it again"
            )
        expected = np.minimum(self.lengths[split][ids_np] + added, limit)
        wrong = np.flatnonzero(expected != tokens.cpu().numpy())
        if len(wrong):
            row = int(ids_np[wrong[0]])
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: {split} row {row} has {int(tokens[wrong[0]])} tokens in the batch, the "
                f"bank's row {int(expected[wrong[0]])} ({len(wrong)} rows of this batch differ): made for other "
                "data; write it again"
            )
        rows = torch.from_numpy(np.array(self.embeddings[split][ids_np], dtype=np.float32))
        return rows.to(like.device)


def make_sentence_bank(teacher: str, data: str, out: str, batch_size: int = 64, cpu: bool = False) -> Path:
    """``stabletune-sentence-bank``: load the teacher (a sentence-transformers folder or an installed package that
    ships one) and write the bank of ``data`` to ``out``."""
    from .hf_teacher import HFSentenceTeacher

    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: sentences per batch, at least 1")
    parallel_metadata(Path(data))  # a wrong folder is refused before the teacher is loaded
    device = "cuda" if torch.cuda.is_available() and not cpu else "cpu"
    return write_sentence_bank(HFSentenceTeacher(teacher, device, batch_size), data, out)
