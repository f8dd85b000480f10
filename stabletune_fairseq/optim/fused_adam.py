"""``fused_adamw``: torch's AdamW with its fused kernel, as a fairseq optimizer (what run_xtreme.sh uses).

fairseq's ``adam`` without apex updates every parameter in Python-level steps (``exp_avg_sq.sqrt()``
allocates a temporary as large as the parameter): for XLM-R's 250k-row embedding that is a fixed cost
of every update (measured in benchmarks/run.py). torch's fused kernel does the whole update in one pass,
on CPU and CUDA. The update is the same rule as fairseq's ``adam`` (decoupled weight decay, bias
correction); the only difference is where eps enters: torch divides by ``sqrt(v / (1 - beta2^t)) + eps``,
fairseq by ``(sqrt(v) + eps) / sqrt(1 - beta2^t)``.
"""

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import List

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.optim import FairseqOptimizer, register_optimizer
from omegaconf import II


@dataclass
class FusedAdamWConfig(FairseqDataclass):
    adam_betas: str = field(default="(0.9, 0.999)", metadata={"help": "betas for Adam"})
    adam_eps: float = field(default=1e-8, metadata={"help": "epsilon for Adam"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay"})
    lr: List[float] = II("optimization.lr")


@register_optimizer("fused_adamw", dataclass=FusedAdamWConfig)
class FusedAdamW(FairseqOptimizer):
    def __init__(self, cfg: FusedAdamWConfig, params):
        super().__init__(cfg)
        self._optimizer = torch.optim.AdamW(params, **self.optimizer_config, fused=True)
        self._optimizer.supports_flat_params = True  # fairseq's FP16Optimizer hands it one flat fp32 tensor

    @property
    def optimizer_config(self):
        betas, lr = self.cfg.adam_betas, self.cfg.lr
        return {
            "lr": float(lr[0] if isinstance(lr, Sequence) else lr),
            "betas": ast.literal_eval(betas) if isinstance(betas, str) else tuple(betas),
            "eps": self.cfg.adam_eps,
            "weight_decay": self.cfg.weight_decay,
        }
