"""bf16 on the CPU (docs/precision.md): torch's CPU autocast around the forward passes and the losses, nothing else.

The model, its gradients, the optimizer's state and the checkpoints stay float32: autocast casts per operation,
so matrix products (linear layers, attention) run in bfloat16 and everything else (layer norms, residual sums,
softmaxes of the losses) in the dtype of its inputs. The loss terms take their logits ``.float()`` before any
(log-)softmax; the few terms that multiply matrices of their own run under ``full_precision()``.

Refused, one line and exit status 2: on a CPU without bf16 instructions (emulated bf16 is slower than float32),
and on a GPU or with fairseq's ``--fp16``/``--bf16``/``--amp`` (fairseq's own flags are for those).
``STABLETUNE_CPU_BF16=0`` makes this machine count as one without bf16, ``=1`` as one with it (the tests of the
refusal; a CPU whose support torch cannot see).
"""

from __future__ import annotations

import contextlib
import os
import platform

import torch

from ..reliability.exit_status import BadInput

PRECISIONS = ("fp32", "bf16")
CPU_BF16_ENV = "STABLETUNE_CPU_BF16"
HELP = (
    "fp32, or bf16: matrix products in bfloat16 under torch's CPU autocast, weights, optimizer state and "
    "checkpoints in float32 (docs/precision.md); refused on a CPU without bf16 instructions and on a GPU"
)


class PrecisionUnsupported(BadInput, ValueError):
    """A precision this machine or this run cannot use."""


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively: AVX512-BF16 or AMX on x86, the BF16 extension on ARM (as oneDNN
    reports it). ``STABLETUNE_CPU_BF16`` (0 or 1), when set, is the answer instead."""
    override = os.environ.get(CPU_BF16_ENV)
    if override is not None:
        if override not in ("0", "1"):
            raise PrecisionUnsupported(f"{CPU_BF16_ENV}={override!r}: 0 (no bf16 on this CPU) or 1 (bf16), or unset")
        return override == "1"
    for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):  # private, hence looked up
        if getattr(torch.cpu, check, lambda: False)():
            return True
    return (
        platform.machine().lower() in ("aarch64", "arm64")
        and torch.backends.mkldnn.is_available()
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def check_precision(
    precision: str, option: str, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> None:
    """Refuse ``precision`` (given as ``option``) where it cannot run: bf16 on a CPU without bf16 instructions,
    on a GPU ``device``, or on a model that is not float32 (fairseq's --fp16/--bf16)."""
    if precision not in PRECISIONS:
        raise PrecisionUnsupported(f"{option} {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    if device is not None and torch.device(device).type != "cpu":
        raise PrecisionUnsupported(
            f"{option} bf16 is bf16 on the CPU; on {device} use fairseq's --bf16 or --fp16 (training), or add --cpu"
        )
    if dtype != torch.float32:
        raise PrecisionUnsupported(
            f"{option} bf16 keeps a float32 model and casts per operation; this model is in "
            f"{dtype} (fairseq's --fp16/--bf16): use one or the other"
        )
    if not cpu_has_bf16():
        raise PrecisionUnsupported(
            f"{option} bf16: this CPU has no bf16 instructions (AVX512-BF16, AMX or ARM BF16), "
            "emulated bf16 would be slower than fp32: use fp32"
        )


def autocast(precision: str):
    """The context that runs ``precision``: CPU autocast to bfloat16 for bf16, nothing for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def full_precision():
    """Operations inside run in their inputs' dtype even under CPU autocast: for loss terms whose own matrix
    products must stay float32 (cosine similarities divided by a small temperature)."""
    return torch.autocast("cpu", enabled=False)
