"""Preprocess a GLUE task (CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI) into a fairseq dataset folder.

Files read from GLUE's task folder (``readers/glue_tsv.py``): ``train.tsv``, ``dev.tsv``, ``test.tsv``; MNLI's
``train.tsv``, ``dev_matched.tsv``, ``dev_mismatched.tsv``, ``test_matched.tsv``, ``test_mismatched.tsv``. Any
of them may be absent; without ``train.tsv`` the task is prepared for evaluation only, with a warning.

Layout written to ``<out>/<TASK>/`` (``TASK`` GLUE's folder name: ``RTE``, ``STS-B``)::

    dict.txt, sentencepiece.bpe.model     copies of the model's files (the sentencepiece model stored under
                                          this name also when the model folder calls it sp.model, as AMOS does)
    input0/<split>.{bin,idx}              first text, dictionary ids without <s>/</s>
    input1/<split>.{bin,idx}              second text (pair tasks only; absent for CoLA and SST-2)
    label/<split>.npy                     int64 label index (-1 unlabelled); STS-B: float32 score (NaN unlabelled)
    index/<split>.npy                     int64 GLUE index/id column of the file (row number from 0 when absent)
    metadata.json                         see below

with splits ``train``, ``valid_en`` and ``test_en`` (language ``en``); MNLI ``valid_m``, ``valid_mm``,
``test_m``, ``test_mm`` (languages ``m`` and ``mm``: matched and mismatched). ``metadata.json`` holds
``task`` (``cola``, ``sst2``, ``mrpc``, ``qqp``, ``stsb``, ``mnli``, ``qnli``, ``rte``, ``wnli``), ``glue_task``
(the folder name), ``kind: "glue"``, ``labels`` (``[]`` for STS-B), ``regression``, ``pair``,
``max_positions`` and ``splits``: per split its ``language``, ``source``, ``examples``, ``labelled``,
``truncated`` and ``unk_pieces``. Pairs longer than ``max_positions`` with their four special tokens
(``<s> a </s></s> b </s>``) are cut longest-first, single sentences to ``max_positions`` - 2
(``<s> a </s>``); the rows cut are counted per split and logged, none is dropped.

``drop_malformed`` (``process.sh DROP_MALFORMED=1``, ``--drop-malformed``): the train and dev files' malformed lines
(QQP's rows split by a line break; see ``readers/glue_tsv.py``) are left out instead of refused; their count is
logged and stored per split as ``malformed_dropped`` (a key present only with this setting, so that the metadata,
and the fingerprint checkpoints record, of a folder prepared without it stay as they were). Test files are
still refused: a submission needs every row.
"""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

import numpy as np

from ..encoding import PieceEncoder, load_xlmr_dictionary, model_files
from ..metadata import save_metadata
from ..readers.glue_tsv import GlueRows, GlueTask, find_glue_files, read_glue_file
from .atomic_dir import atomic_output_dir
from .token_files import PAIR_SPECIAL_TOKENS, SINGLE_SPECIAL_TOKENS, write_int_array, write_token_dataset
from .xtreme_sentence import encode_pairs

logger = logging.getLogger(__name__)


def encode_single(encoder: PieceEncoder, texts: list[str], budget: int) -> tuple[list[np.ndarray], int]:
    """Encoded texts cut to ``budget`` pieces, and the number of texts that were cut."""
    encoded = encoder.encode(texts)
    truncated = sum(len(ids) > budget for ids in encoded)
    return [ids[:budget] for ids in encoded], truncated


def write_split(
    out: Path, name: str, rows: GlueRows, task: GlueTask, encoder: PieceEncoder, max_positions: int
) -> tuple[int, int]:
    """One split's token, label and index files; returns (rows truncated, unknown pieces)."""
    if task.pair:
        encoded = encode_pairs(encoder, *rows.texts, max_positions - PAIR_SPECIAL_TOKENS)
    else:
        encoded = encode_single(encoder, rows.texts[0], max_positions - SINGLE_SPECIAL_TOKENS)
    *texts, truncated = encoded
    for i, tokens in enumerate(texts):
        write_token_dataset(out / f"input{i}" / name, tokens, len(encoder.dictionary))
    if task.regression:
        (out / "label").mkdir(parents=True, exist_ok=True)
        np.save(out / "label" / f"{name}.npy", np.asarray(rows.labels, dtype=np.float32))
    else:
        write_int_array(out / "label" / f"{name}.npy", rows.labels)
    write_int_array(out / "index" / f"{name}.npy", rows.index)
    return truncated, int(sum((t == encoder.unk).sum() for part in texts for t in part))


@functools.lru_cache(maxsize=2)
def _encoder(dict_file: str, sentencepiece_model: str, stamp: tuple) -> PieceEncoder:
    return PieceEncoder(sentencepiece_model, load_xlmr_dictionary(dict_file))


def load_encoder(dict_file: Path, sentencepiece_model: Path) -> PieceEncoder:
    """The model's encoder, built once per process for the same files (unchanged since): ``ALL`` prepares nine
    tasks with it, and building it (a 250k-piece dictionary and lookup table) takes seconds."""
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (dict_file, sentencepiece_model))
    return _encoder(str(dict_file.resolve()), str(sentencepiece_model.resolve()), stamp)


def prepare_glue_task(
    task: GlueTask,
    folder: str | Path,
    dict_dir: str | Path,
    out_root: str | Path,
    max_positions: int,
    drop_malformed: bool = False,
) -> Path:
    """``folder`` (a GLUE task folder, see ``readers.glue_tsv.find_glue_tasks``) -> ``<out_root>/<task.folder>/``.
    Every file is read (and checked) before anything is encoded or written. ``drop_malformed``: see above."""
    dict_file, sentencepiece_model = model_files(dict_dir)
    folder = Path(folder)
    files = find_glue_files(folder, task)
    if "train" not in files:
        logger.warning("%s: no train.tsv in %s: prepared for evaluation only", task.folder, folder)
    read = {
        split: read_glue_file(
            path,
            task,
            labels_required=not split.startswith("test_"),
            drop_malformed=drop_malformed and not split.startswith("test_"),
        )
        for split, (_, path) in files.items()
    }
    encoder = load_encoder(dict_file, sentencepiece_model)
    final = Path(out_root) / task.folder
    splits = {}
    with atomic_output_dir(final) as out:
        for split, (language, path) in files.items():
            rows = read[split]
            truncated, unk = write_split(out, split, rows, task, encoder, max_positions)
            splits[split] = {
                "language": language,
                "source": str(path.resolve()),
                "examples": len(rows),
                "labelled": rows.labelled,
                "truncated": truncated,
                "unk_pieces": unk,
            }
            if drop_malformed and not split.startswith("test_"):
                splits[split]["malformed_dropped"] = len(rows.dropped_lines)
            if rows.dropped_lines:
                shown = ", ".join(map(str, rows.dropped_lines[:10])) + (", ..." if len(rows.dropped_lines) > 10 else "")
                logger.warning(
                    "%s: %d malformed lines dropped (DROP_MALFORMED=1): lines %s", path, len(rows.dropped_lines), shown
                )
            if truncated:
                logger.warning(
                    "%s: %d of %d %s cut to %d tokens",
                    path,
                    truncated,
                    len(rows),
                    "pairs" if task.pair else "sentences",
                    max_positions,
                )
            logger.info(
                "%s -> %s/%s: %d examples (%s), %d truncated, %d unknown pieces",
                path,
                task.folder,
                split,
                len(rows),
                "labelled" if rows.labelled else "no labels",
                truncated,
                unk,
            )
        shutil.copy(dict_file, out / "dict.txt")
        shutil.copy(sentencepiece_model, out / "sentencepiece.bpe.model")
        save_metadata(
            out,
            {
                "task": task.name,
                "glue_task": task.folder,
                "kind": "glue",
                "labels": list(task.labels),
                "regression": task.regression,
                "pair": task.pair,
                "max_positions": max_positions,
                "splits": splits,
            },
        )
    return final
