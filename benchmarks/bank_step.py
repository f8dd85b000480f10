"""Training-step time of soft-target distillation with the teacher run live against its logits bank, measured side
by side in one process (alternating steps on the same batches; the ratio of medians is the number to read).

    python benchmarks/bank_step.py --data <out>/<task> --student <model.pt> --teacher <teacher.pt> --bank <bank dir>
        [--steps 10] [--batch-size 32]

The student is built from ``--student`` (an official-format release, e.g. a stabletune-convert shrink); a step is the
criterion's forward (task loss and KD) and the backward pass, as fairseq-train runs it, without the optimiser.
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
    parser.add_argument("--student", required=True)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--bank", required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from omegaconf import OmegaConf

    import stabletune_fairseq  # noqa: F401
    from stabletune_fairseq.criterions.stability_distillation import StabilityDistillationCriterion
    from stabletune_fairseq.data.metadata import load_metadata
    from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig
    from stabletune_fairseq.release import architecture_and_layers
    from stabletune_fairseq.tasks.glue import GlueConfig, GlueTask
    from stabletune_fairseq.tasks.xtreme_qa import XtremeQAConfig, XtremeQATask
    from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask
    from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask

    kind = load_metadata(args.data)["kind"]
    task_class, config_class = {
        "sentence_pair": (XtremeSentenceTask, XtremeSentenceConfig),
        "tagging": (XtremeTaggingTask, XtremeTaggingConfig),
        "qa": (XtremeQATask, XtremeQAConfig),
        "glue": (GlueTask, GlueConfig),
    }[kind]
    task = task_class.setup_task(config_class(data=args.data, seed=1))
    arch, layers = architecture_and_layers(args.student)
    shapes = {
        "stabletune_xlmr_base": (768, 3072, 12),
        "stabletune_xlmr_large": (1024, 4096, 16),
        "stabletune_xlmr_e5_small": (384, 1536, 12),
    }[arch]
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        pretrained_encoder=args.student,
        save_dir="",
        encoder_layers=layers,
        encoder_embed_dim=shapes[0],
        encoder_ffn_embed_dim=shapes[1],
        encoder_attention_heads=shapes[2],
        freeze_embeddings=True,
    )
    student = task.build_model(OmegaConf.structured(cfg)).train()
    live = StabilityDistillationCriterion(task, teacher=args.teacher)
    banked = StabilityDistillationCriterion(task, teacher=args.teacher, teacher_bank=args.bank)
    dataset = task.load_dataset("train")
    batches = task.get_batch_iterator(dataset, max_sentences=args.batch_size, seed=1).next_epoch_itr(shuffle=True)
    times = {"teacher run live": [], "logits bank": []}
    for step, sample in zip(range(args.steps + 1), batches):
        for name, criterion in (("teacher run live", live), ("logits bank", banked)):
            start = time.perf_counter()
            loss, _, _ = criterion(student, sample)
            loss.backward()
            student.zero_grad()
            if step:  # the first step warms up both
                times[name].append(time.perf_counter() - start)
    live_s, bank_s = statistics.median(times["teacher run live"]), statistics.median(times["logits bank"])
    print(
        f"Distillation step (forward + backward, batch {args.batch_size}, student {layers} layers, teacher "
        f"{live.teacher.cfg.encoder_layers} layers; {os.cpu_count()} cores {platform.machine()}, "
        f"{torch.get_num_threads()} threads), median of {args.steps} alternating steps:\n"
    )
    print("| teacher outputs from | seconds per step | relative |\n|---|---|---|")
    print(f"| teacher run live | {live_s:.3f} | 1.00 |")
    print(f"| logits bank | {bank_s:.3f} | {bank_s / live_s:.2f} (saving {100 * (1 - bank_s / live_s):.0f}%) |")


if __name__ == "__main__":
    main()
