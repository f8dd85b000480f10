"""What every XTREME task here shares: the preprocessed folder, its splits, the dictionary, the
augmentation options and the augmenters built from them, and the model's head.

Splits: ``train``, ``valid_<lang>``/``test_<lang>`` for one language, and ``valid``/``test`` for every
language at once (each example carries its language, so one validation pass scores every language
over its whole subset, and their average).

Metrics: every task family computes what a batch adds to its metrics (``metric_counts``, sums the criterion puts
into the batch's logging output) and logs them in fairseq's ``reduce_metrics`` hook, after the criterion's loss terms.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from fairseq.data import ConcatDataset, SortDataset, data_utils
from fairseq.dataclass import ChoiceEnum
from omegaconf import II, MISSING

from ..data.augment.augmenter import KINDS, SAME_TEXT_KINDS, AugmentationSettings, TextAugmenter
from ..data.encoding import PieceEncoder, load_xlmr_dictionary
from ..data.metadata import load_metadata, split_languages
from ..models.pretrained import maybe_load_pretrained
from ..models.stabletune_xlmr import EmbeddingNoise
from .checkpoint_selection import CheckpointSelection
from .stored_data import StoredDataConfig, StoredDataTask

logger = logging.getLogger(__name__)


@dataclass
class XtremeTaskConfig(StoredDataConfig):
    data: str = field(
        default=MISSING, metadata={"help": "task folder written by preprocess/xtreme/process.sh, e.g. <out>/xnli"}
    )
    valid_languages: str = field(
        default="", metadata={"help": "comma-separated dev languages that make up the 'valid' split (default: all)"}
    )
    view_augmentation: ChoiceEnum(KINDS) = field(
        default="none",
        metadata={
            "help": "augmentation of the second view of every training row, for R1 (none: no views; "
            "dropout: the row itself, differing by its own dropout, as R-Drop; noise: the row "
            "with noise on its token embeddings, as R3F)"
        },
    )
    copy_augmentation: ChoiceEnum([k for k in KINDS if k not in SAME_TEXT_KINDS]) = field(
        default="none", metadata={"help": "stage 2: add one augmented copy of every example per epoch (D ∪ D_aug)"}
    )
    subword_sampling_prob: float = field(default=0.5, metadata={"help": "probability that a word is re-segmented"})
    subword_sampling_alpha: float = field(default=0.3, metadata={"help": "sentencepiece sampling smoothing alpha"})
    subword_sampling_nbest: int = field(
        default=-1, metadata={"help": "-1: sample over every segmentation; n > 0: among the n best"}
    )
    code_switch_prob: float = field(default=0.3, metadata={"help": "probability that a word is translated"})
    dict_dir: Optional[str] = field(default=None, metadata={"help": "folder of MUSE dictionaries en-<lang>.txt"})
    dict_langs: str = field(default="", metadata={"help": "comma-separated languages to switch into"})
    noise_std: float = field(
        default=0.0,
        metadata={
            "help": "scale of the noise on the view's token embeddings: the std of normal noise, the half-width of "
            "uniform "
            "noise (R3F's eps); must be > 0 with --view-augmentation noise"
        },
    )
    noise_type: ChoiceEnum(["normal", "uniform"]) = field(
        default="normal", metadata={"help": "normal: N(0, std^2) (xTune); uniform: U(-std, std) (R3F's default)"}
    )
    noise_detached: bool = field(
        default=False,
        metadata={
            "help": "the noised view's embeddings are detached first, so they do not train the embeddings (as R3F)"
        },
    )
    extra_best_metrics: str = field(
        default="",
        metadata={
            "help": "comma-separated validation metrics (e.g. acc_en) whose best checkpoint is also kept, as "
            "checkpoint_best_<metric>.pt (higher is better); saved validations go to valid_history.jsonl"
        },
    )
    seed: int = II("common.seed")


class XtremeTask(StoredDataTask):
    """Base of the XTREME tasks; subclasses set ``kind`` (metadata kind), ``head_name``, ``head_kind`` and
    ``loss_family`` (the criterion's terms: "labels", "regression" or "spans"), and give ``metric_counts``."""

    kind = head_name = head_kind = loss_family = None

    def __init__(self, cfg: XtremeTaskConfig, dictionary, metadata: dict):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.metadata = metadata
        self.labels: list[str] = metadata["labels"]
        self.languages: list[str] = sorted({s["language"] for s in metadata["splits"].values()})
        self._augmenters = {}
        self.selection = CheckpointSelection(cfg.extra_best_metrics)
        if cfg.view_augmentation == "noise" and not cfg.noise_std > 0:
            # With std 0 the view is the row itself, differing only by dropout: that is R-Drop, not noise.
            raise ValueError(
                f"--view-augmentation noise needs a positive --noise-std (got {cfg.noise_std}); with 0 "
                "the view would equal its row and differ only by dropout"
            )

    @classmethod
    def setup_task(cls, cfg: XtremeTaskConfig, **kwargs):
        metadata = load_metadata(cfg.data)
        if metadata.get("kind") != cls.kind:
            raise ValueError(f"{cfg.data} holds a {metadata.get('kind')} task, not {cls.kind}")
        dictionary = load_xlmr_dictionary(os.path.join(cfg.data, "dict.txt"))
        logger.info(
            "%s: %d labels %s, dictionary of %d types",
            metadata["task"],
            len(metadata["labels"]),
            metadata["labels"],
            len(dictionary),
        )
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

    def language_of(self, split_name: str) -> int:
        return self.languages.index(self.metadata["splits"][split_name]["language"])

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
        prob = {"subword_sampling": self.cfg.subword_sampling_prob, "code_switch": self.cfg.code_switch_prob}.get(
            kind, 0.0
        )
        settings = AugmentationSettings(
            kind,
            prob,
            self.cfg.subword_sampling_alpha,
            self.cfg.subword_sampling_nbest,
            self.cfg.dict_dir,
            tuple(filter(None, self.cfg.dict_langs.split(","))),
        )
        encoder = PieceEncoder(os.path.join(self.cfg.data, "sentencepiece.bpe.model"), self.dictionary)
        return TextAugmenter(settings, encoder)

    def _translation_views(self):
        raise ValueError(f"{type(self).__name__} has no translation views")

    def translation_languages(self) -> list[str]:
        """Languages of the stored translate-train data; an error when process.sh was run without it."""
        available = sorted(self.metadata.get("translations") or {})
        if not available:
            raise ValueError(
                f"{self.cfg.data} has no translations: run process.sh with TRANSLATIONS=<xtreme_translations>"
            )
        return available

    @property
    def uses_views(self) -> bool:
        return self.cfg.view_augmentation != "none"

    def _shuffled_by_length(self, dataset, sizes):
        """Examples grouped into batches of similar length (random among equal lengths); fairseq then
        shuffles the order of the batches every epoch."""
        with data_utils.numpy_seed(self.cfg.seed):
            return SortDataset(dataset, sort_order=[np.random.permutation(len(dataset)), sizes])

    @property
    def views_are_rows(self) -> bool:
        """The view has the row's own tokens (noise, dropout): the row's targets are the view's too."""
        return self.cfg.view_augmentation in SAME_TEXT_KINDS

    @property
    def embedding_noise(self):
        """The noise the model adds to the views' embeddings (None unless --view-augmentation noise)."""
        if self.cfg.view_augmentation != "noise":
            return None
        return EmbeddingNoise(self.cfg.noise_std, str(self.cfg.noise_type), self.cfg.noise_detached)

    @property
    def num_outputs(self) -> int:
        """Outputs of the task's head: one per label (a span head: start and end)."""
        return len(self.labels)

    def build_model(self, cfg, from_checkpoint: bool = False):
        if self.cfg.view_augmentation == "dropout" and not (cfg.dropout or cfg.attention_dropout or cfg.head_dropout):
            raise ValueError(
                "--view-augmentation dropout (R-Drop) needs dropout in the model: --dropout, "
                "--attention-dropout and --head-dropout are all 0, so the view would equal its row"
            )
        model = super().build_model(cfg, from_checkpoint)
        model.add_head(self.head_name, self.head_kind, self.num_outputs)
        if not from_checkpoint:
            self.trained_model_cfg = cfg  # the model this run trains (a teacher is built from its checkpoint)
            maybe_load_pretrained(model, cfg, self)
        return model

    def metric_counts(self, row_logits, sample, training: bool) -> dict:
        """What the batch adds to this task's metrics (summed over batches and workers), from the head's outputs of
        its rows (detached); ``reduce_metrics`` logs the metrics from the sums."""
        raise NotImplementedError

    # fairseq calls these after each validation and after each checkpoint it writes.
    def post_validate(self, model, stats, agg):
        self.selection.validated(stats)

    def post_save(self, checkpoint, num_updates):
        self.selection.saved(checkpoint, num_updates)
