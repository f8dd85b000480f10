"""``xtreme_sentence``: sentence-pair classification (XNLI, PAWS-X) on a folder written by process.sh.

Splits: ``train``, ``valid_<lang>``/``test_<lang>`` for one language, and ``valid``/``test`` for all
languages at once. Each example carries its language, so one validation pass reports the accuracy of
every language over its whole subset, and their average, which fairseq can then use to select the
best checkpoint (``--best-checkpoint-metric acc_avg``, or ``acc_en`` for English-only selection).

Inputs are assembled as XLM-R expects them: ``<s> a </s> </s> b </s>``.

Consistency training (xTune): ``--view-augmentation`` gives every training row a second view for R1,
``--copy-augmentation`` adds one augmented copy of every example per epoch (stage 2, D ∪ D_aug). Views
are drawn from the stored words when batches are built (``data/pair_views.py``): nothing about
augmentation is in the preprocessed files.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from fairseq.data import (
    AppendTokenDataset, ConcatDataset, ConcatSentencesDataset, IdDataset, NumelDataset, NumSamplesDataset, PrependTokenDataset, RawLabelDataset, RightPadDataset, SortDataset,
    data_utils,
)
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from ..augment.augmenter import KINDS, AugmentationSettings, TextAugmenter
from ..augment.translation import TranslationViews
from ..data.complete_batches import CompleteBatchesDataset
from ..data.encoding import PieceEncoder, load_xlmr_dictionary
from ..data.pair_views import PairViewsDataset
from ..data.metadata import load_metadata, split_languages
from ..models.pretrained import maybe_load_pretrained

logger = logging.getLogger(__name__)

HEAD = "sentence"


@dataclass
class XtremeSentenceConfig(FairseqDataclass):
    data: str = field(default=MISSING, metadata={"help": "task folder written by preprocess/xtreme/process.sh, e.g. <out>/xnli"})
    valid_languages: str = field(
        default="", metadata={"help": "comma-separated dev languages that make up the 'valid' split (default: all)"}
    )
    view_augmentation: ChoiceEnum(KINDS) = field(
        default="none", metadata={"help": "augmentation of the second view of every training row, for R1 (none: no views)"})
    copy_augmentation: ChoiceEnum([k for k in KINDS if k != "noise"]) = field(
        default="none", metadata={"help": "stage 2: add one augmented copy of every example per epoch (D ∪ D_aug)"})
    subword_sampling_prob: float = field(default=0.5, metadata={"help": "probability that a word is re-segmented"})
    subword_sampling_alpha: float = field(default=0.3, metadata={"help": "sentencepiece sampling smoothing alpha"})
    subword_sampling_nbest: int = field(default=-1, metadata={"help": "-1: sample over every segmentation; n > 0: among the n best"})
    code_switch_prob: float = field(default=0.3, metadata={"help": "probability that a word is translated"})
    dict_dir: Optional[str] = field(default=None, metadata={"help": "folder of MUSE dictionaries en-<lang>.txt"})
    dict_langs: str = field(default="", metadata={"help": "comma-separated languages to switch into"})
    noise_std: float = field(default=0.0, metadata={"help": "std of Gaussian noise on the view's token embeddings"})
    seed: int = II("common.seed")


@register_task("xtreme_sentence", dataclass=XtremeSentenceConfig)
class XtremeSentenceTask(FairseqTask):
    head_name = HEAD

    def __init__(self, cfg: XtremeSentenceConfig, dictionary, metadata: dict):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.metadata = metadata
        self.labels: list[str] = metadata["labels"]
        self.languages: list[str] = sorted({s["language"] for s in metadata["splits"].values()})
        self._augmenters = {}

    @classmethod
    def setup_task(cls, cfg: XtremeSentenceConfig, **kwargs):
        metadata = load_metadata(cfg.data)
        if metadata.get("kind") != "sentence_pair":
            raise ValueError(f"{cfg.data} holds a {metadata.get('kind')} task, not sentence pairs")
        dictionary = load_xlmr_dictionary(os.path.join(cfg.data, "dict.txt"))
        logger.info("%s: %d labels %s, dictionary of %d types", metadata["task"], len(metadata["labels"]),
                    metadata["labels"], len(dictionary))
        return cls(cfg, dictionary, metadata)

    def split_names(self, split: str) -> list[str]:
        """The stored splits behind ``split`` ('valid' and 'test' gather every language)."""
        if split in self.metadata["splits"]:
            return [split]
        if split in ("valid", "test"):
            languages = split_languages(self.metadata, split)
            if split == "valid" and self.cfg.valid_languages:
                wanted = self.cfg.valid_languages.split(",")
                unknown = sorted(set(wanted) - set(languages))
                if unknown:
                    raise ValueError(f"--valid-languages {unknown} have no dev split in {self.cfg.data}")
                languages = wanted
            return [f"{split}_{lang}" for lang in languages]
        raise FileNotFoundError(f"no split {split!r} in {self.cfg.data} (has {sorted(self.metadata['splits'])})")

    def _stored(self, folder: str, names: list[str]):
        parts = []
        for name in names:
            part = data_utils.load_indexed_dataset(os.path.join(self.cfg.data, folder, name), self.dictionary)
            if part is None:
                raise FileNotFoundError(f"missing {folder}/{name}.bin in {self.cfg.data}")
            parts.append(part)
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def augmenter(self, kind: str):
        """The augmenter for ``kind`` (None for 'none'), built once per task."""
        if kind == "none":
            return None
        if kind not in self._augmenters:
            self._augmenters[kind] = self._translation_views() if kind == "translation" else self._text_augmenter(kind)
        return self._augmenters[kind]

    def _text_augmenter(self, kind: str) -> TextAugmenter:
        prob = {"subword_sampling": self.cfg.subword_sampling_prob, "code_switch": self.cfg.code_switch_prob}.get(kind, 0.0)
        settings = AugmentationSettings(kind, prob, self.cfg.subword_sampling_alpha, self.cfg.subword_sampling_nbest,
                                        self.cfg.dict_dir, tuple(filter(None, self.cfg.dict_langs.split(","))))
        encoder = PieceEncoder(os.path.join(self.cfg.data, "sentencepiece.bpe.model"), self.dictionary)
        return TextAugmenter(settings, encoder)

    def _translation_views(self) -> TranslationViews:
        available = sorted(self.metadata.get("translations") or {})
        if not available:
            raise ValueError(f"{self.cfg.data} has no translations: run process.sh with TRANSLATIONS=<xtreme_translations>")
        parts = []
        for lang in available:
            name = f"train_{lang}"
            parts.append((lang, self._stored("translation/input0", [name]), self._stored("translation/input1", [name]),
                          np.load(os.path.join(self.cfg.data, "translation", "source", f"{name}.npy"))))
        views = TranslationViews(parts, self.metadata["splits"]["train"]["examples"])
        logger.info("translation views from %s; %d English rows have no translation (their view is themselves)",
                    ",".join(available), views.without_translation)
        return views

    @property
    def uses_views(self) -> bool:
        return self.cfg.view_augmentation != "none"

    def load_dataset(self, split: str, combine: bool = False, **kwargs):
        if split == "train" and (self.uses_views or self.cfg.copy_augmentation != "none"):
            return self._load_training_views()
        names = self.split_names(split)
        bos, eos = self.dictionary.bos(), self.dictionary.eos()
        first = AppendTokenDataset(PrependTokenDataset(self._stored("input0", names), bos), eos)
        second = AppendTokenDataset(PrependTokenDataset(self._stored("input1", names), eos), eos)
        tokens = ConcatSentencesDataset(first, second)
        labels = np.concatenate([np.load(os.path.join(self.cfg.data, "label", f"{n}.npy")) for n in names])
        languages = np.concatenate([
            np.full(self.metadata["splits"][n]["examples"], self.languages.index(self.metadata["splits"][n]["language"]))
            for n in names
        ])
        if len(labels) != len(tokens):
            raise ValueError(f"{self.cfg.data}: {split} has {len(tokens)} token rows but {len(labels)} labels")
        dataset = CompleteBatchesDataset(
            {
                "id": IdDataset(),
                "net_input": {"src_tokens": RightPadDataset(tokens, pad_idx=self.dictionary.pad()),
                              "src_lengths": NumelDataset(tokens, reduce=False)},
                "target": RawLabelDataset(labels.tolist()),
                "lang": RawLabelDataset(languages.tolist()),
                "nsentences": NumSamplesDataset(),
                "ntokens": NumelDataset(tokens, reduce=True),
            },
            sizes=[tokens.sizes],
        )
        if split == "train":
            dataset = self._shuffled_by_length(dataset, tokens.sizes)
        logger.info("loaded %s: %d examples from %s", split, len(dataset), ", ".join(names))
        self.datasets[split] = dataset
        return dataset

    def _load_training_views(self):
        labels = np.load(os.path.join(self.cfg.data, "label", "train.npy"))
        language = self.languages.index(self.metadata["splits"]["train"]["language"])
        views = PairViewsDataset(
            self._stored("input0", ["train"]), self._stored("input1", ["train"]), labels,
            np.full(len(labels), language), self.dictionary, self.max_positions(), self.cfg.seed,
            view_augmenter=self.augmenter(self.cfg.view_augmentation),
            row_augmenter=self.augmenter(self.cfg.copy_augmentation),
        )
        dataset = self._shuffled_by_length(views, views.sizes)
        logger.info("loaded train: %d rows (views: %s, copies: %s)", len(views), self.cfg.view_augmentation,
                    self.cfg.copy_augmentation)
        self.datasets["train"] = dataset
        return dataset

    def _shuffled_by_length(self, dataset, sizes):
        """Examples grouped into batches of similar length (random among equal lengths); fairseq then
        shuffles the order of the batches every epoch."""
        with data_utils.numpy_seed(self.cfg.seed):
            return SortDataset(dataset, sort_order=[np.random.permutation(len(dataset)), sizes])

    def build_model(self, cfg, from_checkpoint: bool = False):
        model = super().build_model(cfg, from_checkpoint)
        model.add_head(HEAD, "sentence", len(self.labels))
        if not from_checkpoint:
            maybe_load_pretrained(model, cfg)
        return model

    def max_positions(self):
        return self.metadata["max_positions"]

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
