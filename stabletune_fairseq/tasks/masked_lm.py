"""``stabletune_mlm``: continued masked-LM training of the encoder on blocks written by
``process.sh <text-folder> mlm`` (docs/long-context.md).

fairseq's own ``masked_lm`` task and criterion expect a ``RobertaModel`` (its forward returns ``(logits, extra)`` and
takes ``masked_tokens``) and a token stream it cuts into blocks itself; our model takes ``head=`` and the blocks are
stored ready. So this task composes the same fairseq datasets (``data/datasets/masked_blocks.py``) over the stored
blocks, and the model gets an ``lm`` head tied to its token embeddings (``models/lm_head.py``): loaded from the
pretrained checkpoint when it has one (official XLM-R: ``encoder.lm_head.*``), otherwise initialised.

Validation masks are fixed (``--valid-mask-seed``, epoch-independent), so the validation loss of every checkpoint,
and ``stabletune-mlm-eval``'s number, are over the same masked tokens.
"""

import logging
import os
from dataclasses import dataclass, field

from fairseq.data import data_utils
from fairseq.tasks import register_task
from omegaconf import II, MISSING

from ..data.datasets.masked_blocks import masked_block_dataset
from ..data.encoding import load_xlmr_dictionary
from ..data.metadata import load_metadata
from ..models.lm_head import add_lm_head, load_lm_head
from ..models.pretrained import maybe_load_pretrained
from ..reliability.checkpoint_safety import open_checkpoint
from .stored_data import StoredDataConfig, StoredDataTask

logger = logging.getLogger(__name__)


@dataclass
class StabletuneMLMConfig(StoredDataConfig):
    data: str = field(
        default=MISSING, metadata={"help": "folder written by process.sh <text-folder> mlm, e.g. <out>/mlm"}
    )
    mask_prob: float = field(default=0.15, metadata={"help": "share of a block's pieces chosen for prediction"})
    leave_unmasked_prob: float = field(default=0.1, metadata={"help": "share of the chosen pieces left as they are"})
    random_token_prob: float = field(
        default=0.1, metadata={"help": "share of the chosen pieces replaced by a random token"}
    )
    valid_mask_seed: int = field(
        default=1,
        metadata={
            "help": "seed of the validation masks, which never change: every checkpoint is measured on the same tokens"
        },
    )
    seed: int = II("common.seed")


@register_task("stabletune_mlm", dataclass=StabletuneMLMConfig)
class StabletuneMLMTask(StoredDataTask):
    kind = "mlm"

    def __init__(self, cfg: StabletuneMLMConfig, dictionary, metadata: dict):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.metadata = metadata

    @classmethod
    def setup_task(cls, cfg: StabletuneMLMConfig, **kwargs):
        metadata = load_metadata(cfg.data)
        if metadata.get("kind") != cls.kind:
            raise ValueError(
                f"{cfg.data} holds a {metadata.get('kind')} task, not plain text for masked-LM training "
                "(process.sh <text-folder> mlm ...)"
            )
        dictionary = load_xlmr_dictionary(os.path.join(cfg.data, "dict.txt"))
        logger.info(
            "masked LM on %s: blocks of up to %d tokens, dictionary of %d types; held out: %s",
            cfg.data,
            metadata["max_positions"],
            len(dictionary),
            metadata["valid_rule"],
        )
        return cls(cfg, dictionary, metadata)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        if split not in self.metadata["splits"]:
            raise FileNotFoundError(f"no split {split!r} in {self.cfg.data} (has {sorted(self.metadata['splits'])})")
        blocks = data_utils.load_indexed_dataset(os.path.join(self.cfg.data, "blocks", split), self.dictionary)
        if blocks is None:
            raise FileNotFoundError(f"missing blocks/{split}.bin in {self.cfg.data}")
        training = split == "train"
        self.datasets[split] = masked_block_dataset(
            blocks,
            self.dictionary,
            self.cfg.seed if training else self.cfg.valid_mask_seed,
            self.cfg.mask_prob,
            self.cfg.leave_unmasked_prob,
            self.cfg.random_token_prob,
            fixed=not training,
            shuffle=training,
        )
        logger.info("loaded %s: %d blocks, %d tokens", split, len(blocks), int(blocks.sizes.sum()) + 2 * len(blocks))
        return self.datasets[split]

    def build_model(self, cfg, from_checkpoint: bool = False):
        if not from_checkpoint and getattr(cfg, "init_checkpoint", None):  # its LM head comes from the release
            raise ValueError("--init-checkpoint is for fine-tuning tasks; masked-LM training starts from a release")
        model = super().build_model(cfg, from_checkpoint)
        add_lm_head(model)
        if not from_checkpoint and maybe_load_pretrained(model, cfg, self):
            load_lm_head(
                model, open_checkpoint(cfg.pretrained_encoder, "pretrained model")["model"], cfg.pretrained_encoder
            )
        return model
