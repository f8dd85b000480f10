"""The logits bank: a frozen teacher's outputs for every stored training row, computed once, so distillation
does not run the teacher at every step for them (the Patient KD reference precomputes its teacher's predictions
the same way).

A bank folder holds
  ``bank.json``    what it was made from: the teacher file and its sha256, the task folder's identity (task,
                   labels, vocabulary, data fingerprint), the split, the rows and their outputs, the precision the
                   teacher ran in (``stabletune-teacher-bank --precision``);
  ``logits.npy``   float32, (units, outputs): the units of every row one after the other (a sentence row: one
                   unit; a tagging row: one per word; a QA window: one per position, start and end logits);
  ``offsets.npy``  int64, rows + 1: row ``i``'s units are ``logits[offsets[i]:offsets[i+1]]``;
  ``tokens.npy``   int64, (rows, 2): each row's length and a checksum of its tokens, so a row served from the
                   bank is known to be the row the teacher saw (a bank made for other data is refused).
With ``--states`` (BERT-gang's memory bank, ``build_membank.py``), also
  ``states.npy``   float16, (rows, layers, hidden): the teacher's ``<s>`` state after each of the layers
                   ``bank.json`` lists (``state_layers``, 1-based), unnormalised;
  ``labels.npy``   int64, rows: each row's label (the bank contrast draws its negatives among other labels).
Rows are keyed by example id, the index of the stored row in the training set (``id`` of a batch). Rows drawn
afresh every epoch (augmented copies, translations, text views) are not in the bank: the teacher runs on them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..reliability.checkpoint_safety import WrongCheckpoint

FORMAT = 1


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def token_checksums(tokens: torch.Tensor, pad: int) -> torch.Tensor:
    """Per row of a right-padded batch: (length, checksum of its tokens), int64. The checksum weighs every token
    by its position, so reordered or replaced pieces change it."""
    mask = tokens.ne(pad)
    positions = torch.arange(1, tokens.size(1) + 1, device=tokens.device)
    weighted = (tokens.long() * 1_000_003 + positions * 7919) * positions
    return torch.stack([mask.sum(1), (weighted * mask).sum(1)], dim=1)


class BankWriter:
    """Collects a teacher's per-row outputs by row id, then writes the bank folder."""

    def __init__(self, rows: int, state_shape: tuple[int, int] | None = None):
        self.rows = rows
        self.units: list = [None] * rows
        self.tokens = np.zeros((rows, 2), dtype=np.int64)
        # (layers, hidden) per row: the <s> states, float16 as they are stored
        self.states = None if state_shape is None else np.zeros((rows, *state_shape), dtype=np.float16)
        self.labels = None if state_shape is None else np.full(rows, -1, dtype=np.int64)

    def add(self, row_id: int, units: np.ndarray, checksum: np.ndarray, states=None, label=None) -> None:
        self.units[row_id] = np.asarray(units, dtype=np.float32).reshape(-1, units.shape[-1])
        self.tokens[row_id] = checksum
        if self.states is not None:
            self.states[row_id] = states
            self.labels[row_id] = label

    def write(self, out_dir: str | Path, record: dict) -> Path:
        missing = [i for i, u in enumerate(self.units) if u is None]
        if missing:
            raise RuntimeError(f"teacher bank: {len(missing)} rows were never computed, e.g. {missing[:5]}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        offsets = np.zeros(self.rows + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(u) for u in self.units])
        np.save(out_dir / "logits.npy", np.concatenate(self.units))
        np.save(out_dir / "offsets.npy", offsets)
        np.save(out_dir / "tokens.npy", self.tokens)
        if self.states is not None:
            np.save(out_dir / "states.npy", self.states)
            np.save(out_dir / "labels.npy", self.labels)
        record = {
            "format": FORMAT,
            "rows": self.rows,
            "units": int(offsets[-1]),
            "outputs": int(self.units[0].shape[-1]),
            **record,
        }
        (out_dir / "bank.json").write_text(json.dumps(record, indent=1))
        return out_dir


class TeacherBank:
    """A bank folder, memory-mapped, checked against the run that reads it."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        record_file = self.folder / "bank.json"
        if not record_file.is_file():
            raise WrongCheckpoint(f"teacher bank {self.folder}: no bank.json (write one with stabletune-teacher-bank)")
        self.record = json.loads(record_file.read_text())
        if self.record.get("format") != FORMAT:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: format {self.record.get('format')}, this version reads {FORMAT}"
            )
        self.logits = np.load(self.folder / "logits.npy", mmap_mode="r")
        self.offsets = np.load(self.folder / "offsets.npy")
        self.tokens = np.load(self.folder / "tokens.npy")
        self.rows = int(self.record["rows"])
        if len(self.offsets) != self.rows + 1 or self.logits.shape[0] != self.offsets[-1]:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: logits.npy and offsets.npy do not agree with "
                f"bank.json ({self.rows} rows): the folder is damaged; write it again"
            )
        self.state_layers = list(self.record.get("state_layers", []))
        self.states = self.labels = None
        if self.state_layers:
            self.states = np.load(self.folder / "states.npy", mmap_mode="r")
            self.labels = np.load(self.folder / "labels.npy")
            if self.states.shape[:2] != (self.rows, len(self.state_layers)) or len(self.labels) != self.rows:
                raise WrongCheckpoint(
                    f"teacher bank {self.folder}: states.npy {tuple(self.states.shape)} or labels.npy do not agree "
                    f"with bank.json ({self.rows} rows, layers {self.state_layers}): the folder is damaged; write it "
                    "again"
                )

    def check_states(self, layers: list[int]) -> list[int]:
        """The positions in ``states.npy`` of teacher ``layers`` (1-based); refused when the bank lacks any."""
        if self.states is None:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: holds no <s> states; write it with stabletune-teacher-bank --states"
            )
        missing = [layer for layer in layers if layer not in self.state_layers]
        if missing:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: holds the states of teacher layers {self.state_layers}, not {missing}; "
                "write it with --states --layers including them"
            )
        return [self.state_layers.index(layer) for layer in layers]

    def states_of(self, ids, positions: list[int]) -> torch.Tensor:
        """float32 (len(ids), len(positions), hidden): the stored ``<s>`` states of rows ``ids`` (a numpy array),
        read from the memory map."""
        rows = np.asarray(ids)
        order = np.argsort(rows, kind="stable")  # a memory map reads sorted rows faster
        block = np.empty((len(rows), len(positions), self.states.shape[2]), dtype=np.float32)
        block[order] = self.states[rows[order]][:, positions]
        return torch.from_numpy(block)

    def check_run(self, identity: dict, outputs: int, teacher: str | None) -> None:
        """Refuse a bank made for another task folder, split or head size, or by another teacher than
        ``teacher`` (when the run names one)."""
        made_for = self.record["data_identity"]
        for key in ("task", "labels", "vocabulary", "fingerprint"):
            if made_for.get(key) != identity.get(key):
                raise WrongCheckpoint(
                    f"teacher bank {self.folder}: made for other data than {identity['data']} ({key} differs: the bank "
                    f"was written for {made_for.get('data')}); write a bank for this task folder"
                )
        if self.record["split"] != "train":
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: holds the {self.record['split']} split, training reads train"
            )
        if self.record["outputs"] != outputs:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: {self.record['outputs']} outputs per unit, the task's head has {outputs}"
            )
        if teacher is not None and file_sha256(teacher) != self.record["teacher_sha256"]:
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: written by the teacher {self.record['teacher']}, not by "
                f"{teacher} (their checksums differ); write the bank with this teacher"
            )

    def covers(self, ids: torch.Tensor, copies: torch.Tensor | None) -> torch.Tensor:
        """Boolean per row: the row is a stored training row (not an augmented copy or translation)."""
        covered = ids < self.rows
        return covered if copies is None else covered & ~copies

    def check_rows(self, ids, checksums: torch.Tensor) -> None:
        """Refuse rows whose tokens are not the ones the bank holds for these ids."""
        ids_np = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids)
        stored = self.tokens[ids_np]
        seen = checksums.cpu().numpy()
        wrong = np.flatnonzero((stored != seen).any(1))
        if len(wrong):
            row = int(ids_np[wrong[0]])
            raise WrongCheckpoint(
                f"teacher bank {self.folder}: training row {row} is not the row the bank holds (length "
                f"{seen[wrong[0], 0]} against {stored[wrong[0], 0]}, or other tokens; {len(wrong)} rows of this batch "
                "differ): the bank was made for other data or another preprocessing; write it again"
            )

    def lookup(self, ids: torch.Tensor, checksums: torch.Tensor, like: torch.Tensor, fill: float) -> torch.Tensor:
        """The stored outputs of rows ``ids`` as a tensor shaped like ``like`` (rows x outputs, or rows x units x
        outputs padded with ``fill``), after checking each row's tokens against the bank's."""
        self.check_rows(ids, checksums)
        ids_np = ids.cpu().numpy()
        out = torch.full(like.shape, fill, dtype=torch.float32)
        for i, row in enumerate(ids_np):
            units = torch.from_numpy(np.array(self.logits[self.offsets[row] : self.offsets[row + 1]]))
            if like.dim() == 2:
                out[i] = units[0]
            else:
                out[i, : len(units)] = units[: like.size(1)]
        return out.to(device=like.device, dtype=like.dtype)


def bank_record(teacher: str, identity: dict, split: str, kind: str) -> dict:
    """What bank.json records of its making (the task's kind says what a unit is)."""
    return {
        "teacher": os.path.abspath(teacher),
        "teacher_sha256": file_sha256(teacher),
        "data_identity": identity,
        "split": split,
        "kind": kind,
    }
