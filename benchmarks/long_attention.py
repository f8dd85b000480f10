"""Long inputs: full attention against sliding-window attention, forward + backward of an encoder layer stack.

    .venv/bin/python benchmarks/long_attention.py [--lengths 1024,2048] [--layers 2] [--windows 256,512]
        [--implementations auto] [--repeats 2] [--flex]

Each setting (length x attention) runs alone in a fresh process: a stack of ``--layers`` e5-small-shaped layers
(hidden 384, 12 heads, feed-forward 1536; our ``stabletune_xlmr`` encoder with a tiny vocabulary, so the stack
is what is measured), batch 1, training mode (dropout 0.1 everywhere, attention dropout included), one warm-up
step then the median of ``--repeats`` forward + backward steps. Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` above what the model holds; on CPU the process's peak resident set
(``ru_maxrss``) above its resident set before the first step. Prints a markdown table, the ratios against full
attention of the same length beside each figure.

``--flex``: one attention call (12 heads x 32, length 2048, W=256, <s> global) through SDPA with a dense mask,
our blocked SDPA, and ``torch.nn.attention.flex_attention`` with a block mask, eager and compiled (CPU
compilation needs a C++ compiler), forward + backward, time and peak memory each in its own process (torch 2.13 has
no flex_attention backward on
CPU: those rows then say so; docs/long-context.md has the forward-only figures).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def resident_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def measure_stack(length: int, layers: int, window: int, implementation: str, repeats: int) -> dict:
    import torch
    from fairseq.data import Dictionary

    from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig, StabletuneXLMRModel

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dictionary = Dictionary()
    for i in range(100):
        dictionary.add_symbol(f"w{i}")
    cfg = StabletuneXLMRConfig(
        encoder_layers=layers,
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
        encoder_attention_heads=12,
        max_positions=length,
        attention_window=window,
        save_dir=None,
    )
    model = StabletuneXLMRModel.build_model(cfg, type("Task", (), {"source_dictionary": dictionary})).to(device).train()
    model.encoder.attention_implementation = implementation
    tokens = torch.randint(4, len(dictionary), (1, length), device=device)
    tokens[:, 0], tokens[:, -1] = dictionary.bos(), dictionary.eos()

    def step():
        model.zero_grad(set_to_none=True)
        model.encoder(tokens).float().pow(2).mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = resident_kib() * 1024
    step()  # warm-up (kernel choice, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {
        "seconds": statistics.median(times),
        "peak_mib": peak / 2**20,
        "device": device.type,
        "threads": torch.get_num_threads(),
    }


def measure_flex(kind: str, length: int, window: int, repeats: int) -> dict:
    """One attention call, forward + backward, for ``kind``: sdpa-dense, sdpa-blocked, flex-eager, flex-compiled."""
    import torch
    import torch.nn.functional as F

    from stabletune_fairseq.models.attention import AttentionPattern, blocked_window_attention

    torch.manual_seed(0)
    heads, dim = 12, 32
    q, k, v = (torch.randn(1, heads, length, dim, requires_grad=True) for _ in range(3))
    tokens = torch.full((1, length), 5)
    implementation = "blocked" if kind == "sdpa-blocked" else "dense"
    pattern = AttentionPattern.build(tokens, None, window, None, implementation)
    if kind == "sdpa-dense":
        mask = pattern.dense_mask(length, q.device)
        attend = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # noqa: E731
    elif kind == "sdpa-blocked":
        attend = lambda: blocked_window_attention(q, k, v, pattern, 0.0)  # noqa: E731
    else:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        half = window // 2

        def longformer(b, h, i, j):  # the same pattern: the window, and <s> global both ways
            return ((i - j).abs() <= half) | (i == 0) | (j == 0)

        block_mask = create_block_mask(longformer, None, None, length, length, device="cpu")
        function = torch.compile(flex_attention) if kind == "flex-compiled" else flex_attention
        attend = lambda: function(q, k, v, block_mask=block_mask)  # noqa: E731
    base = resident_kib() * 1024
    start = time.perf_counter()
    attend().sum().backward()  # warm-up; compiles when compiled
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        attend().sum().backward()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"seconds": statistics.median(times), "first_seconds": first, "peak_mib": peak / 2**20}


def in_subprocess(kind: str, **settings) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps({"kind": kind, **settings})]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def ratio(value: float, reference: float) -> str:
    return f" ({value / reference:.2f}x)" if reference else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="1024,2048", help="input lengths, comma-separated")
    parser.add_argument("--layers", type=int, default=2, help="layers in the stack (e5-small has 12)")
    parser.add_argument("--windows", default="256,512", help="attention windows W to compare with full attention")
    parser.add_argument(
        "--implementations",
        default="auto",
        help="windowed implementations to run: auto, dense, blocked (comma-separated)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per setting (after one warm-up)")
    parser.add_argument("--flex", action="store_true", help="also compare SDPA and flex_attention on one call")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        settings = json.loads(args.child)
        kind = settings.pop("kind")
        print(json.dumps(measure_stack(**settings) if kind == "stack" else measure_flex(kind, **settings)))
        return 0

    windows = [int(w) for w in args.windows.split(",") if w]
    implementations = [i for i in args.implementations.split(",") if i]
    columns = ["full"] + [
        f"W={w} {i}" if len(implementations) > 1 else f"W={w}" for w in windows for i in implementations
    ]
    rows = []
    device = threads = None
    for length in (int(n) for n in args.lengths.split(",")):
        results = {
            "full": in_subprocess(
                "stack", length=length, layers=args.layers, window=0, implementation="auto", repeats=args.repeats
            )
        }
        for w in windows:
            for i in implementations:
                name = f"W={w} {i}" if len(implementations) > 1 else f"W={w}"
                results[name] = in_subprocess(
                    "stack", length=length, layers=args.layers, window=w, implementation=i, repeats=args.repeats
                )
        device = device or results["full"].get("device")
        threads = threads or results["full"].get("threads")
        rows.append((length, results))
        print(f"measured {length}: " + json.dumps(results), file=sys.stderr, flush=True)
    memory = "peak GPU memory allocated" if device == "cuda" else "peak RSS above the start"
    print(
        f"\n{args.layers} e5-small-shaped layers (hidden 384, 12 heads), batch 1, forward + backward, training "
        f"mode (dropout 0.1); device {device}, {threads} threads; median of {args.repeats} steps; ratio to full "
        f"attention in brackets; {memory}.\n"
    )
    print(
        "| tokens | "
        + " | ".join(f"{c} s/step" for c in columns)
        + " | "
        + " | ".join(f"{c} MiB" for c in columns)
        + " |"
    )
    print("|---" * (1 + 2 * len(columns)) + "|")
    for length, results in rows:
        full = results["full"]
        cells = []
        for key, unit in (("seconds", "{:.3f}"), ("peak_mib", "{:.0f}")):
            for c in columns:
                r = results[c]
                cells.append(r["error"] if "error" in r else unit.format(r[key]) + ratio(r[key], full.get(key, 0)))
        print(f"| {length} | " + " | ".join(cells) + " |")
    if args.flex:
        print("\nOne attention call, 12 heads x 32, length 2048, W=256 (<s> global), forward + backward, CPU:\n")
        print("| implementation | s/call | first call s | peak MiB |\n|---|---|---|---|")
        for kind in ("sdpa-dense", "sdpa-blocked", "flex-eager", "flex-compiled"):
            r = in_subprocess(kind, length=2048, window=256, repeats=args.repeats)
            if "error" in r:
                print(f"| {kind} | {r['error']} | | |")
            else:
                print(f"| {kind} | {r['seconds']:.3f} | {r['first_seconds']:.1f} | {r['peak_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
