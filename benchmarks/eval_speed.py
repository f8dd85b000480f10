"""Evaluation speed of fine-tuned models side by side (a teacher and its distilled student): the time to run the
model over a split's examples, measured in alternating rounds in one process (the machine is shared and noisy: the
ratio of medians is the number to read), printed as a markdown table.

    python benchmarks/eval_speed.py --data <out>/<task> --checkpoint <teacher.pt> --checkpoint <student.pt>
        [--split valid] [--rounds 3] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from stabletune_fairseq.data.metadata import split_languages
    from stabletune_fairseq.inference.predictors import PREDICTORS
    from stabletune_fairseq.models.checkpoint_loading import choose_device, load_for_inference

    device = choose_device()
    loaded = []
    for checkpoint in args.checkpoint:
        model, task, _ = load_for_inference(checkpoint, args.data, device)
        datasets = [task.load_dataset(f"{args.split}_{lang}") for lang in split_languages(task.metadata, args.split)]
        predictor = PREDICTORS[task.metadata["kind"]](task, model, device, args.batch_size)
        parameters = sum(p.numel() for p in model.parameters())
        embeddings = model.encoder.sentence_encoder.embed_tokens.weight.numel()
        loaded.append((checkpoint, model, predictor, datasets, parameters - embeddings))
    times = {checkpoint: [] for checkpoint, *_ in loaded}
    for _ in range(args.rounds):  # alternating: every model sees the same machine load, round by round
        for checkpoint, _model, predictor, datasets, _ in loaded:
            start = time.perf_counter()
            for dataset in datasets:
                predictor.outputs(dataset)
            times[checkpoint].append(time.perf_counter() - start)
    examples = sum(len(d) for d in loaded[0][3])
    base = statistics.median(times[loaded[0][0]])
    print(
        f"Evaluation speed on {args.split} ({examples} examples, batch {args.batch_size}, {device}, "
        f"{os.cpu_count()} cores {platform.machine()}, {torch.get_num_threads()} threads), median of {args.rounds} "
        f"alternating rounds:\n"
    )
    print("| checkpoint | layers | parameters without embeddings | seconds | examples/s | speed-up over the first |")
    print("|---|---|---|---|---|---|")
    for checkpoint, model, _, _, parameters in loaded:
        median = statistics.median(times[checkpoint])
        print(
            f"| {checkpoint} | {model.cfg.encoder_layers} | {parameters / 1e6:.1f} M | {median:.1f} | "
            f"{examples / median:.0f} | {base / median:.2f}x |"
        )


if __name__ == "__main__":
    main()
