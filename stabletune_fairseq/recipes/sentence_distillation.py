"""run_distill_embeddings.sh's command: multilingual distillation of sentence embeddings (docs/embeddings.md),
defaults from ``defaults.EMBEDDING_DISTILLATION``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from .defaults import EMBEDDING_DISTILLATION as D
from .devices import depth_args, gpu_count, inspect_model, precision_args
from .plan import Invocation, Plan, RecipeError, parse_settings, positive_int, refuse_save_dir_in_use
from .updates import count_for_recipe, shown_per_epoch

SCRIPT = "run_distill_embeddings.sh"
DEFAULT_PREFIX = "__default__"  # "query: " when the teacher is multilingual-e5, else ""
TATOEBA_SELECT = ("tatoeba_x_to_en", "tatoeba_en_to_x")  # MTEB's direction, XTREME's


def setting_defaults() -> dict[str, str]:
    return {
        "TEACHER": "",
        "TEACHER_BANK": "",
        "LR": D.lr,
        "BSZ": D.batch,
        "EPOCHS": D.epochs,
        "MAX_UPDATE": "",
        "WARMUP": "",
        "WEIGHT_DECAY": D.weight_decay,
        "CLIP": D.clip,
        "SEED": "1",
        "UPDATE_FREQ": "1",
        "NPROC": "",
        "ARCH": "",
        "POOLING": D.pooling,
        "PREFIX": DEFAULT_PREFIX,
        "CON_WEIGHT": D.contrastive_weight,
        "CON_T": D.contrastive_temperature,
        "MCL_WEIGHT": "0",
        "TARGET_TEACHER": "source",
        "TEACHER_LAYERS": "",
        "EVAL_STS": "",
        "EVAL_TATOEBA": "",
        "SELECT": "",
        "VALIDATE_INTERVAL_UPDATES": D.validate_interval,
        "FREEZE_EMBEDDINGS": "0",
        "PRECISION": "auto",
        "DRY_RUN": "0",
    }


def fail(message: str) -> RecipeError:
    return RecipeError(f"{SCRIPT}: {message}")


def _is_e5(teacher: str) -> bool:
    """multilingual-e5 expects "query: " for symmetric tasks (its model card): its conversion.json says so."""
    try:
        with open(os.path.join(os.path.dirname(teacher), "conversion.json"), encoding="utf-8") as handle:
            return re.search(r"e5-small|multilingual-e5", handle.read(), re.IGNORECASE) is not None
    except (OSError, UnicodeDecodeError):
        return False


def _make_bank(teacher: str, data: str, bank: str, dry_run: bool, say: Callable[[str], None]) -> None:
    """The teacher's sentence bank of ``data``, written unless ``bank`` holds one (its checks against the run are the
    criterion's, when training starts)."""
    if os.path.isfile(os.path.join(bank, "bank.json")):
        say(f"{SCRIPT}: teacher bank {bank} exists (checked against the data and the teacher when training starts)")
        return
    if dry_run:
        say(f"{SCRIPT}: would write the teacher bank {bank} (stabletune-sentence-bank --teacher {teacher} ...)")
        return
    from ..embeddings.sentence_bank import make_sentence_bank
    from ..reliability.checkpoint_safety import WrongCheckpoint

    say(f"{SCRIPT}: writing the teacher bank {bank}: {teacher} embeds every source sentence of {data}")
    try:
        make_sentence_bank(teacher, data, bank)
    except (WrongCheckpoint, FileNotFoundError, ValueError) as error:
        raise fail(f"the teacher bank {bank}: {error}") from None


def default_prefix(teacher: str) -> str:
    """PREFIX='s default: "query: " for a multilingual-e5 teacher, else none (run_compress_embeddings.sh keeps the
    one of its teacher for every stage, whose teacher may be the assistant)."""
    return D.e5_prefix if _is_e5(teacher) else ""


def build(
    model: str,
    data: str,
    save_dir: str,
    words: list[str],
    how: Invocation,
) -> Plan:
    """``run_distill_embeddings.sh <student.pt> <data_dir> <save_dir> TEACHER=<teacher.pt> [KEY=VALUE ...]
    [-- fairseq args]``."""
    s, extra = parse_settings(words, setting_defaults(), SCRIPT, how.header)
    teacher = s["TEACHER"]
    if not os.path.exists(model):
        raise fail(f"student model '{model}' not found")
    if not teacher:
        raise fail("TEACHER=<sentence encoder model.pt> is required (e.g. .cache/e5-small/model.pt)")
    own_tokenizer = not os.path.isfile(teacher)  # a sentence-transformers folder or an installed package of one
    if own_tokenizer:
        from ..embeddings.hf_teacher import resolve_teacher_folder
        from ..reliability.checkpoint_safety import WrongCheckpoint

        try:
            resolve_teacher_folder(teacher)
        except WrongCheckpoint as error:
            raise fail(
                f"TEACHER={teacher}: not a model.pt of ours, a sentence-transformers folder or an installed package "
                f"of one ({error})"
            ) from None
    metadata = os.path.join(data, "metadata.json")
    if not os.path.isfile(metadata):
        raise fail(
            f"'{data}' has no metadata.json (run: bash preprocess/xtreme/process.sh <folder> parallel "
            "<model-dir> <out>)"
        )
    with open(metadata, encoding="utf-8", errors="replace") as handle:
        if '"kind": "parallel_sentences"' not in handle.read():
            raise fail(f"{data} is not parallel sentences (process.sh <folder> parallel ...)")
    if s["POOLING"] not in ("mean", "cls"):
        raise fail(f"POOLING must be mean or cls (got '{s['POOLING']}')")
    for key in ("EVAL_STS", "EVAL_TATOEBA"):
        if s[key] and not os.path.isdir(s[key]):
            raise fail(f"{key}={s[key]}: not a folder")
    prefix = s["PREFIX"]
    if prefix == DEFAULT_PREFIX:
        prefix = "" if own_tokenizer else default_prefix(teacher)
    select = s["SELECT"] or ("sts_spearman" if s["EVAL_STS"] else "tatoeba_x_to_en" if s["EVAL_TATOEBA"] else "mse_tgt")
    if select == "tatoeba_acc":
        raise fail(
            "SELECT=tatoeba_acc is now named by its direction: tatoeba_x_to_en (the same number: sources searched "
            "among the English, MTEB's direction) or tatoeba_en_to_x (XTREME's direction)"
        )
    if select == "sts_spearman" and not s["EVAL_STS"]:
        raise fail("SELECT=sts_spearman needs EVAL_STS=<folder>")
    if select in TATOEBA_SELECT and not s["EVAL_TATOEBA"]:
        raise fail(f"SELECT={select} needs EVAL_TATOEBA=<folder>")
    if select not in ("sts_spearman", *TATOEBA_SELECT, "mse_tgt", "mse_src", "loss"):
        raise fail(
            f"SELECT must be sts_spearman, {', '.join(TATOEBA_SELECT)}, mse_tgt, mse_src or loss (got '{select}')"
        )
    maximize = ["--maximize-best-checkpoint-metric"] if select in ("sts_spearman", *TATOEBA_SELECT) else []

    bank = s["TEACHER_BANK"] or os.path.join(save_dir, "teacher-bank")
    if not own_tokenizer and s["TEACHER_BANK"]:
        raise fail("TEACHER_BANK= is for a teacher with its own tokenizer (a sentence-transformers folder or package)")
    arch, arch_args = s["ARCH"], []
    if not arch:  # the student's architecture and depth from model.pt, its vocabulary checked against the data's
        arch, layers, _, compressed = inspect_model(
            model,
            os.path.join(data, "dict.txt"),
            f"{SCRIPT}: cannot use {model} as the student (see above; or set ARCH=)",
        )
        arch_args = depth_args(arch, layers) + compressed  # a compressed student's options
    ngpu = gpu_count()
    batch, update_freq = positive_int(s, "BSZ", SCRIPT), positive_int(s, "UPDATE_FREQ", SCRIPT)
    precision, cpu_line = precision_args(s["PRECISION"], ngpu, SCRIPT)
    if ngpu > 0:
        world = positive_int(s, "NPROC", SCRIPT) if s["NPROC"] else ngpu
        device_args = (
            precision + ["--num-workers", "2"] + (["--distributed-world-size", str(world)] if world > 1 else [])
        )
    else:
        world = 1
        how.say(f"{SCRIPT}: {cpu_line}")
        device_args = ["--cpu", "--num-workers", "0"] + precision
    optional = []
    if s["EVAL_STS"]:
        optional += ["--eval-sts", s["EVAL_STS"]]
    if s["EVAL_TATOEBA"]:
        optional += ["--eval-tatoeba", s["EVAL_TATOEBA"]]
    # the multi-stage framework's stages (docs/compressed-students.md); absent from the command when off
    if s["TARGET_TEACHER"] not in ("source", "self"):
        raise fail(f"TARGET_TEACHER must be source or self (got '{s['TARGET_TEACHER']}')")
    if s["MCL_WEIGHT"] not in ("0", "0.0"):
        optional += ["--mcl-weight", s["MCL_WEIGHT"]]
    if s["TARGET_TEACHER"] != "source":
        optional += ["--target-teacher", s["TARGET_TEACHER"]]
    if s["TEACHER_LAYERS"]:
        if not s["TEACHER_LAYERS"].isdigit():
            raise fail(f"TEACHER_LAYERS must be a number of layers, 0 or more (got '{s['TEACHER_LAYERS']}')")
        optional += ["--teacher-layers", s["TEACHER_LAYERS"]]
    if s["FREEZE_EMBEDDINGS"] != "0":
        optional.append("--freeze-embeddings")
    every = s["VALIDATE_INTERVAL_UPDATES"]
    if every != "0":
        optional += [
            "--validate-interval-updates",
            every,
            "--save-interval-updates",
            every,
            "--keep-interval-updates",
            "2",
        ]
    stop_args = ["--max-epoch", s["EPOCHS"]] + (["--max-update", s["MAX_UPDATE"]] if s["MAX_UPDATE"] else [])
    train_args = [
        data,
        "--user-dir",
        how.user_dir,
        "--task",
        "sentence_distillation",
        "--prefix",
        prefix,
        "--pooling",
        s["POOLING"],
        *optional,
        "--arch",
        arch,
        *arch_args,
        "--pretrained-encoder",
        model,
        "--criterion",
        "sentence_distillation",
        "--teacher",
        teacher,
        *(["--teacher-bank", bank] if own_tokenizer else []),
        "--contrastive-weight",
        s["CON_WEIGHT"],
        "--contrastive-temperature",
        s["CON_T"],
        "--batch-size",
        s["BSZ"],
        "--update-freq",
        s["UPDATE_FREQ"],
        "--seed",
        s["SEED"],
        "--optimizer",
        "fused_adamw",
        "--adam-betas",
        "(0.9,0.999)",
        "--adam-eps",
        "1e-8",
        "--weight-decay",
        s["WEIGHT_DECAY"],
        "--clip-norm",
        s["CLIP"],
        "--lr",
        s["LR"],
        "--lr-scheduler",
        "polynomial_decay",
        "--end-learning-rate",
        "0.0",
        *stop_args,
        "--valid-subset",
        "valid",
        "--best-checkpoint-metric",
        select,
        *maximize,
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
    refuse_save_dir_in_use(save_dir, s["DRY_RUN"])
    if own_tokenizer:  # before training, once: the teacher never runs during it
        _make_bank(teacher, data, bank, s["DRY_RUN"] != "0", how.say)
    rows, per_epoch, total = count_for_recipe(
        train_args, f"{SCRIPT}: cannot count the training batches of {data} (see above)"
    )
    warmup = s["WARMUP"] or str(min(total // 10, D.warmup_max))
    command = [
        how.fairseq_train,
        *train_args,
        "--total-num-update",
        str(total),
        "--warmup-updates",
        warmup,
    ]
    info = (
        f"{SCRIPT}: {rows} training rows, {shown_per_epoch(per_epoch)} updates per epoch, {total} updates (warm-up "
        f"{warmup}), effective batch {batch * update_freq * world}, prefix '{prefix}', {s['POOLING']} pooling, "
        f"checkpoint selection by {select}"
    )
    return Plan(command, info, {"NGPU": str(ngpu), "DRY_RUN": s["DRY_RUN"]})
