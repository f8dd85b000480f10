"""``stabletune-teacher-bank``: a teacher's outputs for every stored training row, written once, for distillation
without running the teacher on those rows (``--teacher-bank`` of the ``stability_distillation`` criterion).

    stabletune-teacher-bank --checkpoint <teacher.pt> --data <out>/<task> [--split train] [--out <dir>]

The rows are the task folder's stored training rows as training reads them (no views, no augmented copies), run
through the teacher in eval mode (no dropout) in batches of similar length; ``models/teacher_bank.py`` describes the
folder. Augmented copies and translations are drawn afresh every epoch: the teacher runs on them during training.
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


def write_bank(
    checkpoint: str, data: str, split: str, out: str, batch_size: int = 32, cpu: bool = False, precision: str = "fp32"
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
    writer = BankWriter(len(dataset))
    order = dataset.ordered_indices()
    pad = task.dictionary.pad()
    start = time.time()
    with torch.no_grad():
        for begin in range(0, len(order), batch_size):
            sample = dataset.collater([dataset[int(i)] for i in order[begin : begin + batch_size]])
            tokens = sample["net_input"]["src_tokens"].to(device)
            head_input = {k: v.to(device) for k, v in sample.get("head_input", {}).items()}
            with autocast(precision):
                logits = model(tokens, head=task.head_name, **head_input).float().cpu()
            checksums = token_checksums(sample["net_input"]["src_tokens"], pad).numpy()
            for row, row_id in enumerate(sample["id"].tolist()):
                writer.add(row_id, row_units(logits, sample, row, task.kind, pad).numpy(), checksums[row])
    folder = writer.write(out, {**bank_record(checkpoint, task.identity, split, task.kind), "precision": precision})
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
        also=(FileNotFoundError, ValueError),
    )
    if status:
        return status
    print(f"wrote {folder} (bank.json, logits.npy, offsets.npy, tokens.npy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
