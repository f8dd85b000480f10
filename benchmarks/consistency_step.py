"""Cost of a consistency step (rows and views in one forward pass) against a plain step and against
two separate passes, on the same batches, interleaved, medians printed with ratios.

    python benchmarks/consistency_step.py [--data .cache/evidence-xnli/data/xnli] [--model .cache/e5-small/model.pt]

Views are noise views (same tokens as the rows), so the three variants see the same shapes and only the
way the views are computed differs. Training step = forward, backward, no optimizer (identical for all).
Runs with the glibc malloc settings run_xtreme.sh uses on CPU (run_scripts/cpu_malloc.sh); pass
--system-malloc to measure without them.
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

import stabletune_fairseq  # noqa: F401
from stabletune_fairseq.criterions.kl_terms import symmetric_consistency
from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig
from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import time_interleaved, use_cpu_malloc_settings  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=".cache/evidence-xnli/data/xnli")
    parser.add_argument("--model", default=".cache/e5-small/model.pt")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--system-malloc", action="store_true", help="keep glibc's default malloc settings")
    args = parser.parse_args()
    use_cpu_malloc_settings(args)
    torch.manual_seed(0)
    task = XtremeSentenceTask.setup_task(
        XtremeSentenceConfig(data=args.data, seed=1, view_augmentation="noise", noise_std=0.01)
    )
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        pretrained_encoder=args.model,
        save_dir="",
        freeze_embeddings=True,
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
    )
    model = task.build_model(OmegaConf.structured(cfg)).train()
    views = task.load_dataset("train")
    batches = [
        views.collater([views[i] for i in range(start, start + args.batch)])
        for start in range(0, (args.repeats + 1) * args.batch, args.batch)
    ]  # the first is a warm-up

    def plain(sample):
        rows = sample["net_input"]["src_tokens"][: args.batch]
        model(rows, head="sentence").sum().backward()

    def one_pass(sample):
        tokens = sample["net_input"]["src_tokens"]
        noise_rows = torch.arange(tokens.size(0)) >= args.batch
        logits = model(tokens, head="sentence", noise_std=0.01, noise_rows=noise_rows)
        (
            logits[: args.batch].sum() + symmetric_consistency(logits[: args.batch], logits[args.batch :]).sum()
        ).backward()

    def two_passes(sample):
        rows = sample["net_input"]["src_tokens"][: args.batch]
        a = model(rows, head="sentence")
        b = model(rows, head="sentence", noise_std=0.01)
        (a.sum() + symmetric_consistency(a, b).sum()).backward()

    def after_zero_grad(step):
        return lambda sample: (model.zero_grad(), step(sample))

    variants = {"plain step": plain, "consistency, one pass": one_pass, "consistency, two passes": two_passes}
    times = time_interleaved({name: after_zero_grad(step) for name, step in variants.items()}, batches)
    base = statistics.median(times["plain step"])
    malloc = "system malloc" if args.system_malloc else "cpu_malloc.sh"
    print(f"| variant (batch {args.batch}, {torch.get_num_threads()} threads, {malloc}) | median s | vs plain |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.3f} | {statistics.median(values) / base:.2f}x |")


if __name__ == "__main__":
    main()
