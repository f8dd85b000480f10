"""Sentence embeddings of any of our checkpoints: an official-format release (``model.pt`` with ``dict.txt`` and
the sentencepiece model beside it: XLM-R, ``stabletune-convert`` output, a ``shrink`` student) or a checkpoint
fine-tuned by fairseq-train (its encoder; the task heads are not used).

A sentence is tokenised as preprocessing does (``PieceEncoder``: sentencepiece, then the dictionary), fed as
``<s> pieces </s>`` (cut to the model's positions; cut sentences are counted), and pooled from one layer: the mean of
its states over every non-padding token, ``<s>`` and ``</s>`` included (as multilingual-e5 pools), or the ``<s>``
state. Batches hold sentences of similar length (sorted), which is what makes CPU runs affordable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..models.pooling_head import POOLINGS, pool_states
from ..models.precision import autocast, check_precision

logger = logging.getLogger(__name__)

FINE_TUNING_TASKS = (
    "xtreme_sentence",
    "xtreme_tagging",
    "xtreme_qa",
    "glue",
    "sentence_distillation",
)  # our registered fairseq tasks
SPECIAL_TOKENS = 2  # <s> and </s>
PROGRESS_BATCHES = 50  # a progress line every this many batches (BUCC embeds ~10k sentences a side)


@dataclass
class EmbeddingSettings:
    """``layer``: 0 is the embedding layer's output, 1..N the transformer layers, None the last; ``prefix``: text put
    before every sentence before tokenising (multilingual-e5 expects "query: " or "passage: "); ``precision``: fp32, or
    bf16 (the encoder under CPU autocast, the pooling in float32: ``models/precision.py``)."""

    layer: int | None = None
    pooling: str = "mean"
    prefix: str = ""
    batch_size: int = 64
    precision: str = "fp32"


@dataclass
class LoadedEncoder:
    """The encoder of a checkpoint (``XLMREncoder``, eval mode), the piece encoder of its vocabulary, how many
    tokens it reads, and what the checkpoint was (``kind``: "release" or "fine-tuned")."""

    encoder: torch.nn.Module
    pieces: object
    max_positions: int
    kind: str
    vocabulary: Path


def is_fine_tuned(state: dict) -> bool:
    """A checkpoint fairseq-train wrote for one of our tasks (a run record, task heads, or one of our task names in
    its settings), as opposed to a release whose vocabulary files lie beside it."""
    from ..reliability.run_identity import recorded_identity

    if recorded_identity(state) is not None or any(key.startswith("heads.") for key in state.get("model", {})):
        return True
    settings = state.get("cfg") or {}
    task = (settings.get("task") or {}) if isinstance(settings, dict) else {}
    name = task.get("_name") if isinstance(task, dict) else None
    return (name or getattr(state.get("args"), "task", None)) in FINE_TUNING_TASKS


def _load_release(path: Path, device: torch.device) -> LoadedEncoder:
    from ..data.encoding import PieceEncoder, load_xlmr_dictionary, model_files
    from ..models.pretrained import load_pretrained_encoder
    from ..models.stabletune_xlmr import StabletuneXLMRConfig, StabletuneXLMRModel
    from ..release import architecture_of, encoder_shape, layer_repeat_of, read_release, stored_settings
    from ..reliability.checkpoint_safety import open_checkpoint

    dictionary_file, sentencepiece_file = model_files(path.parent)
    architecture_of(str(path), str(dictionary_file))  # a clear error for a vocabulary or shape that does not fit
    shape = encoder_shape(read_release(str(path)))
    repeat = layer_repeat_of(stored_settings(open_checkpoint(str(path), "model")))  # no weight tells it
    dictionary = load_xlmr_dictionary(str(dictionary_file))
    cfg = StabletuneXLMRConfig(
        encoder_layers=shape.layers,
        encoder_embed_dim=shape.hidden,
        encoder_ffn_embed_dim=shape.ffn,
        encoder_attention_heads=shape.heads,
        max_positions=shape.positions,
        embedding_bottleneck=shape.bottleneck,
        layer_repeat=repeat,
        save_dir="",
    )
    model = StabletuneXLMRModel.build_model(cfg, SimpleNamespace(source_dictionary=dictionary))
    load_pretrained_encoder(model, str(path))
    pieces = PieceEncoder(str(sentencepiece_file), dictionary)
    return LoadedEncoder(model.encoder.to(device).eval(), pieces, cfg.max_positions, "release", path.parent)


def _load_fine_tuned(path: Path, state: dict, device: torch.device) -> LoadedEncoder:
    from ..data.encoding import PieceEncoder, model_files
    from ..models.checkpoint_loading import load_for_inference, recorded_task_folder

    folder = Path(recorded_task_folder(str(path), state))
    model, task, _ = load_for_inference(str(path), str(folder), device)
    pieces = PieceEncoder(str(model_files(folder)[1]), task.dictionary)
    return LoadedEncoder(model.encoder.eval(), pieces, int(model.max_positions()), "fine-tuned", folder)


def load_encoder(checkpoint: str | Path, device: torch.device) -> LoadedEncoder:
    """The encoder of ``checkpoint``, whichever of our kinds it is; anything else is a one-line ``BadInput``."""
    from ..reliability.checkpoint_safety import open_checkpoint

    path = Path(checkpoint)
    state = open_checkpoint(str(path), "model")
    loaded = _load_fine_tuned(path, state, device) if is_fine_tuned(state) else _load_release(path, device)
    logger.info(
        "%s: %s encoder, %d layers, vocabulary from %s, up to %d tokens a sentence",
        path,
        loaded.kind,
        len(loaded.encoder.sentence_encoder.layers),
        loaded.vocabulary,
        loaded.max_positions,
    )
    return loaded


class SentenceEmbedder:
    """``embed(sentences)`` -> float32 array, one row a sentence. Counts what it embedded and cut
    (``embedded``, ``truncated``) across calls, for the results."""

    def __init__(self, loaded: LoadedEncoder, settings: EmbeddingSettings, device: torch.device):
        if settings.pooling not in POOLINGS:
            raise ValueError(f"--pooling {settings.pooling!r}: one of {', '.join(POOLINGS)}")
        check_precision(settings.precision, "--precision", device)
        self.loaded, self.settings, self.device = loaded, settings, device
        self.layers = len(loaded.encoder.sentence_encoder.layers)
        self.layer = self.layers if settings.layer is None else settings.layer
        if getattr(loaded.encoder, "layer_repeat", 1) > 1 and 0 < self.layer < self.layers:
            raise ValueError(
                f"--layer {settings.layer}: the model runs its {self.layers} layers "
                f"{loaded.encoder.layer_repeat} times (--layer-repeat); only 0 or the last can be pooled"
            )
        if not 0 <= self.layer <= self.layers:
            raise ValueError(
                f"--layer {settings.layer}: the model has layers 0 (the embedding layer's output) to {self.layers}"
            )
        dictionary = loaded.pieces.dictionary
        self.bos, self.eos, self.pad = dictionary.bos(), dictionary.eos(), dictionary.pad()
        self.hidden = loaded.encoder.sentence_encoder.embed_tokens.embedding_dim
        self.embedded = self.truncated = 0

    @classmethod
    def load(cls, checkpoint: str | Path, settings: EmbeddingSettings, device: torch.device) -> "SentenceEmbedder":
        check_precision(settings.precision, "--precision", device)  # before the model is read
        return cls(load_encoder(checkpoint, device), settings, device)

    def tokens(self, sentences: list[str]) -> list[np.ndarray]:
        """``<s> pieces </s>`` of each sentence (prefix first), cut to the model's positions."""
        limit = self.loaded.max_positions - SPECIAL_TOKENS
        pieces = self.loaded.pieces.encode([self.settings.prefix + s for s in sentences])
        cut = sum(len(p) > limit for p in pieces)
        if cut:
            logger.warning(
                "%d of %d sentences are longer than %d tokens and were cut",
                cut,
                len(sentences),
                self.loaded.max_positions,
            )
        self.truncated += cut
        self.embedded += len(sentences)
        return [np.concatenate([[self.bos], p[:limit], [self.eos]]).astype(np.int64) for p in pieces]

    def _layer_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """Batch x time x hidden states of the chosen layer."""
        if self.layer == self.layers:
            return self.loaded.encoder(tokens)
        if self.layer == 0:  # the embedding layer's output (the teacher of the framework's stage 2 pools it too)
            return self.loaded.encoder(tokens, num_layers=0)
        out = self.loaded.encoder.sentence_encoder(tokens, return_all_hiddens=True)
        return out["encoder_states"][self.layer].transpose(
            0, 1
        )  # [embedding output, layer 1, ..., layer N], time first

    def _pool(self, states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return pool_states(states, tokens, self.pad, self.settings.pooling)

    @torch.no_grad()
    def embed(self, sentences: list[str]) -> np.ndarray:
        tokens = self.tokens(list(sentences))
        out = np.zeros((len(tokens), self.hidden), dtype=np.float32)
        order = np.argsort([len(t) for t in tokens], kind="stable")
        size = max(1, self.settings.batch_size)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = torch.full((len(rows), max(len(tokens[r]) for r in rows)), self.pad, dtype=torch.long)
            for i, row in enumerate(rows):
                batch[i, : len(tokens[row])] = torch.from_numpy(tokens[row])
            batch = batch.to(self.device)
            with autocast(self.settings.precision):
                states = self._layer_states(batch)
            out[rows] = self._pool(states.float(), batch).cpu().numpy()
            if (start // size + 1) % PROGRESS_BATCHES == 0:
                logger.info("embedded %d of %d sentences", start + len(rows), len(order))
        return out

    def describe(self) -> dict:
        """What the results record about the model and the settings."""
        return {
            "model": {
                "kind": self.loaded.kind,
                "layers": self.layers,
                "hidden": self.hidden,
                "max_tokens": self.loaded.max_positions,
                "vocabulary": str(self.loaded.vocabulary),
            },
            "settings": {
                "layer": self.layer,
                "pooling": self.settings.pooling,
                "prefix": self.settings.prefix,
                "batch_size": self.settings.batch_size,
                "device": str(self.device),
                "precision": self.settings.precision,
            },
            "truncated": {"sentences": self.truncated, "of": self.embedded, "max_tokens": self.loaded.max_positions},
        }
