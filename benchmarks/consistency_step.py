"""Cost of a consistency step (rows and views in one forward pass) against a plain step and against
two separate passes, on the same batches, interleaved, medians printed with ratios.

    python benchmarks/consistency_step.py [--data .cache/evidence-xnli/data/xnli] [--model .cache/e5-small/model.pt]

Views are noise views (same tokens as the rows), so the three variants see the same shapes and only the
way the views are computed differs. Training step = forward, backward, no optimizer (identical for all).
Runs with the glibc malloc settings run_xtreme.sh uses on CPU (run_scripts/cpu_malloc.sh); pass
--system-malloc to measure without them.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
from omegaconf import OmegaConf

import stabletune_fairseq  # noqa: F401
from stabletune_fairseq.criterions.kl_terms import symmetric_consistency
from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig
from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=".cache/evidence-xnli/data/xnli")
    parser.add_argument("--model", default=".cache/e5-small/model.pt")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--system-malloc", action="store_true", help="keep glibc's default malloc settings")
    args = parser.parse_args()
    if not args.system_malloc and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        script = os.path.join(os.path.dirname(__file__), "..", "run_scripts", "cpu_malloc.sh")
        env = subprocess.run(["bash", "-c", f"source {script} && env -0"], capture_output=True, text=True, check=True).stdout
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(kv.split("=", 1) for kv in env.split("\0") if "=" in kv))
    torch.manual_seed(0)
    task = XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=args.data, seed=1, view_augmentation="noise", noise_std=0.01))
    cfg = StabletuneXLMRConfig(_name="stabletune_xlmr", pretrained_encoder=args.model, save_dir="", freeze_embeddings=True,
                               encoder_embed_dim=384, encoder_ffn_embed_dim=1536)
    model = task.build_model(OmegaConf.structured(cfg)).train()
    views = task.load_dataset("train")
    batches = [views.collater([views[i] for i in range(start, start + args.batch)])
               for start in range(0, args.repeats * args.batch, args.batch)]

    def plain(sample):
        rows = sample["net_input"]["src_tokens"][: args.batch]
        model(rows, head="sentence").sum().backward()

    def one_pass(sample):
        tokens = sample["net_input"]["src_tokens"]
        noise_rows = torch.arange(tokens.size(0)) >= args.batch
        logits = model(tokens, head="sentence", noise_std=0.01, noise_rows=noise_rows)
        (logits[: args.batch].sum() + symmetric_consistency(logits[: args.batch], logits[args.batch:]).sum()).backward()

    def two_passes(sample):
        rows = sample["net_input"]["src_tokens"][: args.batch]
        a = model(rows, head="sentence")
        b = model(rows, head="sentence", noise_std=0.01)
        (a.sum() + symmetric_consistency(a, b).sum()).backward()

    variants = {"plain step": plain, "consistency, one pass": one_pass, "consistency, two passes": two_passes}
    times = {name: [] for name in variants}
    names = list(variants)
    for number, sample in enumerate(batches):  # interleaved: every batch goes through every variant,
        order = names[number % 3:] + names[:number % 3]  # each variant first on a new batch as often as the others
        for name in order:
            step = variants[name]
            model.zero_grad()
            start = time.perf_counter()
            step(sample)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["plain step"])
    malloc = "system malloc" if args.system_malloc else "cpu_malloc.sh"
    print(f"| variant (batch {args.batch}, {torch.get_num_threads()} threads, {malloc}) | median s | vs plain |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.3f} | {statistics.median(values) / base:.2f}x |")


if __name__ == "__main__":
    main()
