"""``stabletune-mlm-eval``: masked-LM loss of any checkpoint on a folder written by ``process.sh <text> mlm``.

    stabletune-mlm-eval --checkpoint <model.pt | checkpoint_best.pt> --data <out>/mlm [--split valid] [--out r.json]

The same measurement for "before" (a release, e.g. a model made longer by ``stabletune-convert extend-positions``)
and "after" (a ``run_mlm.sh`` checkpoint): the split's blocks with the task's fixed validation masks
(``--mask-seed``, default the task's ``--valid-mask-seed`` 1; 15% of the pieces, 80/10/10), dropout off, and the
criterion's own sums (``criterions/masked_lm.py``). Reported: ``masked_tokens``; ``nats_per_masked_token`` (the
mean cross-entropy); ``bits_per_masked_token`` = that / ln 2 (fairseq's logged ``loss``; the Longformer notebook's
"bpc"); ``perplexity`` = e ** nats; and ``lm_head``: where the head came from. A checkpoint without an LM head (the
embedded e5-small) is measured with a new one (``--lm-head-seed``), which says nothing about the encoder.
``--attention-window W``: Longformer's sliding window, no token global (as ``run_mlm.sh ATTENTION_WINDOW=W``
trains); default: the checkpoint's own setting (full attention for a release).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..evaluation.masked_lm import evaluate_mlm
from .console import add_precision_option, bad_input_as_one_line, log_to_stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-mlm-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a release model.pt or a checkpoint of any of our runs")
    parser.add_argument("--data", required=True, help="folder written by process.sh <text-folder> mlm (<out>/mlm)")
    parser.add_argument("--split", default="valid", help="held-out split (default valid)")
    parser.add_argument(
        "--mask-seed", type=int, default=1, help="seed of the fixed masks (the task's --valid-mask-seed)"
    )
    parser.add_argument(
        "--lm-head-seed", type=int, default=1, help="seed of a new LM head, for a checkpoint without one"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="blocks per forward pass")
    parser.add_argument(
        "--attention-window",
        type=int,
        default=None,
        help="Longformer's sliding window of W tokens (even; 0: full attention), with no global token, "
        "as run_mlm.sh ATTENTION_WINDOW= trains; default: the checkpoint's own setting",
    )
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is there")
    parser.add_argument("--out", default=None, help="also write the result to this JSON file")
    add_precision_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()
    result, status = bad_input_as_one_line(
        "stabletune-mlm-eval",
        evaluate_mlm,
        args.checkpoint,
        args.data,
        args.split,
        args.mask_seed,
        args.batch_size,
        args.cpu,
        args.lm_head_seed,
        args.attention_window,
        args.precision,
        also=(ValueError, FileNotFoundError),
    )
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
