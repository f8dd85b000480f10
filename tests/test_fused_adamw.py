"""``fused_adamw`` makes the same updates as fairseq's ``adam`` (eps placement aside), through fairseq's builders."""

import copy

import pytest
import torch
from fairseq import optim
from fairseq.dataclass.configs import FairseqConfig
from fairseq.optim.adam import FairseqAdamConfig
from omegaconf import OmegaConf

import stabletune_fairseq  # noqa: F401
from stabletune_fairseq.optim.fused_adam import FusedAdamWConfig


def build(optimizer_cfg, model):
    cfg = OmegaConf.structured(FairseqConfig())
    cfg.optimization.lr = [1e-3]
    cfg.optimizer = OmegaConf.structured(optimizer_cfg)
    cfg.optimizer.lr = [1e-3]
    params = list(model.parameters())
    return optim.build_optimizer(cfg.optimizer, params)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_same_updates_as_fairseq_adam(weight_decay):
    torch.manual_seed(0)
    ours = torch.nn.Linear(50, 40)
    theirs = copy.deepcopy(ours)
    start = ours.weight.detach().clone()
    fused = build(FusedAdamWConfig(_name="fused_adamw", adam_betas="(0.9,0.999)", weight_decay=weight_decay), ours)
    reference = build(
        FairseqAdamConfig(_name="adam", adam_betas="(0.9,0.999)", adam_eps=1e-8, weight_decay=weight_decay), theirs
    )
    for _ in range(5):
        x = torch.randn(8, 50)
        for model, optimizer in ((ours, fused), (theirs, reference)):
            optimizer.zero_grad()
            model(x).pow(2).sum().backward()
            optimizer.step()
    assert (ours.weight - start).abs().max() > 1e-3  # it trained
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_learning_rate_schedule_and_state_dict_round_trip():
    model = torch.nn.Linear(4, 3)
    optimizer = build(FusedAdamWConfig(_name="fused_adamw"), model)
    optimizer.set_lr(5e-4)
    assert optimizer.get_lr() == 5e-4
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    again = build(FusedAdamWConfig(_name="fused_adamw"), copy.deepcopy(model))
    again.load_state_dict(optimizer.state_dict())
    state = again.optimizer.state_dict()["state"][0]
    assert torch.equal(state["exp_avg"], optimizer.optimizer.state_dict()["state"][0]["exp_avg"])


def test_flat_parameters_as_fairseq_fp16_hands_them():
    """fairseq-train --fp16 (FP16Optimizer, CUDA only) gives the optimizer one flat fp32 copy of all parameters."""
    flat = torch.nn.Parameter(torch.zeros(10))
    holder = torch.nn.Module()
    holder.flat = flat
    optimizer = build(FusedAdamWConfig(_name="fused_adamw"), holder)
    assert optimizer.supports_flat_params
    flat.grad = torch.ones(10)
    optimizer.step()
    assert torch.allclose(flat.detach(), torch.full((10,), -1e-3))  # Adam's first step: lr * sign(grad)
