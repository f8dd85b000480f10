"""``stabletune-mlm-eval``: masked-LM loss of any checkpoint on a folder written by ``process.sh <text> mlm``.

    stabletune-mlm-eval --checkpoint <model.pt | checkpoint_best.pt> --data <out>/mlm [--split valid] [--out r.json]

The same measurement for "before" (a release, e.g. a model made longer by ``stabletune-convert extend-positions``)
and "after" (a ``run_mlm.sh`` checkpoint): the split's blocks with the task's fixed validation masks
(``--mask-seed``, default the task's ``--valid-mask-seed`` 1; 15% of the pieces, 80/10/10), dropout off, and the
criterion's own sums (``criterions/masked_lm.py``). Reported: ``masked_tokens``; ``nats_per_masked_token`` (the
mean cross-entropy); ``bits_per_masked_token`` = that / ln 2 (fairseq's logged ``loss``; the Longformer notebook's
"bpc"); ``perplexity`` = e ** nats; and ``lm_head``: where the head came from. A checkpoint without an LM head (the
embedded e5-small) is measured with a new one (``--lm-head-seed``), which says nothing about the encoder.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys

from .console import bad_input_as_one_line, log_to_stderr

logger = logging.getLogger(__name__)

HEADS_OF_HIDDEN = {384: 12, 768: 12, 1024: 16}  # attention heads of the registered shapes, when a file stores none


def model_config(state: dict, weights: dict):
    """A ``StabletuneXLMRConfig`` with the checkpoint's shape: its stored settings, the sizes of its weights, and
    the rows of its position table."""
    from ..model_positions import positions_of, stored_settings
    from ..models.stabletune_xlmr import StabletuneXLMRConfig
    from ..release import ENCODER_PREFIX

    stored = stored_settings(state)
    known = {f.name for f in dataclasses.fields(StabletuneXLMRConfig)} - {"pretrained_encoder", "save_dir",
                                                                          "freeze_embeddings"}
    cfg = StabletuneXLMRConfig(**{k: v for k, v in stored.items() if k in known and v is not None})
    hidden = weights[ENCODER_PREFIX + "embed_tokens.weight"].shape[1]
    cfg.encoder_embed_dim = hidden
    cfg.encoder_layers = len({k.split(".")[3] for k in weights if k.startswith(ENCODER_PREFIX + "layers.")})
    cfg.encoder_ffn_embed_dim = weights[ENCODER_PREFIX + "layers.0.fc1.weight"].shape[0]
    cfg.encoder_attention_heads = stored.get("encoder_attention_heads") or HEADS_OF_HIDDEN.get(hidden, hidden // 64)
    cfg.max_positions = positions_of(state)
    return cfg


def load_for_mlm(checkpoint: str, task, lm_head_seed: int = 1):
    """(model in eval mode, where its LM head came from) of any checkpoint of our encoder."""
    import torch

    from ..models.lm_head import add_lm_head, load_lm_head
    from ..models.pretrained import load_pretrained_encoder
    from ..models.stabletune_xlmr import StabletuneXLMRModel, XLMREncoder
    from ..release import read_release
    from ..reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint

    state = open_checkpoint(checkpoint, "checkpoint")
    cfg = model_config(state, read_release(checkpoint))
    if task.max_positions() > cfg.max_positions:
        raise WrongCheckpoint(f"checkpoint {checkpoint}: {cfg.max_positions} positions, but {task.cfg.data} holds blocks "
                              f"of {task.max_positions()} tokens")
    model = StabletuneXLMRModel(cfg, XLMREncoder(cfg, task.dictionary))
    load_pretrained_encoder(model, checkpoint)
    torch.manual_seed(lm_head_seed)  # a new head, when needed, is the same every time
    add_lm_head(model)
    found = load_lm_head(model, state["model"], checkpoint)
    return model.eval(), "loaded" if found else f"initialised (seed {lm_head_seed}; the checkpoint has none)"


def evaluate_mlm(checkpoint: str, data: str, split: str = "valid", mask_seed: int = 1, batch_size: int = 8,
                 cpu: bool = False, lm_head_seed: int = 1) -> dict:
    import torch
    from fairseq import utils

    from ..criterions.masked_lm import masked_lm_sums
    from ..models.checkpoint_loading import choose_device
    from ..tasks.masked_lm import StabletuneMLMConfig, StabletuneMLMTask

    task = StabletuneMLMTask.setup_task(StabletuneMLMConfig(data=data, valid_mask_seed=mask_seed, seed=mask_seed))
    if split == "train":
        raise ValueError("evaluate a held-out split (train's masks change every epoch)")
    dataset = task.load_dataset(split)
    device = choose_device("cpu" if cpu else None)
    model, head = load_for_mlm(checkpoint, task, lm_head_seed)
    model.to(device)
    total, masked, tokens = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            sample = dataset.collater([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            sample = utils.move_to_cuda(sample, device) if device.type == "cuda" else sample
            loss, count = masked_lm_sums(model, sample, task.dictionary.pad())
            total, masked, tokens = total + float(loss), masked + count, tokens + int(sample["ntokens"])
    nats = total / max(masked, 1)
    return {"checkpoint": str(checkpoint), "data": str(data), "split": split, "mask_seed": mask_seed,
            "blocks": len(dataset), "tokens": tokens, "masked_tokens": masked, "loss_nats": total,
            "nats_per_masked_token": nats, "bits_per_masked_token": nats / math.log(2), "perplexity": math.exp(nats),
            "lm_head": head}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabletune-mlm-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a release model.pt or a checkpoint of any of our runs")
    parser.add_argument("--data", required=True, help="folder written by process.sh <text-folder> mlm (<out>/mlm)")
    parser.add_argument("--split", default="valid", help="held-out split (default valid)")
    parser.add_argument("--mask-seed", type=int, default=1, help="seed of the fixed masks (the task's --valid-mask-seed)")
    parser.add_argument("--lm-head-seed", type=int, default=1, help="seed of a new LM head, for a checkpoint without one")
    parser.add_argument("--batch-size", type=int, default=8, help="blocks per forward pass")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is there")
    parser.add_argument("--out", default=None, help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    log_to_stderr()
    result, status = bad_input_as_one_line("stabletune-mlm-eval", evaluate_mlm, args.checkpoint, args.data, args.split,
                                           args.mask_seed, args.batch_size, args.cpu, args.lm_head_seed,
                                           also=(ValueError, FileNotFoundError))
    if status:
        return status
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
