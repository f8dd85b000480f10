"""run_xtreme.sh's command: (task, model, data, save dir, KEY=VALUE settings, fairseq args) -> the
``fairseq-train`` argv, the info line, and what bash needs to run it (docs/xtreme-tasks.md, docs/method.md).

Defaults come from ``defaults.py``; every check and message is the recipe's (``run_xtreme.sh: ...``)."""

from __future__ import annotations

import os

from . import defaults as table
from .devices import cpu_rank_args, depth_args, gpu_count, inspect_model, precision_args
from .plan import Invocation, Plan, RecipeError, parse_settings, positive_int, read_metadata, refuse_save_dir_in_use
from .updates import count_for_recipe, shown_per_epoch

SCRIPT = "run_xtreme.sh"
KNOWN_TASKS = "known: XNLI PAWSX UDPOS PANX XQUAD MLQA TYDIQA SQUAD, GLUE's COLA SST2 MRPC QQP STSB MNLI QNLI RTE WNLI"


def setting_defaults(task: table.TaskDefaults, interactive: bool) -> dict[str, str]:
    """Every KEY= run_xtreme.sh takes, with its default ("": chosen later, from the model or the task)."""
    reg, kd = table.REGULARISERS, table.DISTILLATION
    return {
        "SEED": "1",
        "LR": "",
        "EPOCHS": "",
        "MAX_UPDATE": "",
        "BSZ": "",
        "UPDATE_FREQ": "1",
        "NPROC": "",
        "SELECT": "avg",
        "ARCH": "",
        "VALID_LANGS": "",
        "FREEZE_EMBEDDINGS": "0",
        "SAVE_INTERVAL_UPDATES": "0",
        "WARMUP_RATIO": str(task.warmup_ratio),
        "VALIDATE_INTERVAL_UPDATES": task.validate_interval,
        "DRY_RUN": "0",
        "PROGRESS": "1" if interactive else "0",
        "STAGE": "0",
        "SETTING": table.CLT,
        "DICT_DIR": "",
        "DICT_LANGS": "",
        "TEACHER": "",
        "R1_LAMBDA": str(table.R1_LAMBDA),
        "R2_LAMBDA": "",
        "TENSORBOARD": "",
        "WANDB": "",
        "OPTIM": "",
        "REG": "none",
        "RDROP_ALPHA": reg.rdrop_alpha,
        "R3F_LAMBDA": reg.r3f_lambda,
        "R3F_EPS": reg.r3f_eps,
        "R3F_NOISE": reg.r3f_noise,
        "DISTILL": "",
        "KD_T": kd.kd_temperature,
        "KD_ALPHA": kd.kd_alpha,
        "PKD_MU": kd.pkd_mu,
        "PKD_LAYERS": kd.pkd_layers,
        "CON_WEIGHT": kd.contrastive_weight,
        "CON_T": kd.contrastive_temperature,
        "BANK": "",
        "INIT_FROM": "",
        "LCON_WEIGHT": kd.layer_contrast_weight,
        "LCON_T": kd.layer_contrast_temperature,
        "LCON_NEG": kd.layer_contrast_negatives,
        "LCON_LAYERS": kd.layer_contrast_layers,
        "LCON_ANY_ROW": "0",
        "CON_STEPS": kd.contrast_steps,
        "SCL_LAMBDA": kd.scl_lambda,
        "SCL_T": kd.scl_temperature,
        "MAX_TOKENS": "",
        "RDROP_SCALE": reg.rdrop_scale,
        "PRECISION": "auto",
    }


def number(value: str, key: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise RecipeError(f"{SCRIPT}: {key} must be a number (got '{value}')") from None


def _dict_langs(meta: dict, dict_dir: str) -> str:
    """The dev languages (not English) that have a dictionary in ``dict_dir``."""
    langs = sorted({s["language"] for n, s in meta["splits"].items() if n.startswith("valid_")} - {"en"})
    return ",".join(lang for lang in langs if os.path.isfile(os.path.join(dict_dir, f"en-{lang}.txt")))


def _augmentation_args(kind: str, prob, s: dict, meta: dict) -> list[str]:
    """The task options an augmentation needs."""
    if kind == table.CS:
        if not s["DICT_DIR"]:
            raise RecipeError(f"{SCRIPT}: code-switching needs DICT_DIR= (folder of MUSE en-<lang>.txt)")
        langs = s["DICT_LANGS"] or _dict_langs(meta, s["DICT_DIR"])
        if not langs:
            raise RecipeError(f"{SCRIPT}: no en-<lang>.txt in {s['DICT_DIR']} for the dev languages; set DICT_LANGS=")
        return ["--dict-dir", s["DICT_DIR"], "--dict-langs", langs, "--code-switch-prob", str(prob)]
    if kind == table.SS:
        return ["--subword-sampling-prob", str(prob)]
    if kind == table.MT and not meta.get("translations"):
        raise RecipeError(
            f"{SCRIPT}: SETTING=translate-train-all needs translations: run process.sh with "
            "TRANSLATIONS=<xtreme_translations>"
        )
    return []


def build(
    task_word: str,
    model: str,
    data: str,
    save_dir: str,
    words: list[str],
    how: Invocation,
) -> Plan:
    """The command of ``run_xtreme.sh TASK <model.pt> <data_dir> <save_dir> [KEY=VALUE ...] [-- fairseq args]``.
    ``header``: the script as invoked; ``say``: the recipe's progress lines (stdout)."""
    task_name = task_word.upper().replace("-", "")  # STS-B, sts-b: STSB
    if task_name not in table.TASKS:
        raise RecipeError(f"{SCRIPT}: unknown task '{task_name}' ({KNOWN_TASKS})")
    task = table.TASKS[task_name]
    s, extra = parse_settings(words, setting_defaults(task, how.interactive), SCRIPT, how.header)
    glue = task.fairseq_task == "glue"
    qa = task.fairseq_task == "xtreme_qa"

    if s["WANDB"]:
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            raise RecipeError(
                f"{SCRIPT}: WANDB={s['WANDB']} needs the wandb package, which is not installed "
                f"({how.python} -m pip install wandb)"
            )
    if not os.path.exists(model):
        raise RecipeError(f"{SCRIPT}: pretrained model '{model}' not found")
    if not os.path.isfile(os.path.join(data, "metadata.json")):
        raise RecipeError(
            f"{SCRIPT}: '{data}' has no metadata.json (run preprocess/xtreme/process.sh or "
            "preprocess/glue/process.sh first)"
        )
    if s["SELECT"] not in ("avg", "en"):
        raise RecipeError(f"{SCRIPT}: SELECT must be avg or en")
    if s["DISTILL"] and s["STAGE"] == "2":
        raise RecipeError(
            f"{SCRIPT}: DISTILL= with STAGE=2: stage 2's teacher is the stage-1 model; distil with STAGE=0 or 1"
        )
    meta, meta_text = read_metadata(data, SCRIPT)
    if glue:  # a GLUE folder of another task would train with this task's settings and metric
        held = meta.get("task") if meta.get("kind") == "glue" else meta.get("kind")
        if str(held) != task_name.lower():
            raise RecipeError(
                f"{SCRIPT}: {data} holds {held} data, not GLUE's {task_name} (give the task's folder, "
                f"e.g. <out>/{task_name})"
            )
        select = "task"  # GLUE: the task's own metric
    else:
        select = s["SELECT"]
        if select == "en" and '"valid_en"' not in meta_text:
            raise RecipeError(f"{SCRIPT}: SELECT=en needs an English dev set, and {data} has no valid_en (dev-en.tsv)")

    arch_args = []
    arch = s["ARCH"]
    if not arch:  # the architecture of model.pt; a shrunk student's depth; a longer position table
        arch, layers, positions, compressed = inspect_model(
            model,
            os.path.join(data, "dict.txt"),
            f"{SCRIPT}: cannot read the architecture of {model} (see above; or set ARCH=)",
        )
        arch_args = depth_args(arch, layers) + compressed + (["--max-positions", str(positions)] if positions else [])
    ngpu = gpu_count()
    lr = s["LR"] or (table.DISTILLATION.lr if s["DISTILL"] else task.lr(arch))
    epochs = s["EPOCHS"] or str(task.epochs(arch))

    update_freq = positive_int(s, "UPDATE_FREQ", SCRIPT)
    precision, cpu_line = precision_args(s["PRECISION"], ngpu, SCRIPT)
    if ngpu > 0:  # fairseq's own multi-GPU training (nccl, one process per GPU); NPROC= limits the GPUs used
        world = positive_int(s, "NPROC", SCRIPT) if s["NPROC"] else ngpu
        device_args = (
            precision + ["--num-workers", "2"] + (["--distributed-world-size", str(world)] if world > 1 else [])
        )
    else:
        world = positive_int(s, "NPROC", SCRIPT) if s["NPROC"] else 1
        how.say(f"{SCRIPT}: {cpu_line}")
        device_args = ["--cpu", "--num-workers", "0"] + (cpu_rank_args(world) if world > 1 else []) + precision
    # The reference batch is the effective batch: split it over the processes unless BSZ is given.
    batch = positive_int(s, "BSZ", SCRIPT) if s["BSZ"] else max(task.batch // (world * update_freq), 1)
    batch_args = ["--batch-size", str(batch)] + _token_cap_args(s, glue, batch, meta)

    if "train" not in meta["splits"]:
        raise RecipeError(
            f"{SCRIPT}: {os.path.join(data, 'metadata.json')} has no training split (prepared for evaluation only)"
        )
    # Without a labelled dev set (TyDiQA-GoldP: XTREME ships its dev answers blanked) there is no validation:
    # the last checkpoint is the result, and stage 2's teacher.
    selected = task.metric if select == "task" else f"{task.metric}_{select}"
    valid_args = ["--valid-subset", "valid", "--best-checkpoint-metric", selected, "--maximize-best-checkpoint-metric"]
    best = "checkpoint_best.pt"
    validate, save_interval = s["VALIDATE_INTERVAL_UPDATES"], s["SAVE_INTERVAL_UPDATES"]
    if '"valid_' not in meta_text:
        how.say(f"{SCRIPT}: {data} has no labelled dev set: validation off, the last checkpoint is the result")
        valid_args, best, validate = ["--disable-validation"], "checkpoint_last.pt", "0"
    elif select == "task":
        if task.metric == "acc_m":  # MNLI: the mismatched dev set's best checkpoint too (AMOS reports both)
            valid_args += ["--extra-best-metrics", "acc_mm"]
    else:  # the other selection rule is kept too (checkpoint_best_<metric>_<avg|en>.pt), for reports comparing them
        other = "en" if select == "avg" else "avg"
        if other == "avg" or '"valid_en"' in meta_text:
            valid_args += ["--extra-best-metrics", f"{task.metric}_{other}"]
    # Validation (and the best checkpoint) every N updates as well as at each epoch's end, as the reference
    # evaluates ("half": twice an epoch, set once the epoch's updates are counted, below).
    if validate not in ("0", "half"):
        valid_args += ["--validate-interval-updates", validate]
        if save_interval == "0":
            save_interval = validate
    stop_args = ["--max-epoch", epochs] + (["--max-update", s["MAX_UPDATE"]] if s["MAX_UPDATE"] else [])
    optional = []
    if s["FREEZE_EMBEDDINGS"] != "0":
        optional.append("--freeze-embeddings")
    if s["VALID_LANGS"]:
        optional += ["--valid-languages", s["VALID_LANGS"]]
    if task.pooling:
        optional += ["--pooling", task.pooling]
    if s["TENSORBOARD"]:
        optional += ["--tensorboard-logdir", s["TENSORBOARD"]]
    if s["WANDB"]:
        optional += ["--wandb-project", s["WANDB"]]

    run_dir = save_dir
    optional += _regulariser_args(s, bool(meta.get("regression")), batch)
    stage = s["STAGE"]
    if stage != "0" and glue:
        raise RecipeError(
            f"{SCRIPT}: xTune's stages are for XTREME's cross-lingual tasks; GLUE takes STAGE=0 (with "
            "REG= for a regulariser)"
        )
    if stage != "0":
        method = table.XTUNE_STAGES.get((task_name, s["SETTING"]))
        if method is None:
            raise RecipeError(
                f"{SCRIPT}: unknown SETTING '{s['SETTING']}' (cross-lingual-transfer or translate-train-all)"
            )
        # QA: the KL is over a window's positions, not classes; the reference lambdas are passed on as they are.
        classes = 1 if qa else len(meta["labels"])

        def per_class(value: str, key: str) -> str:
            return str(number(value, key) / classes)

        if stage == "1":
            optional += [
                "--view-augmentation",
                method.stage1_view,
                *_augmentation_args(method.stage1_view, method.view_prob, s, meta),
                "--r1-lambda",
                per_class(s["R1_LAMBDA"], "R1_LAMBDA"),
            ]
        elif stage == "2":
            if qa:  # the reference's QA recipes take the last stage-1 model as teacher; the others its best
                best = "checkpoint_last.pt"
            teacher = s["TEACHER"] or f"{save_dir}/{best}"
            if not os.path.exists(teacher):
                raise RecipeError(
                    f"{SCRIPT}: stage 2 needs the stage-1 teacher, and {teacher} does not exist (run "
                    "STAGE=1 first, or set TEACHER=)"
                )
            run_dir = f"{save_dir}/stage2"
            view_args = _augmentation_args(method.stage2_view, method.view_prob, s, meta)
            optional += [
                "--copy-augmentation",
                method.stage2_copy,
                "--view-augmentation",
                method.stage2_view,
                *view_args,
                "--r1-lambda",
                per_class(s["R1_LAMBDA"], "R1_LAMBDA"),
                "--teacher",
                teacher,
            ]
            if method.stage2_copy == table.MT:
                _augmentation_args(table.MT, None, s, meta)
            lambda2 = s["R2_LAMBDA"] or str(method.lambda2)
            # Hard labels make R2 a cross-entropy per unit, not a KL averaged over classes: no conversion.
            if method.r2_hard:
                optional += ["--r2-lambda", lambda2, "--r2-hard-labels"]
            else:
                optional += ["--r2-lambda", per_class(lambda2, "R2_LAMBDA")]
        else:
            raise RecipeError(f"{SCRIPT}: STAGE must be 0, 1 or 2")

    criterion = "stability_consistency"
    if s["DISTILL"]:  # distillation from a fine-tuned teacher (criterions/stability_distillation.py)
        if not os.path.exists(s["DISTILL"]):
            raise RecipeError(f"{SCRIPT}: DISTILL={s['DISTILL']}: no such teacher checkpoint")
        if s["BANK"] and not os.path.isfile(os.path.join(s["BANK"], "bank.json")):
            raise RecipeError(f"{SCRIPT}: BANK={s['BANK']} has no bank.json (write it with stabletune-teacher-bank)")
        criterion = "stability_distillation"
        optional += [
            "--teacher",
            s["DISTILL"],
            "--kd-alpha",
            s["KD_ALPHA"],
            "--kd-temperature",
            s["KD_T"],
            "--pkd-mu",
            s["PKD_MU"],
            "--pkd-layers",
            s["PKD_LAYERS"],
            "--contrastive-weight",
            s["CON_WEIGHT"],
            "--contrastive-temperature",
            s["CON_T"],
        ]
        if s["BANK"]:
            optional += ["--teacher-bank", s["BANK"]]
        if (
            number(s["LCON_WEIGHT"], "LCON_WEIGHT") > 0 or number(s["CON_STEPS"], "CON_STEPS") > 0
        ):  # BERT-gang's layer-wise contrast
            if not s["BANK"]:
                raise RecipeError(
                    f"{SCRIPT}: LCON_WEIGHT=/CON_STEPS= read the teacher's states from BANK= (stabletune-teacher-bank "
                    "--states)"
                )
            optional += ["--layer-contrast-weight", s["LCON_WEIGHT"], "--layer-contrast-temperature", s["LCON_T"]]
            optional += ["--layer-contrast-negatives", s["LCON_NEG"], "--layer-contrast-layers", s["LCON_LAYERS"]]
            optional += ["--contrast-steps", s["CON_STEPS"]] + (
                ["--layer-contrast-any-row"] if s["LCON_ANY_ROW"] == "1" else []
            )
        if number(s["SCL_LAMBDA"], "SCL_LAMBDA") > 0:
            optional += ["--scl-lambda", s["SCL_LAMBDA"], "--scl-temperature", s["SCL_T"]]

    if s["INIT_FROM"]:  # BERT-gang's train_kd_from_ckpt: start from a fine-tuned checkpoint, its head included
        if not os.path.isfile(s["INIT_FROM"]):
            raise RecipeError(f"{SCRIPT}: INIT_FROM={s['INIT_FROM']}: no such checkpoint")
        optional += ["--init-checkpoint", s["INIT_FROM"]]

    # Optimiser: xTune's AdamW, or AMOS's: GLUE's default, and run_squad.sh's.
    optim = s["OPTIM"] or ("amos" if glue else "xtune")
    if optim not in table.OPTIMIZERS:
        raise RecipeError(f"{SCRIPT}: OPTIM must be xtune or amos (got '{optim}')")
    train_args = [
        data,
        "--user-dir",
        how.user_dir,
        "--task",
        task.fairseq_task,
        "--arch",
        arch,
        *arch_args,
        "--criterion",
        criterion,
        "--pretrained-encoder",
        model,
        *optional,
        *batch_args,
        "--update-freq",
        s["UPDATE_FREQ"],
        "--seed",
        s["SEED"],
        "--optimizer",
        "fused_adamw",
        *table.OPTIMIZERS[optim].args(),
        "--lr",
        lr,
        "--lr-scheduler",
        "polynomial_decay",
        "--end-learning-rate",
        "0.0",
        *stop_args,
        *valid_args,
        "--save-dir",
        run_dir,
        "--no-epoch-checkpoints",
        "--log-format",
        "simple",
        "--log-interval",
        "10",
        *device_args,
        *extra,
    ]
    # One run per save dir: refuse a dir in use before touching it (fairseq-train takes the lock, in its first rank).
    refuse_save_dir_in_use(run_dir, s["DRY_RUN"])
    # The schedule is sized from the dataset this run trains on (stage 2: rows and their copies; QA: windows),
    # batched as fairseq will batch it.
    rows, per_epoch, total = count_for_recipe(
        train_args, f"{SCRIPT}: cannot count the training batches of {data} (see above)"
    )
    warmup = int(total * number(s["WARMUP_RATIO"], "WARMUP_RATIO"))
    command = [
        how.fairseq_train,
        *train_args,
        "--total-num-update",
        str(total),
        "--warmup-updates",
        str(warmup),
    ]
    if validate == "half" and valid_args[0] != "--disable-validation":
        half = max(per_epoch[0] // 2, 1)
        if save_interval == "0":
            save_interval = str(half)
        command += ["--validate-interval-updates", str(half)]
    command += ["--save-interval-updates", save_interval]
    # Interval checkpoints: keep the newest two, so a sound one remains if the newest copy is damaged by a crash.
    if save_interval != "0":
        command += ["--keep-interval-updates", "2"]
    info = (
        f"{SCRIPT}: {task_name} stage {stage} ({s['SETTING']}) on {rows} training rows, "
        f"{shown_per_epoch(per_epoch)} updates per epoch, {total} updates (warm-up {warmup}), effective batch "
        f"{batch * update_freq * world}, checkpoint selection by {selected}"
    )
    return Plan(
        command,
        info,
        {
            "RUN_DIR": run_dir,
            "NGPU": str(ngpu),
            "WORLD": str(world),
            "DRY_RUN": s["DRY_RUN"],
            "PROGRESS": s["PROGRESS"],
            "WANDB": s["WANDB"],
        },
    )


def _token_cap_args(s: dict, glue: bool, batch: int, meta: dict) -> list[str]:
    """MAX_TOKENS=: a cap on a batch's tokens as well as its rows (padding included). Default: GLUE's as AMOS's
    run_glue.sh (defaults.GLUE_TOKEN_CAP), the other tasks none; 0: rows only. A cap also stops fairseq rounding a
    batch's rows down to a multiple of 8, as AMOS passes --required-batch-size-multiple 1."""
    value = s["MAX_TOKENS"]
    if value == "":
        if not glue:
            return []
        cap = table.GLUE_TOKEN_CAP.tokens(batch, int(meta.get("max_positions") or 0))
    elif value == "0":
        return []
    else:
        cap = positive_int(s, "MAX_TOKENS", SCRIPT)
    return ["--max-tokens", str(cap), "--required-batch-size-multiple", "1"]


def _regulariser_args(s: dict, regression: bool, batch: int) -> list[str]:
    """Stability regularisers of plain fine-tuning (docs/glue.md): R1 with a view that keeps the row's tokens, in
    the references' form (the KL's gradient through both sides). R-Drop's loss, CE(pass 1) + CE(pass 2) +
    alpha/2 * (KL(p1||p2) + KL(p2||p1)), is twice our mean task loss over both passes + alpha/4 * R1 (Adam does not
    see the factor 2); its regression loss, MSE(pass 1) + alpha * (p1 - p2)^2, is ours with lambda = alpha. R3F's,
    CE + lambda * (KL + KL) on uniform noise added to the detached embeddings, is ours with lambda as it is."""
    reg = s["REG"]
    if reg == "none":
        return []
    if reg not in ("rdrop", "r3f"):
        raise RecipeError(f"{SCRIPT}: REG must be none, rdrop or r3f (got '{reg}')")
    if s["STAGE"] != "0":
        raise RecipeError(f"{SCRIPT}: REG={reg} is a regulariser of plain fine-tuning (STAGE=0), not of xTune's stages")
    if reg == "rdrop" and regression:  # one scale for regression: RDROP_SCALE is checked, alpha passed as it is
        rdrop_lambda(1.0, s["RDROP_SCALE"], batch)
        return ["--view-augmentation", "dropout", "--r1-full-gradient", "--r1-lambda", s["RDROP_ALPHA"]]
    if reg == "rdrop":
        return [
            "--view-augmentation",
            "dropout",
            "--r1-full-gradient",
            "--task-loss-on-views",
            "--r1-lambda",
            str(rdrop_lambda(number(s["RDROP_ALPHA"], "RDROP_ALPHA"), s["RDROP_SCALE"], batch)),
        ]
    return [
        "--view-augmentation",
        "noise",
        "--noise-type",
        s["R3F_NOISE"],
        "--noise-std",
        s["R3F_EPS"],
        "--noise-detached",
        "--r1-full-gradient",
        "--r1-lambda",
        s["R3F_LAMBDA"],
    ]


def rdrop_lambda(alpha: float, scale: str, batch: int) -> float:
    """Our --r1-lambda for R-Drop's alpha on one code's scale, B = ``batch`` rows a process. Ours is, per batch,
    mean_b (CE1 + CE2) / 2 + lambda * mean_b (KL12 + KL21), the KLs summed over classes; twice it is
    mean_b (CE1 + CE2) + (2 lambda / B) * sum_b (KL12 + KL21). fairseq: sum_b [CE1 + CE2 + alpha/2 (KL12 + KL21)],
    B times that: lambda = alpha/4. hf (modeling_bert.py's bert_kl): mean_b CE1 + mean_b CE2 +
    alpha/4 * sum_b (KL12 + KL21) (alpha = 1 there): lambda = alpha * B / 8. readme: (mean_b CE1 + mean_b CE2) / 2 +
    alpha/2 * sum_b (KL12 + KL21), once ours: lambda = alpha * B / 2."""
    if scale == "fairseq":
        return alpha / 4
    if scale == "hf":
        return alpha * batch / 8
    if scale == "readme":
        return alpha * batch / 2
    raise RecipeError(f"{SCRIPT}: RDROP_SCALE must be fairseq, hf or readme (got '{scale}')")
