"""``xtreme_sentence``: sentence-pair classification (XNLI, PAWS-X) on a folder written by process.sh.

Splits: ``train``, ``valid_<lang>``/``test_<lang>`` for one language, and ``valid``/``test`` for all
languages at once. Each example carries its language, so one validation pass reports the accuracy of
every language over its whole subset, and their average, which fairseq can then use to select the
best checkpoint (``--best-checkpoint-metric acc_avg``, or ``acc_en`` for English-only selection).

Inputs are assembled as XLM-R expects them: ``<s> a </s> </s> b </s>``.
"""

import logging
import os
from dataclasses import dataclass, field

import numpy as np
from fairseq.data import (
    AppendTokenDataset, ConcatDataset, ConcatSentencesDataset, IdDataset, NumelDataset, NumSamplesDataset, PrependTokenDataset, RawLabelDataset, RightPadDataset, SortDataset,
    data_utils,
)
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from ..data.complete_batches import CompleteBatchesDataset
from ..data.encoding import load_xlmr_dictionary
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

    def load_dataset(self, split: str, combine: bool = False, **kwargs):
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
            with data_utils.numpy_seed(self.cfg.seed):
                dataset = SortDataset(dataset, sort_order=[np.random.permutation(len(dataset))])
        logger.info("loaded %s: %d examples from %s", split, len(dataset), ", ".join(names))
        self.datasets[split] = dataset
        return dataset

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
