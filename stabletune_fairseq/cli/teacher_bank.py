"""``stabletune-teacher-bank``: a teacher's outputs for every stored training row, written once, for distillation
without running the teacher on those rows (``--teacher-bank`` of the ``stability_distillation`` criterion).

    stabletune-teacher-bank --checkpoint <teacher.pt> --data <out>/<task> [--split train] [--out <dir>]
                            [--states [--layers 2,4,6,8,10,12]]

The rows are the task folder's stored training rows as training reads them (no views, no augmented copies), run
through the teacher in eval mode (no dropout) in batches of similar length; ``models/teacher_bank.py`` describes the
folder. Augmented copies and translations are drawn afresh every epoch: the teacher runs on them during training.
``--states`` also stores the teacher's ``<s>`` state after every layer (or the 1-based ``--layers``) and each row's
label, float16: BERT-gang's memory bank (``build_membank.py``), read by ``--layer-contrast-weight``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from .console import add_precision_option, bad_input_as_one_line, log_to_stderr

logger = logging.getLogger("stabletune_fairseq.teacher_bank")


def row_units(logits, sample, row: int, kind: str, pad: int):
    """The units of one row of a batch's logits: the row (sentence), its words (tagging) or its positions (QA)."""
    if "word_mask" in sample:
        return logits[row, : int(sample["word_mask"][row].sum())]
    if kind == "qa":
        return logits[row, : int(sample["net_input"]["src_tokens"][row].ne(pad).sum())]
    return logits[row : row + 1]


def parse_state_layers(text: str | None, teacher_layers: int) -> list[int]:
    """``--layers`` (1-based teacher layers, comma-separated) or every layer; a clear error for others."""
    if not text:
        return list(range(1, teacher_layers + 1))
    try:
        layers = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise ValueError(f"--layers {text!r}: comma-separated teacher layers, 1-based, e.g. 2,4,6") from None
    if layers[0] < 1 or layers[-1] > teacher_layers:
        raise ValueError(f"--layers {text!r}: the teacher has layers 1..{teacher_layers}")
    return layers


def write_bank(
    checkpoint: str,
    data: str,
    split: str,
    out: str,
    batch_size: int = 32,
    cpu: bool = False,
    precision: str = "fp32",
    states: bool = False,
    layers: str | None = None,
) -> str:
    import torch

    from ..models.checkpoint_loading import choose_device, load_for_inference
    from ..models.precision import autocast, check_precision
    from ..models.teacher_bank import BankWriter, bank_record, token_checksums

    device = choose_device("cpu" if cpu else None)
    check_precision(precision, "--precision", device)
    model, task, _ = load_for_inference(
        checkpoint, data, device, overrides={"view_augmentation": "none", "copy_augmentation": "none"}
    )
    dataset = task.load_dataset(split)
    state_layers = None
    if states:
        if task.loss_family != "labels" or task.kind not in ("sentence_pair", "glue"):
            raise ValueError(
                f"{checkpoint}: --states banks the <s> states of rows with one label each (negatives are rows of "
                f"another label); a {task.kind} task has no such label"
            )
        state_layers = parse_state_layers(layers, model.cfg.encoder_layers)
    elif layers:
        raise ValueError("--layers chooses the layers of --states: give --states too")
    hidden = model.cfg.encoder_embed_dim
    writer = BankWriter(len(dataset), None if state_layers is None else (len(state_layers), hidden))
    order = dataset.ordered_indices()
    pad = task.dictionary.pad()
    start = time.time()
    with torch.no_grad():
        for begin in range(0, len(order), batch_size):
            sample = dataset.collater([dataset[int(i)] for i in order[begin : begin + batch_size]])
            tokens = sample["net_input"]["src_tokens"].to(device)
            head_input = {k: v.to(device) for k, v in sample.get("head_input", {}).items()}
            per_layer = [] if state_layers else None
            with autocast(precision):
                logits = model(tokens, head=task.head_name, layer_states=per_layer, **head_input).float().cpu()
            checksums = token_checksums(sample["net_input"]["src_tokens"], pad).numpy()
            if state_layers:  # rows x layers x hidden, float16 as stored
                chosen = torch.stack([per_layer[layer - 1] for layer in state_layers], 1).float().cpu().half().numpy()
                labels = sample["target"].tolist()
            for row, row_id in enumerate(sample["id"].tolist()):
                extra = (chosen[row], labels[row]) if state_layers else ()
                writer.add(row_id, row_units(logits, sample, row, task.kind, pad).numpy(), checksums[row], *extra)
    record = {**bank_record(checkpoint, task.identity, split, task.kind), "precision": precision}
    if state_layers:
        record.update(
            state_layers=state_layers, state_dtype="float16", hidden=hidden, teacher_layers=model.cfg.encoder_layers
        )
    folder = writer.write(out, record)
    logger.info(
        "wrote %s: %d rows, %d units of %d outputs, %.1f s",
        folder,
        len(order),
        sum(len(u) for u in writer.units),
        writer.units[0].shape[-1],
        time.time() - start,
    )
    return str(folder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-teacher-bank", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", required=True, help="the fine-tuned teacher, e.g. <save_dir>/checkpoint_best.pt"
    )
    parser.add_argument(
        "--data", required=True, help="the task folder it was trained on (process.sh's), e.g. <out>/xnli"
    )
    parser.add_argument(
        "--split", default="train", help="the stored split whose rows are banked (training reads train)"
    )
    parser.add_argument(
        "--out", default=None, help="folder for the bank (default: teacher_bank_<split> beside the checkpoint)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument(
        "--states",
        action="store_true",
        help="also store the teacher's <s> state after each layer and each row's label (float16, states.npy and "
        "labels.npy): BERT-gang's memory bank, for --layer-contrast-weight (sentence tasks)",
    )
    parser.add_argument("--layers", default=None, help="with --states: teacher layers to store, 1-based (default: all)")
    add_precision_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), f"teacher_bank_{args.split}")
    folder, status = bad_input_as_one_line(
        "stabletune-teacher-bank",
        write_bank,
        args.checkpoint,
        args.data,
        args.split,
        out,
        args.batch_size,
        args.cpu,
        args.precision,
        args.states,
        args.layers,
        also=(FileNotFoundError, ValueError),
    )
    if status:
        return status
    extra = ", states.npy, labels.npy" if args.states else ""
    print(f"wrote {folder} (bank.json, logits.npy, offsets.npy, tokens.npy{extra})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
