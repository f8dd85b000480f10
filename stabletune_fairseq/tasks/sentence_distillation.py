"""``sentence_distillation``: multilingual knowledge distillation of sentence embeddings (Reimers & Gurevych 2020),
on a folder written by ``process.sh <folder> parallel <xlmr-dir> <out>`` (``data/binarize/parallel.py``).

The model is any ``stabletune_xlmr`` encoder with the data's vocabulary (no head: its pooled states are the
embeddings); the loss and the frozen teacher are the criterion's (``criterions/sentence_distillation.py``).
Splits: ``train`` (the pairs and the source-only sentences) and ``valid`` (held-out pairs).

Validation logs the criterion's ``mse_src``/``mse_tgt`` on the held-out pairs and, with ``--eval-sts`` or
``--eval-tatoeba``, the student's STS Spearman (``sts_spearman``, the average over tracks) or Tatoeba accuracy in
both directions (``tatoeba_x_to_en``: MTEB's direction, sources searched among the English; ``tatoeba_en_to_x``:
XTREME's, English searched among the sources; averages over languages), scored by ``stabletune_fairseq.embeddings``
exactly as ``stabletune-embed-eval`` scores them (same prefix, pooling and token limit: the model's positions, not
the training cut), for ``--best-checkpoint-metric``.
"""

import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from fairseq.data import data_utils
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.tasks import register_task
from omegaconf import II, MISSING

from ..data.datasets.parallel_pairs import ParallelPairsDataset
from ..data.encoding import PieceEncoder, load_xlmr_dictionary
from ..data.metadata import load_metadata
from ..models.pooling_head import POOLINGS, add_pooling_head
from ..models.pretrained import maybe_load_pretrained
from .stored_data import StoredDataConfig, StoredDataTask

logger = logging.getLogger(__name__)

KIND = "parallel_sentences"


@dataclass
class SentenceDistillationConfig(StoredDataConfig):
    data: str = field(
        default=MISSING, metadata={"help": "folder written by process.sh <folder> parallel ..., e.g. <out>/parallel"}
    )
    prefix: str = field(
        default="",
        metadata={
            "help": "text put before every sentence, for teacher and student alike (multilingual-e5: 'query: '); it "
            "must "
            "end with a space, so that its pieces are those of encoding prefix + sentence"
        },
    )
    pooling: ChoiceEnum(POOLINGS) = field(
        default="mean",
        metadata={
            "help": "sentence embedding of the last layer's states, teacher and student: mean over the tokens (e5) or "
            "the <s> state"
        },
    )
    max_positions: int = field(
        default=0,
        metadata={
            "help": "tokens per sentence with <s>, prefix and </s>, longer sentences cut and counted (0: the data's, "
            "process.sh MAX_LEN, 128 by default as Reimers & Gurevych)"
        },
    )
    eval_sts: Optional[str] = field(
        default=None,
        metadata={
            "help": "STS folder (stabletune-embed-eval --task sts): logs sts_spearman, the student's average "
            "Spearman x100, "
            "at every validation"
        },
    )
    eval_tatoeba: Optional[str] = field(
        default=None,
        metadata={
            "help": "Tatoeba folder in LASER's layout (stabletune-embed-eval --task tatoeba): logs the student's "
            "average accuracy in both directions at every validation, tatoeba_x_to_en (MTEB's direction) and "
            "tatoeba_en_to_x (XTREME's)"
        },
    )
    eval_batch_size: int = field(default=64, metadata={"help": "sentences per batch of the STS/Tatoeba evaluation"})
    seed: int = II("common.seed")


@register_task("sentence_distillation", dataclass=SentenceDistillationConfig)
class SentenceDistillationTask(StoredDataTask):
    def __init__(self, cfg: SentenceDistillationConfig, dictionary, metadata: dict):
        super().__init__(cfg)
        if cfg.prefix and not cfg.prefix[-1].isspace():
            raise ValueError(
                f"--prefix {cfg.prefix!r} must end with a space (multilingual-e5: 'query: '), or its "
                "last word would be segmented together with the sentence's first"
            )
        self.dictionary, self.metadata = dictionary, metadata
        self.pieces = PieceEncoder(os.path.join(cfg.data, "sentencepiece.bpe.model"), dictionary)
        self.prefix_pieces = self.pieces.encode([cfg.prefix])[0] if cfg.prefix else np.zeros(0, dtype=np.int64)
        self._max_positions = cfg.max_positions or metadata["max_positions"]
        self._evaluations = None  # read with the valid split (not when a checkpoint is only loaded for inference)
        self._evaluate_next = False

    @classmethod
    def setup_task(cls, cfg: SentenceDistillationConfig, **kwargs):
        metadata = load_metadata(cfg.data)
        if metadata.get("kind") != KIND:
            raise ValueError(
                f"{cfg.data} holds a {metadata.get('kind')} task, not parallel sentences "
                "(process.sh <folder> parallel <xlmr-dir> <out>)"
            )
        dictionary = load_xlmr_dictionary(os.path.join(cfg.data, "dict.txt"))
        logger.info(
            "%s: %d training rows (%d pairs), %d validation pairs; prefix %r, %s pooling",
            cfg.data,
            metadata["splits"]["train"]["examples"],
            metadata["splits"]["train"]["pairs"],
            metadata["splits"]["valid"]["pairs"],
            cfg.prefix,
            cfg.pooling,
        )
        return cls(cfg, dictionary, metadata)

    def _read_evaluations(self) -> list:
        """(task, data) of --eval-sts / --eval-tatoeba, read and checked with the valid split, before training."""
        from ..embeddings.evaluation import read_task

        return [
            (task, read_task(task, folder))
            for task, folder in (("sts", self.cfg.eval_sts), ("tatoeba", self.cfg.eval_tatoeba))
            if folder
        ]

    def _stored(self, side: str, split: str):
        dataset = data_utils.load_indexed_dataset(os.path.join(self.cfg.data, side, split), self.dictionary)
        if dataset is None:
            raise FileNotFoundError(f"missing {side}/{split}.bin in {self.cfg.data}")
        return dataset

    def load_dataset(self, split: str, combine: bool = False, **kwargs):
        if split not in self.metadata["splits"]:
            raise FileNotFoundError(f"no split {split!r} in {self.cfg.data} (has {sorted(self.metadata['splits'])})")
        dataset = ParallelPairsDataset(
            self._stored("source", split),
            self._stored("target", split),
            self.prefix_pieces,
            self.dictionary.bos(),
            self.dictionary.eos(),
            self.dictionary.pad(),
            self._max_positions,
            shuffle=split == "train",
            seed=self.cfg.seed,
        )
        logger.info(
            "loaded %s: %d rows, %d of them pairs; sentences cut to %d tokens: %d sources, %d targets",
            split,
            len(dataset),
            dataset.pairs,
            self._max_positions,
            dataset.cut["source"],
            dataset.cut["target"],
        )
        self.datasets[split] = dataset
        if split == "valid" and self._evaluations is None:
            self._evaluations = self._read_evaluations()
        return dataset

    def build_model(self, cfg, from_checkpoint: bool = False):
        model = super().build_model(cfg, from_checkpoint)
        add_pooling_head(model, str(self.cfg.pooling), self.dictionary.pad())
        if not from_checkpoint:
            self.trained_model_cfg = cfg  # the student's shape, for the criterion's projection
            maybe_load_pretrained(model, cfg, self)
        return model

    # --- validation: the held-out pairs (the criterion), then STS / Tatoeba with the student ----------------------
    def begin_valid_epoch(self, epoch, model):
        self._evaluate_next = bool(self._evaluations)

    def valid_step(self, sample, model, criterion):
        out = super().valid_step(sample, model, criterion)
        if self._evaluate_next:  # once per validation, inside fairseq's validation aggregator
            self._evaluate_next = False
            for name, value in self.embedding_scores(model).items():
                metrics.log_scalar(name, value, weight=1, priority=100, round=2)
        return out

    def embedding_scores(self, model) -> dict:
        """``sts_spearman`` / ``tatoeba_x_to_en`` and ``tatoeba_en_to_x`` of ``model``'s encoder (eval mode, no
        gradients) on the --eval-* data. Sentences are cut at the model's positions as ``stabletune-embed-eval`` cuts
        them, not at the training cut (--max-positions), so the numbers are the command's for any length."""
        import torch

        from ..embeddings.encoder import EmbeddingSettings, LoadedEncoder, SentenceEmbedder
        from ..embeddings.evaluation import evaluate

        device = next(model.parameters()).device
        loaded = LoadedEncoder(model.encoder, self.pieces, int(model.max_positions()), "training", self.cfg.data)
        embedder = SentenceEmbedder(
            loaded,
            EmbeddingSettings(None, str(self.cfg.pooling), self.cfg.prefix, self.cfg.eval_batch_size, self.precision),
            device,
        )
        scores = {}
        with torch.no_grad(), tempfile.TemporaryDirectory() as out:  # predictions are not kept
            for task, data in self._evaluations:
                average = evaluate(task, embedder, data, out)["average"]
                if task == "sts":
                    scores["sts_spearman"] = average.get("spearman", float("nan"))
                else:
                    for direction in ("x_to_en", "en_to_x"):
                        scores[f"tatoeba_{direction}"] = average.get(direction, float("nan"))
                    # the former name of x_to_en, still logged: a run started with --best-checkpoint-metric
                    # tatoeba_acc resumes (fairseq stops with a KeyError on a metric no longer logged)
                    scores["tatoeba_acc"] = scores["tatoeba_x_to_en"]
        logger.info("embedding scores of the student: %s", scores)
        return scores

    def max_positions(self):
        return self._max_positions
