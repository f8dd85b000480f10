"""``stabletune-embed-eval``: sentence embeddings of a checkpoint scored on XTREME's retrieval tasks or on STS.

    stabletune-embed-eval --checkpoint <model.pt> --task tatoeba|bucc|sts --data <folder> [--split dev|test]
        [--layer N] [--pooling mean|cls] [--prefix "query: "] [--batch-size 64] [--k 4] [--out <dir>] [--cpu]
        [--precision fp32|bf16] [--sts-max-of-four]

``--checkpoint``: a release (``model.pt`` with ``dict.txt`` and the sentencepiece model beside it) or a checkpoint
fine-tuned by fairseq-train (its encoder; the vocabulary comes from the task folder it was trained on). Writes
``results.json``, ``results.md`` and ``predictions/`` to ``--out`` and prints the table (docs/embeddings.md).
Bad input (a malformed row, a missing file, a file that is no checkpoint of ours) exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .console import add_precision_option, bad_input_as_one_line, log_to_stderr

logger = logging.getLogger("stabletune_fairseq.embed_eval")


def run(args) -> dict:
    from ..embeddings.encoder import EmbeddingSettings, SentenceEmbedder
    from ..embeddings.evaluation import evaluate, read_task
    from ..models.checkpoint_loading import choose_device
    from ..report.embedding_results import markdown

    if args.k < 1:
        raise ValueError(f"--k {args.k}: the number of nearest neighbours of the margin, at least 1")
    start = time.perf_counter()
    data = read_task(args.task, args.data, args.split)  # every file checked before the model is loaded
    settings = EmbeddingSettings(args.layer, args.pooling, args.prefix, args.batch_size, args.precision)
    embedder = SentenceEmbedder.load(args.checkpoint, settings, choose_device("cpu" if args.cpu else None))
    out = Path(args.out or f"embed-eval-{args.task}")
    results = evaluate(args.task, embedder, data, out, args.k, args.sts_max_of_four)
    results = {
        "task": results.pop("task"),
        "checkpoint": str(args.checkpoint),
        "data": str(args.data),
        **results,
        **embedder.describe(),
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    logger.info("wrote %s and %s", out / "results.json", out / "results.md")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-embed-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a release's model.pt or a fine-tuned checkpoint")
    parser.add_argument("--task", required=True, choices=["tatoeba", "bucc", "sts"])
    parser.add_argument("--data", required=True, help="the task's folder as distributed (docs/embeddings.md)")
    parser.add_argument(
        "--split",
        choices=["dev", "test"],
        default="dev",
        help="bucc: the split to score; test takes its threshold from the dev split when there is one",
    )
    parser.add_argument(
        "--layer",
        type=int,
        default=None,
        help="the layer to pool: 0 (the embedding layer's output) to N (default: the last, N)",
    )
    parser.add_argument(
        "--pooling",
        choices=["mean", "cls"],
        default="mean",
        help="mean over every non-padding token, <s> and </s> included (default), or the <s> state",
    )
    parser.add_argument("--prefix", default="", help='text put before every sentence, e.g. "query: " for e5 models')
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch (sorted by length)")
    parser.add_argument("--k", type=int, default=4, help="bucc: nearest neighbours of the ratio margin")
    parser.add_argument(
        "--sts-max-of-four",
        action="store_true",
        help="sts: also report max4_spearman, the highest Spearman of cosine, -L1, -L2 and dot similarity per file "
        "(the multi-stage distillation framework's figure; an upper bound on the cosine Spearman)",
    )
    parser.add_argument(
        "--out", default=None, help="folder for results.json, results.md, predictions/ (default: ./embed-eval-<task>)"
    )
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    add_precision_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()
    results, status = bad_input_as_one_line("stabletune-embed-eval", run, args, also=(FileNotFoundError, ValueError))
    if status:
        return status
    from ..report.embedding_results import markdown

    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
