"""The benchmark harness (benchmarks/run.py): the comparison is fair (same function in both libraries), the
FLOP count behind MFU is right, and a whole run writes the table and one TARGET line per target."""

from __future__ import annotations

import os
import re
import sys

import pytest
import torch
from conftest import REPO, run
from fairseq.data import Dictionary

sys.path.insert(0, str(REPO / "benchmarks"))
from our_steps import N_CLASSES, SHAPES, OurSteps  # noqa: E402
from run import DOUBLE_ROWS, make_batches, step_functions, training_flops  # noqa: E402

CPU = torch.device("cpu")
LENGTH, BATCH = 32, 4


def small_dictionary(size: int = 300) -> Dictionary:
    dictionary = Dictionary()
    for i in range(size):
        dictionary.add_symbol(f"piece{i}")
    return dictionary


@pytest.mark.parametrize("variant", ["our plain step", "our stage-1 step", DOUBLE_ROWS, "our stage-2 step", "our eval"])
def test_model_flops_match_the_counted_matrix_products(variant):
    """MFU's numerator: run.py's formula against torch's own count of the step's matrix products (forward,
    backward, teacher), so a wrong factor (views, teacher rows, backward) shows here."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_fused_attention(query, key, value, *unused, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    # Evaluation takes torch's fused attention, whose CPU kernel torch's counter does not know: count it as
    # the same attention (shapes in, FLOPs out) that the counter uses for the GPU kernels.
    fused_cpu = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_fused_attention}
    dictionary = small_dictionary()
    ours = OurSteps(SHAPES["tiny"], dictionary, CPU, fp16=False, with_teacher=variant == "our stage-2 step")
    batch = make_batches(1, BATCH, LENGTH, len(dictionary), CPU)[0]
    with FlopCounterMode(display=False, custom_mapping=fused_cpu) as counter:
        step_functions(ours, None)[variant](batch)
    counted = counter.get_total_flops()
    assert counted > 0
    assert training_flops(SHAPES["tiny"], LENGTH, BATCH, variant) == pytest.approx(counted, rel=0.01)


def test_hf_twin_computes_the_same_function():
    """Timing against HF means something only if HF's model is ours: same weights, same logits."""
    pytest.importorskip("transformers")
    from hf_twin import hf_twin, max_logit_difference

    dictionary = small_dictionary()
    ours = OurSteps(SHAPES["tiny"], dictionary, CPU, fp16=False, with_teacher=False)
    twin = hf_twin(ours.model, SHAPES["tiny"], N_CLASSES)
    rows = make_batches(1, BATCH, LENGTH, len(dictionary), CPU)[0]["rows"]
    rows[0, LENGTH // 2 :] = dictionary.pad()  # padded rows too: the attention masks must agree
    rows[0, LENGTH // 2 - 1] = dictionary.eos()
    assert max_logit_difference(ours.model, twin, rows) < 1e-5
    # and the twin is a copy, not a view of our tensors: training one leaves the other alone
    with torch.no_grad():
        twin.classifier.out_proj.bias.add_(1.0)
    assert max_logit_difference(ours.model, twin, rows) == pytest.approx(1.0, abs=1e-4)


def table_rows(report: str, precision: str) -> dict[str, list[str]]:
    """The cells of the tiny shape's rows of one precision, by variant."""
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 11 and cells[0] == "tiny" and cells[2] == precision:
            rows[cells[3]] = cells
    return rows


def test_bf16_runs_both_libraries_under_autocast_against_the_bf16_peak(tmp_path, e5_dir):
    """--precision fp32,bf16: every variant in each, GFLOP/s against each precision's own measured peak, the
    speed-up over fp32, targets tagged /bf16. STABLETUNE_CPU_BF16=1: runs on any CPU (emulated bf16 is slow)."""
    pytest.importorskip("transformers")
    out = tmp_path / "results.md"
    env = {**os.environ, "STABLETUNE_CPU_BF16": "1"}
    run(
        [
            sys.executable,
            "benchmarks/run.py",
            "--shapes",
            "tiny",
            "--lengths",
            str(LENGTH),
            "--batch",
            str(BATCH),
            "--repeats",
            "1",
            "--precision",
            "fp32,bf16",
            "--skip",
            "memory,preprocess",
            "--out",
            out,
        ],
        env=env,
    )
    report = out.read_text(encoding="utf-8")
    assert "cpu, fp32 and bf16 (CPU autocast)" in report
    peaks = re.search(r"GFLOP/s: fp32 (\d+), bf16 (\d+)\.", report)
    assert peaks and int(peaks.group(1)) > 0 and int(peaks.group(2)) > 0
    fp32, bf16 = table_rows(report, "fp32"), table_rows(report, "bf16")
    for variant in ["hf step", "our plain step", "our stage-1 step", "our stage-2 step", "hf eval", "our eval"]:
        seconds, speedup, gflops = float(bf16[variant][4]), bf16[variant][7], float(bf16[variant][8])
        assert seconds > 0 and gflops > 0, variant
        assert re.fullmatch(r"\d+\.\d\dx", speedup) and float(speedup[:-1]) > 0, variant  # fp32's median / bf16's
        assert fp32[variant][7] == ""
    # same weights, same autocast: the two libraries still compute the same function, up to bf16 rounding
    assert float(bf16["logits max abs diff vs HF (eval, same weights)"][4]) < 0.05
    assert f"TARGET plain_step_vs_hf[tiny/{LENGTH}/bf16]" in report
    assert f"TARGET plain_step_vs_hf[tiny/{LENGTH}] " in report


def test_bf16_where_the_cpu_has_none_is_refused_clearly():
    env = {**os.environ, "STABLETUNE_CPU_BF16": "0"}
    result = run(
        [sys.executable, "benchmarks/run.py", "--precision", "fp32,bf16", "--skip", "steps,memory,preprocess"],
        check=False,
        env=env,
    )
    assert result.returncode != 0
    assert "run.py: --precision bf16: this CPU has no bf16 instructions" in result.stderr


def test_fp16_without_a_gpu_is_refused_clearly():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run([sys.executable, "benchmarks/run.py", "--fp16", "--skip", "steps,memory,preprocess"], check=False)
    assert result.returncode != 0
    assert "--fp16 needs a CUDA GPU" in result.stderr


def test_a_whole_run_writes_the_table_and_every_target(tmp_path, e5_dir):
    pytest.importorskip("transformers")
    out = tmp_path / "results.md"
    result = run(
        [
            sys.executable,
            "benchmarks/run.py",
            "--shapes",
            "tiny",
            "--lengths",
            str(LENGTH),
            "--batch",
            str(BATCH),
            "--repeats",
            "2",
            "--preprocess-pairs",
            "3000",
            "--dict-dir",
            e5_dir,
            "--out",
            out,
        ]
    )
    report = out.read_text(encoding="utf-8")
    assert report in result.stdout
    assert re.search(r"\d{4}-\d\d-\d\d; torch [\w.+]+, fairseq-fixed [\w.]+, transformers [\w.]+", report)

    rows = table_rows(report, "fp32")
    training = ["hf step", "our plain step", "our stage-1 step", "our stage-2 step"]
    for variant in training + [DOUBLE_ROWS, "hf eval", "our eval"]:
        assert float(rows[variant][4]) > 0, variant  # median seconds
        assert float(rows[variant][8]) > 0 and rows[variant][9].endswith("%"), variant  # GFLOP/s, of the peak
    for variant in training:
        assert float(rows[variant][10]) > 100, variant  # peak RSS in MB, each in its own process
    assert float(rows["logits max abs diff vs HF (eval, same weights)"][4]) < 1e-4
    assert re.search(r"Matrix-product peak \(4096x384 @ 384x1536.*GFLOP/s: fp32 \d+\.", report)

    pairs = re.search(r"Preprocessing ([\d,]+) XNLI pairs", report)
    assert pairs and int(pairs.group(1).replace(",", "")) >= 3000

    targets = re.findall(r"^TARGET (\S+) ([\d.]+) (<=|>=)([\d.]+) (PASS|MISS)$", report, flags=re.M)
    assert [(name, sense, goal) for name, _, sense, goal, _ in targets] == [
        (f"plain_step_vs_hf[tiny/{LENGTH}]", "<=", "1.00"),
        (f"stage1_vs_plain[tiny/{LENGTH}]", "<=", "1.80"),
        (f"stage2_vs_plain[tiny/{LENGTH}]", "<=", "2.30"),
        (f"eval_throughput_vs_hf[tiny/{LENGTH}]", ">=", "1.00"),
        ("preprocess_vs_classic", ">=", "1.50"),
    ]
    for _, measured, sense, goal, verdict in targets:
        if measured == goal:  # printed rounded: either verdict can be right
            continue
        passed = float(measured) <= float(goal) if sense == "<=" else float(measured) >= float(goal)
        assert verdict == ("PASS" if passed else "MISS")
