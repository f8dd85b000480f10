"""Our side of the benchmark: the ``stabletune_xlmr`` sentence model, its task, criterion and fairseq
optimizer, built the way ``fairseq-train`` builds them, and one training or evaluation step of each kind.

A step is what fairseq's trainer does per update, minus logging and distributed reduction:
``task.train_step`` (criterion forward, ``optimizer.backward``), gradients divided by the sample size,
clipped to norm 1.0, ``optimizer.step()``. The optimizer is the one run_xtreme.sh asks for (our
``fused_adamw``, betas 0.9/0.999, eps 1e-8; ``STABLETUNE_BENCH_OPTIMIZER=adam`` measures fairseq's ``adam``); with
``fp16`` the model is halved and wrapped in fairseq's
``FP16Optimizer``, as ``fairseq-train --fp16`` does. A step in bf16 is the task's step with ``--cpu-precision bf16``
(forward and losses under CPU autocast, as ``fairseq-train`` runs it): one task per precision, all on the same
float32 model and optimizer, so that the precisions can be timed side by side.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from fairseq import optim
from fairseq.data import Dictionary
from fairseq.dataclass.configs import FairseqConfig
from fairseq.optim.adam import FairseqAdamConfig
from omegaconf import OmegaConf

import stabletune_fairseq  # noqa: F401  (registers the task, model and criterion)
from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion
from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig
from stabletune_fairseq.models.teacher import freeze_teacher
from stabletune_fairseq.optim.fused_adam import FusedAdamWConfig
from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask

XLMR_VOCAB = 250_002  # dict.txt (4 specials + 249,997 pieces) + <mask>
N_CLASSES = 3  # XNLI
LR = 1e-5


@dataclass(frozen=True)
class Shape:
    name: str
    layers: int
    hidden: int
    ffn: int
    heads: int

    def layer_matmul_params(self) -> int:
        """Parameters of one encoder layer's matrix products, used once per token (embeddings are lookups)."""
        return 4 * self.hidden * self.hidden + 2 * self.hidden * self.ffn

    def forward_flops(self, length: int) -> float:
        """One row's forward FLOPs as computed (2 per multiply-add): the projections, the attention scores and
        their use (QK^T, AV), and the classification head. The head reads the first token only, so the last
        layer computes keys and values at every position and the rest at the first one alone."""
        per_layer = self.layer_matmul_params()
        key_value = 2 * self.hidden * self.hidden
        full_layers = (self.layers - 1) * length * (2 * per_layer + 4 * length * self.hidden)
        last_layer = length * 2 * key_value + 2 * (per_layer - key_value) + 4 * length * self.hidden
        return full_layers + last_layer + 2 * (self.hidden * self.hidden + self.hidden * N_CLASSES)


SHAPES = {
    "e5-small": Shape("e5-small", 12, 384, 1536, 12),
    "base": Shape("base", 12, 768, 3072, 12),
    "tiny": Shape("tiny", 2, 64, 256, 4),  # the harness's own tests
}


def xlmr_sized_dictionary() -> Dictionary:
    """A dictionary with XLM-R's number of types (random weights need no real pieces)."""
    dictionary = Dictionary()
    for i in range(XLMR_VOCAB - len(dictionary) - 1):
        dictionary.add_symbol(f"piece{i}")
    dictionary.add_symbol("<mask>")
    return dictionary


def build_task(dictionary: Dictionary, views: bool, precision: str = "fp32") -> XtremeSentenceTask:
    """The XNLI task as process.sh's metadata describes it; no data folder is read."""
    cfg = XtremeSentenceConfig(
        data="(benchmark)", seed=1, view_augmentation="code_switch" if views else "none", cpu_precision=precision
    )
    metadata = {
        "task": "xnli",
        "kind": "sentence_pair",
        "labels": ["contradiction", "entailment", "neutral"],
        "max_positions": 512,
        "splits": {"valid_en": {"language": "en"}},
    }
    return XtremeSentenceTask(cfg, dictionary, metadata)


def build_model(task: XtremeSentenceTask, shape: Shape, seed: int = 0):
    torch.manual_seed(seed)
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        save_dir="",
        encoder_layers=shape.layers,
        encoder_embed_dim=shape.hidden,
        encoder_ffn_embed_dim=shape.ffn,
        encoder_attention_heads=shape.heads,
    )
    return task.build_model(OmegaConf.structured(cfg))


def build_optimizer(model, fp16: bool, optimizer: str = "fused_adamw"):
    """run_xtreme.sh's optimizer (``optimizer="adam"``: fairseq's own, for comparison; same options)."""
    cfg = OmegaConf.structured(FairseqConfig())
    cfg.optimization.lr = [LR]
    cfg.optimization.clip_norm = 1.0
    cfg.common.fp16 = fp16
    config = FusedAdamWConfig if optimizer == "fused_adamw" else FairseqAdamConfig
    cfg.optimizer = OmegaConf.structured(
        config(_name=optimizer, adam_betas="(0.9,0.999)", adam_eps=1e-8, weight_decay=0.0)
    )
    cfg.optimizer.lr = [LR]
    params = [p for p in model.parameters() if p.requires_grad]
    if fp16:
        return optim.FP16Optimizer.build_optimizer(cfg, params)
    return optim.build_optimizer(cfg.optimizer, params)


def sentence_batch(tokens: torch.Tensor, labels: torch.Tensor, n_views: int = 0, teacher_rows=None) -> dict:
    """A collated batch as ``xtreme_sentence`` builds it: rows first, then (for R1) one view per row."""
    n_rows = labels.size(0)
    sample = {
        "id": torch.arange(n_rows),
        "nsentences": n_rows,
        "ntokens": int(tokens[:n_rows].numel()),
        "net_input": {"src_tokens": tokens, "src_lengths": torch.full((tokens.size(0),), tokens.size(1))},
        "target": labels,
        "lang": torch.zeros(n_rows, dtype=torch.long),
    }
    if n_views:
        sample["has_views"] = True
    if teacher_rows is not None:
        sample["teacher_rows"] = teacher_rows
    return sample


class OurSteps:
    """Plain, stage-1 (R1 on views, one pass) and stage-2 (R1 + R2 from a frozen teacher) training steps,
    and the evaluation step, on one model and one optimizer."""

    def __init__(
        self,
        shape: Shape,
        dictionary: Dictionary,
        device: torch.device,
        fp16: bool,
        with_teacher: bool = True,
        precisions: tuple = ("fp32",),
    ):
        self.tasks = {p: build_task(dictionary, views=True, precision=p) for p in precisions}
        self.task = self.tasks[precisions[0]]  # builds the model and the criteria, which do not depend on precision
        self.model = build_model(self.task, shape).to(device)
        if fp16:
            self.model.half()
        self.optimizer = build_optimizer(self.model, fp16, os.environ.get("STABLETUNE_BENCH_OPTIMIZER", "fused_adamw"))
        self.plain = StabilityConsistencyCriterion(self.task)
        self.stage1 = StabilityConsistencyCriterion(self.task, r1_lambda=5.0 / N_CLASSES)
        self.stage2 = None
        if with_teacher:  # the stage-1 model, frozen as load_teacher freezes a checkpoint
            self.stage2 = StabilityConsistencyCriterion(self.task, r1_lambda=5.0 / N_CLASSES)
            self.stage2.r2_lambda = 5.0 / N_CLASSES
            object.__setattr__(self.stage2, "teacher", freeze_teacher(copy.deepcopy(self.model)))

    def train_step(self, criterion, sample, precision: str = "fp32") -> None:
        task = self.tasks[precision]
        _, sample_size, _ = task.train_step(sample, self.model, criterion, self.optimizer, update_num=0)
        self.optimizer.multiply_grads(1.0 / max(sample_size, 1))
        try:
            self.optimizer.clip_grad_norm(1.0)
            self.optimizer.step()
        except OverflowError:  # fp16: the loss scale is lowered and the update skipped, as fairseq's trainer does
            pass
        self.optimizer.zero_grad()  # gradients freed now, not kept while the other variants run

    def eval_step(self, sample, precision: str = "fp32") -> None:
        self.tasks[precision].valid_step(sample, self.model, self.plain)
