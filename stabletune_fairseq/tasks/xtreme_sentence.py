"""``xtreme_sentence``: sentence-pair classification (XNLI, PAWS-X) on a folder written by process.sh.

Splits as in ``xtreme_base.py``. Validation reports the accuracy of every language over its whole
subset and their average, which fairseq uses to select the best checkpoint
(``--best-checkpoint-metric acc_avg``, or ``acc_en`` for English-only selection).

Inputs are assembled as XLM-R expects them: ``<s> a </s> </s> b </s>``.

Consistency training (xTune): ``--view-augmentation`` gives every training row a second view for R1,
``--copy-augmentation`` adds one augmented copy of every example per epoch (stage 2, D ∪ D_aug). Views
are drawn from the stored words when batches are built (``data/datasets/pair_views.py``): nothing about
augmentation is in the preprocessed files.
"""

import logging
import os
from dataclasses import dataclass

import numpy as np
from fairseq.data import (
    AppendTokenDataset,
    ConcatSentencesDataset,
    IdDataset,
    NumelDataset,
    NumSamplesDataset,
    PrependTokenDataset,
    RawLabelDataset,
    RightPadDataset,
)
from fairseq.tasks import register_task

from ..data.augment.translation import TranslationViews
from ..data.datasets.complete_batches import CompleteBatchesDataset
from ..data.datasets.pair_views import PairViewsDataset
from ..metrics.per_language import accuracy_counts, log_accuracy
from ..models.heads import HEAD_OF_KIND
from .xtreme_base import XtremeTask, XtremeTaskConfig

logger = logging.getLogger(__name__)


@dataclass
class XtremeSentenceConfig(XtremeTaskConfig):
    pass


@register_task("xtreme_sentence", dataclass=XtremeSentenceConfig)
class XtremeSentenceTask(XtremeTask):
    kind = "sentence_pair"
    head_name, head_kind = HEAD_OF_KIND[kind]
    loss_family = "labels"

    def _translation_views(self) -> TranslationViews:
        available = self.translation_languages()
        parts = []
        for lang in available:
            name = f"train_{lang}"
            parts.append(
                (
                    lang,
                    self._stored("translation/input0", [name]),
                    self._stored("translation/input1", [name]),
                    np.load(os.path.join(self.cfg.data, "translation", "source", f"{name}.npy")),
                )
            )
        views = TranslationViews(parts, self.metadata["splits"]["train"]["examples"])
        logger.info(
            "translation views from %s; %d English rows have no translation (their view is themselves)",
            ",".join(available),
            views.without_translation,
        )
        return views

    def _labels(self, names: list[str]) -> np.ndarray:
        """The stored labels of the splits ``names``, in order."""
        return np.concatenate([np.load(os.path.join(self.cfg.data, "label", f"{n}.npy")) for n in names])

    def _second_texts(self, names: list[str]):
        """The second texts of the splits ``names`` (None for a task of single sentences)."""
        return self._stored("input1", names)

    def load_dataset(self, split: str, combine: bool = False, **kwargs):
        if split == "train" and (self.uses_views or self.cfg.copy_augmentation != "none"):
            return self._load_training_views()
        names = self.split_names(split)
        labels = self._labels(names)
        languages = np.concatenate(
            [np.full(self.metadata["splits"][n]["examples"], self.language_of(n)) for n in names]
        )
        dataset = self.pair_dataset(
            self._stored("input0", names), self._second_texts(names), labels, languages, f"{self.cfg.data}: {split}"
        )
        if split == "train":
            dataset = self._shuffled_by_length(dataset, dataset.sizes[0])
        logger.info("loaded %s: %d examples from %s", split, len(dataset), ", ".join(names))
        self.datasets[split] = dataset
        return dataset

    def pair_dataset(self, first, second, labels, languages, where: str) -> CompleteBatchesDataset:
        """Examples ``<s> a </s> </s> b </s>`` from the pieces of the first and second texts (stored datasets,
        or raw text encoded as preprocessing encodes it, see ``inference/raw_datasets.py``); ``<s> a </s>`` when
        there is no second text (GLUE's single-sentence tasks)."""
        bos, eos = self.dictionary.bos(), self.dictionary.eos()
        tokens = AppendTokenDataset(PrependTokenDataset(first, bos), eos)
        if second is not None:
            tokens = ConcatSentencesDataset(tokens, AppendTokenDataset(PrependTokenDataset(second, eos), eos))
        if len(labels) != len(tokens):
            raise ValueError(f"{where} has {len(tokens)} token rows but {len(labels)} labels")
        return CompleteBatchesDataset(
            {
                "id": IdDataset(),
                "net_input": {
                    "src_tokens": RightPadDataset(tokens, pad_idx=self.dictionary.pad()),
                    "src_lengths": NumelDataset(tokens, reduce=False),
                },
                "target": RawLabelDataset(labels.tolist()),
                "lang": RawLabelDataset(languages.tolist()),
                "nsentences": NumSamplesDataset(),
                "ntokens": NumelDataset(tokens, reduce=True),
            },
            sizes=[tokens.sizes],
        )

    def _load_training_views(self):
        labels = self._labels(["train"])
        language = self.language_of("train")
        views = PairViewsDataset(
            self._stored("input0", ["train"]),
            self._second_texts(["train"]),
            labels,
            np.full(len(labels), language),
            self.dictionary,
            self.max_positions(),
            self.cfg.seed,
            view_augmenter=self.augmenter(self.cfg.view_augmentation),
            row_augmenter=self.augmenter(self.cfg.copy_augmentation),
        )
        dataset = self._shuffled_by_length(views, views.sizes)
        logger.info(
            "loaded train: %d rows (views: %s, copies: %s)",
            len(views),
            self.cfg.view_augmentation,
            self.cfg.copy_augmentation,
        )
        self.datasets["train"] = dataset
        return dataset

    def metric_counts(self, row_logits, sample, training: bool) -> dict:
        """Accuracy counts per language, in training too."""
        return accuracy_counts(row_logits.argmax(-1), sample["target"], sample["lang"], self.languages)

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)  # fairseq's batch sizes, the criterion's loss terms
        log_accuracy(logging_outputs)
