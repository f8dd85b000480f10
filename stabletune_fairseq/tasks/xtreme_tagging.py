"""``xtreme_tagging``: word tagging (UD-POS, PAN-X) on a folder written by process.sh.

Labels, losses and metrics are per word: a word is predicted from its first sub-token (``--pooling
first``) or from the sum of its sub-tokens (``--pooling sum``, the reference's choice for UD-POS).
Sentences longer than the model are split into chunks of whole words (``data/datasets/word_chunks.py``);
evaluation merges the chunks back, so every word read gets one prediction.

Validation reports, per language and averaged, seqeval's entity-level F1 (``f1_<lang>``, ``f1_avg``,
how XTREME scores both tasks) from entity counts summed over the whole subset, and word accuracy
(``acc_<lang>``). Consistency (xTune): R1 per word between a row and its word-aligned view (subword
sampling, code-switching or embedding noise); stage 2 adds augmented copies (``subword_sampling``,
``code_switch``) or, with ``translation``, one translation of every English sentence per epoch, drawn at
random (unlabelled: R1/R2 only).
"""

import dataclasses
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task

from ..data.datasets.tagging_views import POOLING, TaggedPart, TaggingDataset, TranslationPool
from ..metrics.entities import entity_counts, log_entity_f1
from ..metrics.per_language import accuracy_counts, log_accuracy
from ..models.heads import HEAD_OF_KIND
from .xtreme_base import XtremeTask, XtremeTaskConfig

logger = logging.getLogger(__name__)


@dataclass
class XtremeTaggingConfig(XtremeTaskConfig):
    pooling: ChoiceEnum(POOLING) = field(
        default="first", metadata={"help": "a word's representation: its first sub-token, or the sum of its sub-tokens"}
    )


@register_task("xtreme_tagging", dataclass=XtremeTaggingConfig)
class XtremeTaggingTask(XtremeTask):
    kind = "tagging"
    head_name, head_kind = HEAD_OF_KIND[kind]
    loss_family = "labels"

    def __init__(self, cfg, dictionary, metadata):
        super().__init__(cfg, dictionary, metadata)
        self.tag_names: list[str] = self.labels + metadata.get("unseen_labels", [])  # gold tags can be unseen ones
        if cfg.view_augmentation == "translation":
            raise ValueError(
                "tagging views must be word-aligned: --view-augmentation translation is not possible "
                "(translations come in as stage-2 copies, --copy-augmentation translation)"
            )

    def _rows(self, name: str) -> TaggedPart:
        tokens, word_pieces = self._stored("tokens", [name]), self._stored("word_pieces", [name])
        tags = np.load(os.path.join(self.cfg.data, "tags", f"{name}.npy"))
        return TaggedPart(tokens, word_pieces, tags, self.language_of(name))

    def _translation_pool(self) -> TranslationPool:
        """Stage 2 of translate-train-all: the translations of every English training sentence."""
        parts, sources = [], []
        for lang in self.translation_languages():
            name = f"train_{lang}"
            tokens, word_pieces = (
                self._stored("translation/tokens", [name]),
                self._stored("translation/word_pieces", [name]),
            )
            untagged = np.full(int(np.sum(word_pieces.sizes)), -1, dtype=np.int64)
            language = self.languages.index(lang) if lang in self.languages else -1  # -1: no dev set to count it in
            parts.append(TaggedPart(tokens, word_pieces, untagged, language, role="translations"))
            sources.append(np.load(os.path.join(self.cfg.data, "translation", "source", f"{name}.npy")))
        canonical = np.load(os.path.join(self.cfg.data, "translation", "canonical.npy"))
        pool = TranslationPool.from_sources(parts, sources, canonical)
        logger.info(
            "translated copies from %s; %d English sentences have no translation (their copy is themselves, "
            "unlabelled)",
            ",".join(self.translation_languages()),
            pool.without_translation,
        )
        return pool

    def load_dataset(self, split: str, combine: bool = False, **kwargs):
        training = split == "train"
        names = self.split_names(split)
        parts = [self._rows(name) for name in names]
        copy_kind = self.cfg.copy_augmentation if training else "none"
        if copy_kind not in ("none", "translation"):
            parts += [dataclasses.replace(part, role="copies") for part in parts]  # the same stored sentences
        dataset = TaggingDataset(
            parts,
            self.dictionary,
            self.max_positions(),
            self.cfg.seed,
            self.cfg.pooling,
            view_augmenter=self.augmenter(self.cfg.view_augmentation) if training else None,
            copy_augmenter=self.augmenter(copy_kind) if copy_kind not in ("none", "translation") else None,
            translations=self._translation_pool() if copy_kind == "translation" else None,
        )
        if dataset.cut_words:
            logger.warning(
                "%s: %d words are longer than %d pieces alone and were cut (predicted from their first piece)",
                split,
                dataset.cut_words,
                self.max_positions(),
            )
        logger.info(
            "loaded %s: %d chunks from %s (views: %s, copies: %s)",
            split,
            len(dataset),
            ", ".join(names),
            self.cfg.view_augmentation if training else "none",
            copy_kind,
        )
        if training:
            dataset = self._shuffled_by_length(dataset, dataset.sizes)
        self.datasets[split] = dataset
        return dataset

    def metric_counts(self, row_logits, sample, training: bool) -> dict:
        """Word accuracy counts per language; in validation, seqeval's entity counts too."""
        words, predictions = sample["word_mask"], row_logits.argmax(-1)
        languages = sample["lang"].unsqueeze(1).expand_as(words)
        counts = accuracy_counts(predictions[words], sample["target"][words], languages[words], self.languages)
        if not training:
            counts.update(self.validation_counts(predictions, sample))
        return counts

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)  # fairseq's batch sizes, the criterion's loss terms
        log_accuracy(logging_outputs)
        log_entity_f1(logging_outputs)

    def validation_counts(self, predictions: torch.Tensor, sample) -> dict:
        """Entity counts per language for seqeval's F1 (validation): predictions batch x words."""
        mask, gold = sample["word_mask"], sample["target"]
        sequences = {}
        for row in range(gold.size(0)):
            n = int(mask[row].sum())
            if gold[row, 0] < 0:
                continue  # unlabelled
            sequences.setdefault(int(sample["lang"][row]), []).append(
                (
                    [self.tag_names[t] for t in gold[row, :n].tolist()],
                    [self.labels[p] for p in predictions[row, :n].tolist()],
                )
            )
        return entity_counts(sequences, self.languages)
