"""Size and speed of compressed students (docs/compressed-students.md) against the model they come from: parameters
(a recurrent layer counted once), bytes of model.pt on disk, and sentences per second embedded on one CPU thread
(the STS2017 tracks of the shared STS sample, both sides, mean pooling, batches of 64), in alternating rounds (the
machine is shared: the median of each is the number to read). Prints a markdown table.

    OMP_NUM_THREADS=1 python benchmarks/compressed_students.py --model <model.pt> --model <student/model.pt> \
        [--sts <folder with STS2017.eval.v1.1, STS2017.gs>] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch


def sentences(folder: Path) -> list[str]:
    from stabletune_fairseq.embeddings.readers import read_sts2017_track

    out = []
    for path in sorted((folder / "STS2017.eval.v1.1").glob("STS.input.*.txt")):
        gold = folder / "STS2017.gs" / path.name.replace("STS.input.", "STS.gs.")
        pairs = read_sts2017_track(path, gold)
        out += pairs.first + pairs.second
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--sts", default=str(Path(__file__).resolve().parents[2] / "shared/data/sts-sample"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--prefix", default="query: ")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from stabletune_fairseq.embeddings.encoder import EmbeddingSettings, SentenceEmbedder

    texts = sentences(Path(args.sts))
    settings = EmbeddingSettings(prefix=args.prefix, batch_size=args.batch_size)
    embedders = [SentenceEmbedder.load(m, settings, torch.device("cpu")) for m in args.model]
    times = {m: [] for m in args.model}
    for _ in range(args.rounds):
        for model, embedder in zip(args.model, embedders):
            start = time.perf_counter()
            embedder.embed(texts)
            times[model].append(time.perf_counter() - start)
    machine = platform.processor() or platform.machine()
    print(f"{len(texts)} sentences, {machine}, torch threads 1, {args.rounds} rounds")
    print("| model | layers run (distinct x repeat) | token table | parameters | model.pt bytes | sentences/s |")
    print("|---|---|---|---|---|---|")
    for model, embedder in zip(args.model, embedders):
        encoder = embedder.loaded.encoder
        params = sum(p.numel() for p in encoder.parameters())  # shared layers are one set of parameters
        table = encoder.sentence_encoder.embed_tokens
        shape = f"{table.weight.shape[0]} x {table.weight.shape[1]}" + (
            f" -> {table.embedding_dim}" if hasattr(table, "projection") else ""
        )
        layers = len(encoder.sentence_encoder.layers)
        repeat = getattr(encoder, "layer_repeat", 1)
        speed = len(texts) / statistics.median(times[model])
        print(
            f"| {model} | {layers} x {repeat} | {shape} | {params / 1e6:.2f} M | {os.path.getsize(model) / 1e6:.1f} MB "
            f"| {speed:.1f} |"
        )


if __name__ == "__main__":
    main()
