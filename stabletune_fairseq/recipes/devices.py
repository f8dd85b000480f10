"""The model and machine facts a recipe builds its command from: the architecture of model.pt, the GPUs."""

from __future__ import annotations

import socket
import traceback

from ..release import DEFAULT_MAX_POSITIONS, EncoderShape, model_shape
from ..reliability.exit_status import BadInput
from .plan import RecipeError

CPU_MESSAGE = "no GPU found: training on CPU in fp32 (--fp16 needs CUDA)"
CPU_BF16_MESSAGE = "no GPU found: training on CPU in bf16 (autocast, float32 weights: --cpu-precision bf16)"
AUTO_NOTE = {
    "bf16": "; PRECISION=auto: this CPU has bf16 instructions, PRECISION=fp32 trains in float32",
    "fp32": "; PRECISION=auto: this CPU has no bf16 instructions",
}
# PRECISION= of every recipe; on a GPU fairseq's own --fp16 (auto, fp32) or --bf16. auto, the default: bf16 on a CPU
# with bf16 instructions (the same accuracy at 1.47x the speed, docs/precision.md), else fp32.
PRECISIONS = ("auto", "fp32", "bf16")


def precision_args(precision: str, gpus: int, script: str) -> tuple[list[str], str | None]:
    """PRECISION= as fairseq-train flags, and the line a CPU run prints. A GPU trains in fp16 (fairseq's --fp16)
    unless bf16 is asked for (fairseq's --bf16); a CPU in fp32, or in bf16 under torch's autocast
    (models/precision.py), refused here in one line where the CPU has no bf16 instructions; auto is bf16 where the
    CPU has them, else fp32, and the CPU line says which."""
    if precision not in PRECISIONS:
        raise RecipeError(f"{script}: PRECISION must be auto, fp32 or bf16 (got '{precision}')")
    if gpus > 0:
        return (["--bf16"] if precision == "bf16" else ["--fp16"]), None
    from ..models.precision import cpu_has_bf16

    note = ""
    if precision == "auto":
        precision = "bf16" if cpu_has_bf16() else "fp32"
        note = AUTO_NOTE[precision]
    if precision == "fp32":
        return [], CPU_MESSAGE + note
    if not cpu_has_bf16():
        raise RecipeError(f"{script}: PRECISION=bf16: this CPU has no bf16 instructions (AVX512-BF16, AMX or ARM BF16)")
    return ["--cpu-precision", "bf16"], CPU_BF16_MESSAGE + note


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # a broken CUDA set-up trains on CPU, as a machine without one
        return 0


def inspect_model(
    model: str, dictionary: str, failure: str, show_traceback: bool = False
) -> tuple[str, int, int | None, list[str]]:
    """model.pt -> (architecture, layers, positions when not XLM-R's 512, a compressed student's options), the file
    read once. ``failure``: the recipe's message when it cannot be read, after the reason (``error: ...``; for a
    file torch cannot read, its traceback if asked)."""
    try:
        architecture, layers, positions, shape = model_shape(model, dictionary)
    except BadInput as err:
        raise RecipeError(f"error: {err}\n{failure}") from None
    except Exception:  # any other failure to read it (a file torch cannot load): the recipe's message after it
        if show_traceback:
            traceback.print_exc()
        raise RecipeError(failure) from None
    return architecture, layers, (positions if positions != DEFAULT_MAX_POSITIONS else None), compression_args(shape)


def depth_args(architecture: str, layers: int) -> list[str]:
    """A student of fewer layers (stabletune-convert shrink): the architecture of its hidden size, its own depth."""
    default = 24 if "large" in architecture else 12
    return [] if layers == default else ["--encoder-layers", str(layers)]


def compression_args(shape: EncoderShape) -> list[str]:
    """``--embedding-bottleneck d`` and ``--layer-repeat r`` of a compressed student (``stabletune-convert
    compress``): the bottleneck from its weights, the repeat from its stored settings; none for any other model."""
    out = ["--embedding-bottleneck", str(shape.bottleneck)] if shape.bottleneck else []
    return out + (["--layer-repeat", str(shape.repeat)] if shape.repeat > 1 else [])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_rank_args(world: int) -> list[str]:
    """CPU ranks: one process per rank, gloo, legacy_ddp (bash starts the ranks)."""
    return [
        "--distributed-world-size",
        str(world),
        "--distributed-init-method",
        f"tcp://127.0.0.1:{free_port()}",
        "--distributed-no-spawn",
        "--ddp-backend",
        "legacy_ddp",
        "--distributed-backend",
        "gloo",
    ]
