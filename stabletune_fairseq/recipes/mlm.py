"""run_mlm.sh's command: continued masked-LM training of an encoder (docs/long-context.md), defaults from
``defaults.MLM``."""

from __future__ import annotations

import os

from .defaults import MLM
from .devices import depth_args, gpu_count, inspect_model, precision_args
from .plan import Invocation, Plan, RecipeError, parse_settings, positive_int, read_metadata

SCRIPT = "run_mlm.sh"


def setting_defaults() -> dict[str, str]:
    return {
        "MAX_UPDATE": MLM.max_update,
        "LR": MLM.lr,
        "WARMUP": MLM.warmup,
        "BSZ": MLM.batch,
        "UPDATE_FREQ": MLM.update_freq,
        "SEED": "1",
        "MASK_PROB": MLM.mask_prob,
        "MAX_POSITIONS": "",
        "ARCH": "",
        "VALIDATE_INTERVAL_UPDATES": MLM.validate_interval,
        "FREEZE_EMBEDDINGS": "0",
        "PRECISION": "auto",
        "DRY_RUN": "0",
        "ATTENTION_WINDOW": "",
    }


def build(
    model: str,
    data: str,
    save_dir: str,
    words: list[str],
    how: Invocation,
) -> Plan:
    """``run_mlm.sh <model.pt> <data_dir> <save_dir> [KEY=VALUE ...] [-- fairseq args]``."""
    s, extra = parse_settings(words, setting_defaults(), SCRIPT, how.header)
    if not os.path.exists(model):
        raise RecipeError(f"{SCRIPT}: pretrained model '{model}' not found")
    try:
        meta, _ = read_metadata(data, SCRIPT)
        kind, data_len, has_valid = meta.get("kind"), meta.get("max_positions"), "valid" in meta.get("splits", {})
    except (OSError, RecipeError, AttributeError):
        raise RecipeError(
            f"{SCRIPT}: '{data}' has no readable metadata.json (run preprocess/xtreme/process.sh "
            "<text-folder> mlm first)"
        ) from None
    if kind != "mlm":
        raise RecipeError(
            f"{SCRIPT}: {data} holds {kind} data, not text for masked-LM training (process.sh <text-folder> mlm)"
        )
    # Architecture, layers and positions of model.pt (release.py: no fairseq needed).
    found, layers, positions, _ = inspect_model(
        model,
        os.path.join(data, "dict.txt"),
        f"{SCRIPT}: cannot read the architecture of {model} (see above)",
        show_traceback=True,
    )
    positions = str(positions or 512)
    arch, arch_args = s["ARCH"], []
    if not arch:
        arch, arch_args = found, depth_args(found, layers)
    max_positions = s["MAX_POSITIONS"] or positions
    if max_positions != positions:
        raise RecipeError(
            f"{SCRIPT}: MAX_POSITIONS={max_positions}, but {model} has {positions} positions (make it "
            "longer first: stabletune-convert extend-positions)"
        )
    if int(data_len) > int(max_positions):
        raise RecipeError(
            f"{SCRIPT}: {data} holds blocks of {data_len} tokens, more than the {max_positions} positions of {model}"
        )
    batch, update_freq = positive_int(s, "BSZ", SCRIPT), positive_int(s, "UPDATE_FREQ", SCRIPT)
    ngpu = gpu_count()
    precision, cpu_line = precision_args(s["PRECISION"], ngpu, SCRIPT)
    if ngpu > 0:
        device_args = precision + ["--num-workers", "2"] + (["--distributed-world-size", str(ngpu)] if ngpu > 1 else [])
    else:
        how.say(f"{SCRIPT}: {cpu_line}")
        device_args = ["--cpu", "--num-workers", "0"] + precision
    if has_valid:
        every = s["VALIDATE_INTERVAL_UPDATES"]
        valid_args = [
            "--valid-subset",
            "valid",
            "--best-checkpoint-metric",
            "loss",
            "--validate-interval-updates",
            every,
            "--save-interval-updates",
            every,
            "--keep-interval-updates",
            "2",
        ]
    else:
        how.say(f"{SCRIPT}: {data} has no held-out split (VALID_EVERY=0): validation off")
        valid_args = ["--disable-validation"]
    optional = ["--freeze-embeddings"] if s["FREEZE_EMBEDDINGS"] != "0" else []
    window = s["ATTENTION_WINDOW"]
    if window and window != "0":  # Longformer continues MLM with its sliding window, no token global (heads.py)
        if positive_int(s, "ATTENTION_WINDOW", SCRIPT) % 2:
            raise RecipeError(f"{SCRIPT}: ATTENTION_WINDOW must be even (W/2 tokens on each side; got '{window}')")
        optional += ["--attention-window", window]
    command = [
        how.fairseq_train,
        data,
        "--user-dir",
        how.user_dir,
        "--task",
        "stabletune_mlm",
        "--criterion",
        "stabletune_mlm",
        "--mask-prob",
        s["MASK_PROB"],
        "--arch",
        arch,
        *arch_args,
        "--max-positions",
        max_positions,
        "--pretrained-encoder",
        model,
        *optional,
        "--batch-size",
        s["BSZ"],
        "--update-freq",
        s["UPDATE_FREQ"],
        "--seed",
        s["SEED"],
        "--optimizer",
        "fused_adamw",
        *MLM.optimizer.args(),
        "--lr",
        s["LR"],
        "--lr-scheduler",
        "polynomial_decay",
        "--end-learning-rate",
        "0.0",
        "--warmup-updates",
        s["WARMUP"],
        "--total-num-update",
        s["MAX_UPDATE"],
        "--max-update",
        s["MAX_UPDATE"],
        *valid_args,
        "--save-dir",
        save_dir,
        "--no-epoch-checkpoints",
        "--log-format",
        "simple",
        "--log-interval",
        "10",
        *device_args,
        *extra,
    ]
    info = (
        f"{SCRIPT}: masked LM on {data} (blocks of up to {data_len} tokens), {s['MAX_UPDATE']} updates, "
        f"effective batch {batch * update_freq * max(ngpu, 1)} blocks"
    )
    if window and window != "0":
        info += f", sliding-window attention of {window} tokens"
    return Plan(command, info, {"NGPU": str(ngpu), "DRY_RUN": s["DRY_RUN"]})
