"""Where a step's time goes: torch.profiler over a few steps of one benchmark variant, top operators.

    python benchmarks/profile_step.py "our stage-1 step" [--shape e5-small] [--length 128] [--steps 3]
        [--precision bf16]

Variants as in run.py ("hf step", "our plain step", "our stage-1 step", "our stage-2 step", "hf eval",
"our eval"). The first step is a warm-up and is not profiled.
"""

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_twin import hf_twin  # noqa: E402
from our_steps import N_CLASSES, SHAPES, OurSteps, xlmr_sized_dictionary  # noqa: E402
from run import HFSteps, make_batches, parse_args, step_functions, synchronize, use_cpu_malloc_settings  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant")
    parser.add_argument("--shape", default="e5-small", choices=sorted(SHAPES))
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: CPU autocast, as run.py")
    parser.add_argument("--rows", type=int, default=25, help="operators listed")
    args = parser.parse_args()
    use_cpu_malloc_settings(parse_args([]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dictionary = xlmr_sized_dictionary()
    ours = OurSteps(
        SHAPES[args.shape],
        dictionary,
        device,
        args.fp16,
        with_teacher=args.variant == "our stage-2 step",
        precisions=(args.precision,),
    )
    hf = None
    if args.variant.startswith("hf"):
        hf = HFSteps(hf_twin(ours.model, SHAPES[args.shape], N_CLASSES), args.fp16)
    step = step_functions(ours, hf, args.precision)[args.variant]
    batches = make_batches(args.steps + 1, args.batch, args.length, len(dictionary), device)
    step(batches[0])
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for batch in batches[1:]:
            step(batch)
        synchronize()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=args.rows))


if __name__ == "__main__":
    main()
