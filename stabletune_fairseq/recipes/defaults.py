"""Per-task recipe defaults, each row with its source: the one table the recipes in ``run_scripts/`` read.

Values that reach the ``fairseq-train`` command as they are (learning rates, lambdas the command passes on
unchanged) are kept as the reference writes them (``"7e-6"``, not ``7e-06``). xTune's scripts are cited as
``<setting>/train_<task>.sh:<line>`` of github.com/bozheng-hit/xTune ``scripts/``; AMOS's as
microsoft/AMOS ``fairseq/README.md``.

Standard library only: ``python stabletune_fairseq/recipes/defaults.py squad2`` prints run_squad.sh's settings.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

XTUNE = "xTune scripts/"  # github.com/bozheng-hit/xTune
AMOS_TABLE = "AMOS fairseq/README.md:52-58 (GLUE, base++ best settings; WARMUP is the reciprocal of the ratio)"
NO_WARMUP = "--warmup_steps -1, which run_cls.py:604 passes to the scheduler as it is: no warm-up"
TEN_PERCENT_WARMUP = "--warmup_steps -1, read as a 10% warm-up (run_tag.py:752-754, run_qa.py:789-791)"


@dataclass(frozen=True)
class TaskDefaults:
    """One task of run_xtreme.sh (XTREME's, SQuAD's or GLUE's)."""

    fairseq_task: str
    metric: str  # the selection metric; GLUE's names its dev subset too (acc_en, MNLI's acc_m)
    epochs_base: int
    epochs_large: int
    lr_base: str
    lr_large: str
    batch: int  # the effective batch, split over processes and UPDATE_FREQ
    warmup_ratio: float
    validate_interval: str  # updates between validations; "0": epoch ends only; "half": twice an epoch
    pooling: str | None  # tagging: how a word's sub-tokens make its state
    source: str

    def lr(self, architecture: str) -> str:
        return self.lr_large if "large" in architecture else self.lr_base

    def epochs(self, architecture: str) -> int:
        return self.epochs_large if "large" in architecture else self.epochs_base


@dataclass(frozen=True)
class XtuneDefaults:
    """xTune's two stages for one task and setting: the augmentations, their probability, lambda2."""

    stage1_view: str
    view_prob: float | None  # the views' probability (stage 1's and stage 2's); None for translation views
    stage2_copy: str
    stage2_view: str
    lambda2: float  # reference convention (KL averaged over classes), or a per-unit cross-entropy when hard
    r2_hard: bool  # R2 on the teacher's argmax (PAN-X), not its distribution
    source: str


def _xtreme(task, metric, epochs, lrs, warmup, validate, pooling, script, lines, warmup_source):
    return TaskDefaults(
        task,
        metric,
        epochs[0],
        epochs[1],
        lrs[0],
        lrs[1],
        32,
        warmup,
        validate,
        pooling,
        f"{XTUNE}cross-lingual-transfer/train_{script}.sh:{lines}; batch 32; {warmup_source}",
    )


def _glue(metric, epochs, lr, batch, warmup, note=""):
    return TaskDefaults(
        "glue",
        metric,
        epochs,
        epochs,
        lr,
        lr,
        batch,
        warmup,
        "half",
        None,
        f"{AMOS_TABLE}{note}; validation twice an epoch as AMOS's run_glue.sh",
    )


@dataclass(frozen=True)
class TokenCap:
    """GLUE's batches as AMOS makes them: at most ``per_16 * BSZ / 16`` tokens (padding included) as well as BSZ
    rows, so batches of long pairs hold fewer rows; batch sizes not rounded to a multiple of 8."""

    per_16: int = 2200
    source: str = (
        "AMOS fairseq/run_glue.sh:34 (MAX_TOKENS=2200), :118 (MAX_TOKENS*BSZ/16), :138-139 "
        "(--max-sentences $BSZ --max-tokens $MAX_TOKENS), :143 (--required-batch-size-multiple 1)"
    )

    def tokens(self, batch: int, longest_row: int) -> int:
        """The cap for ``batch`` rows a process, raised to ``longest_row`` so that every row fits a batch (AMOS's
        BSZ >= 4 always does at 512 positions; fairseq refuses a row above the cap)."""
        return max(self.per_16 * batch // 16, longest_row)


GLUE_TOKEN_CAP = TokenCap()

_QA = ("f1", (4, 4), ("3e-5", "1.5e-5"), 0.1, "0", None)
TASKS: dict[str, TaskDefaults] = {
    "XNLI": _xtreme(
        "xtreme_sentence", "acc", (10, 10), ("7e-6", "5e-6"), 0.0, "5000", None, "xnli", "29-43", NO_WARMUP
    ),
    "PAWSX": _xtreme(
        "xtreme_sentence", "acc", (10, 10), ("1e-5", "1e-5"), 0.0, "1000", None, "pawsx", "29-43", NO_WARMUP
    ),
    "UDPOS": _xtreme(
        "xtreme_tagging", "f1", (10, 10), ("2e-5", "5e-6"), 0.1, "500", "sum", "udpos", "28-44", TEN_PERCENT_WARMUP
    ),
    "PANX": _xtreme(
        "xtreme_tagging", "f1", (10, 10), ("1e-5", "7e-6"), 0.1, "1000", "first", "panx", "28-44", TEN_PERCENT_WARMUP
    ),
    "XQUAD": _xtreme("xtreme_qa", *_QA, "xquad", "32-48 (no EVALUATE_STEPS: epoch ends)", TEN_PERCENT_WARMUP),
    "MLQA": _xtreme("xtreme_qa", *_QA, "mlqa", "34-50 (no EVALUATE_STEPS: epoch ends)", TEN_PERCENT_WARMUP),
    # SQuAD as XQuAD's training set (run_squad.sh overrides these with AMOS's SQuAD 2.0 settings, SQUAD2 below)
    "SQUAD": _xtreme("xtreme_qa", *_QA, "xquad", "32-48 (XQuAD trains on SQuAD)", TEN_PERCENT_WARMUP),
    "TYDIQA": _xtreme(
        "xtreme_qa",
        "f1",
        (20, 10),
        ("3e-5", "1.5e-5"),
        0.1,
        "0",
        None,
        "tydiqa",
        "31-48 (EPOCH 20 base, 10 large)",
        TEN_PERCENT_WARMUP,
    ),
    "MNLI": _glue("acc_m", 3, "1e-5", 32, 0.0625, " (MNLI-m; mm's best is kept too)"),
    "QQP": _glue("acc_en", 5, "2e-5", 32, 0.0625),
    "QNLI": _glue("acc_en", 3, "2e-5", 32, 0.0625),
    "SST2": _glue("acc_en", 5, "1e-5", 32, 0.0625),
    "COLA": _glue("mcc_en", 10, "2e-5", 32, 0.1),
    "RTE": _glue("acc_en", 5, "4e-5", 32, 0.1),
    "WNLI": _glue("acc_en", 5, "4e-5", 32, 0.1, " (WNLI is not in it: RTE's)"),
    "MRPC": _glue("acc_en", 10, "4e-5", 32, 0.0625),
    "STSB": _glue("pearson_spearman_en", 10, "4e-5", 16, 0.0625),
}

CLT, TTA = "cross-lingual-transfer", "translate-train-all"
SETTINGS = (CLT, TTA)
CS, SS, MT = "code_switch", "subword_sampling", "translation"


def _xtune(view1, prob, copy2, view2, lambda2, script, lines, hard=False):
    return XtuneDefaults(view1, prob, copy2, view2, lambda2, hard, f"{XTUNE}{script}.sh:{lines}")


_QA_CLT = _xtune(CS, 0.3, SS, SS, 5.0, "cross-lingual-transfer/train_xquad", "38-40, 83, 121, 128")
_QA_TTA = _xtune(CS, 0.3, MT, SS, 0.1, "translate-train-all/train_xquad", "38-40, 83, 121, 128")
XTUNE_STAGES: dict[tuple[str, str], XtuneDefaults] = {
    ("XNLI", CLT): _xtune(CS, 0.3, CS, CS, 5.0, "cross-lingual-transfer/train_xnli", "33-35, 115, 122"),
    ("PAWSX", CLT): _xtune(CS, 0.5, CS, CS, 2.0, "cross-lingual-transfer/train_pawsx", "33-35, 115, 122"),
    ("UDPOS", CLT): _xtune(SS, 0.5, SS, SS, 0.3, "cross-lingual-transfer/train_udpos", "32-36, 129, 135"),
    ("PANX", CLT): _xtune(SS, 0.3, SS, SS, 5.0, "cross-lingual-transfer/train_panx", "32-36, 127, 133, 136", True),
    ("XNLI", TTA): _xtune(MT, None, MT, MT, 1.0, "translate-train-all/train_xnli", "33-34, 110, 115"),
    ("PAWSX", TTA): _xtune(MT, None, MT, MT, 1.0, "translate-train-all/train_pawsx", "33-34, 110, 115"),
    ("UDPOS", TTA): _xtune(SS, 0.5, MT, SS, 0.3, "translate-train-all/train_udpos", "32-36, 129, 135"),
    ("PANX", TTA): _xtune(SS, 0.3, MT, SS, 1.0, "translate-train-all/train_panx", "32-36, 127, 133, 137", True),
    ("XQUAD", CLT): _QA_CLT,
    ("SQUAD", CLT): _QA_CLT,
    ("MLQA", CLT): _xtune(CS, 0.3, SS, SS, 5.0, "cross-lingual-transfer/train_mlqa", "40-42, 85, 123, 130"),
    ("TYDIQA", CLT): _xtune(SS, 0.3, SS, SS, 5.0, "cross-lingual-transfer/train_tydiqa", "33-37, 122, 129"),
    ("XQUAD", TTA): _QA_TTA,
    ("SQUAD", TTA): _QA_TTA,
    ("MLQA", TTA): _xtune(CS, 0.3, MT, SS, 0.5, "translate-train-all/train_mlqa", "40-42, 85, 123, 130"),
    ("TYDIQA", TTA): _xtune(SS, 0.3, MT, SS, 0.3, "translate-train-all/train_tydiqa", "33-37, 122, 129"),
}
R1_LAMBDA = 5.0  # every xTune script's R1_LAMBDA=5.0 (e.g. cross-lingual-transfer/train_xnli.sh:34)


@dataclass(frozen=True)
class Optimizer:
    adam_betas: str
    adam_eps: str
    weight_decay: str
    clip_norm: str
    source: str

    def args(self) -> list[str]:
        return [
            "--adam-betas",
            self.adam_betas,
            "--adam-eps",
            self.adam_eps,
            "--weight-decay",
            self.weight_decay,
            "--clip-norm",
            self.clip_norm,
        ]


OPTIMIZERS = {
    "xtune": Optimizer("(0.9,0.999)", "1e-8", "0.0", "1.0", "xTune src/run_cls.py: AdamW, no weight decay, clip 1.0"),
    "amos": Optimizer("(0.9,0.98)", "1e-6", "0.01", "0.0", "AMOS fairseq/run_glue.sh and run_squad.sh"),
}


@dataclass(frozen=True)
class RegulariserDefaults:
    rdrop_alpha: str = "1.0"  # R-Drop's --reg-alpha (dropreg/R-Drop)
    # Whose scale RDROP_ALPHA is on (per-row KL weights differ between R-Drop's three codes, docs/glue.md): "fairseq"
    # (fairseq_src's criterion, alpha/4), "hf" (huggingface_transformer_src's BERT, the paper's GLUE numbers:
    # alpha * B / 8) or "readme" (the README's snippet, alpha * B / 2)
    rdrop_scale: str = "fairseq"
    r3f_lambda: str = "1.0"  # fairseq examples/rxf: --r3f-lambda, --eps, --noise-type
    r3f_eps: str = "1e-5"
    r3f_noise: str = "uniform"


@dataclass(frozen=True)
class DistillationDefaults:
    """run_xtreme.sh DISTILL=: soft targets, Patient KD, contrastive distillation (docs/distillation.md)."""

    kd_temperature: str = "10"
    kd_alpha: str = "0.5"
    pkd_mu: str = "0"  # 100: Patient KD
    pkd_layers: str = "skip"
    contrastive_weight: str = "0"  # our in-batch InfoNCE (no reference): off
    contrastive_temperature: str = "0.07"
    lr: str = "5e-5"  # the BERT distillation recipes' (Patient KD: {1e-5, 2e-5, 5e-5})
    # BERT-gang's layer-wise contrast with bank negatives (github.com/ProFatXuanAll/BERT-gang at 2c67b94, before the
    # files were removed in d49457b). Off unless LCON_WEIGHT= or CON_STEPS= is set; the values are the reference's:
    layer_contrast_weight: str = "0"  # run_layerwise_contrast_distill.py --contrast_weight default 1 (when on: 1)
    layer_contrast_temperature: str = "0.07"  # doc/fine_tune_mnli.md:216 --contrast_temp 0.07 (also the default)
    layer_contrast_negatives: str = "20"  # doc/fine_tune_mnli.md:214 --neg_num 20 (layer-wise run)
    layer_contrast_layers: str = "all"  # run_layerwise_contrast_distill.py: membanks [step-1::step], last included
    contrast_steps: str = "0"  # doc/fine_tune_mnli.md:215 --contrast_steps 0 (its last-layer run: 98176)
    layer_contrast_soft_weight: str = "0.2"  # doc/fine_tune_mnli.md:218 --soft_label_weight 0.2 (our KD_ALPHA)
    layer_contrast_kd_t: str = "1"  # doc/fine_tune_mnli.md:217 --softmax_temp 1 (our KD_T)
    scl_lambda: str = "0"  # train_scl_from_ckpt.py: SCL alone is 1; distill_mgpu.py's ce_weights = 1 - lambda
    scl_temperature: str = "0.1"  # doc/fine_tune_mnli.md:232 --scl_temp 0.1


REGULARISERS = RegulariserDefaults()
DISTILLATION = DistillationDefaults()


@dataclass(frozen=True)
class Squad2Defaults:
    """run_squad.sh: AMOS's SQuAD 2.0 settings on top of run_xtreme.sh SQUAD."""

    epochs: int = 3
    batch: int = 16
    lr: str = "2e-5"
    warmup_ratio: str = "0.1"
    validate_interval: str = "half"
    optim: str = "amos"
    source: str = "AMOS fairseq/README.md (SQuAD 2.0: BSZ 16, LR 2e-5, EPOCH 3, WARMUP 10) and fairseq/run_squad.sh"

    def settings(self) -> list[str]:
        return [
            f"EPOCHS={self.epochs}",
            f"BSZ={self.batch}",
            f"LR={self.lr}",
            f"WARMUP_RATIO={self.warmup_ratio}",
            f"VALIDATE_INTERVAL_UPDATES={self.validate_interval}",
            f"OPTIM={self.optim}",
        ]


SQUAD2 = Squad2Defaults()


@dataclass(frozen=True)
class MlmDefaults:
    """run_mlm.sh: continued masked-LM training, after Longformer's conversion recipe (3000 updates, lr 3e-5,
    500 warm-up, 64 blocks a batch); RoBERTa's AdamW."""

    max_update: str = "3000"
    lr: str = "3e-5"
    warmup: str = "500"
    batch: str = "8"  # per process; 8 x UPDATE_FREQ 8 = 64 blocks
    update_freq: str = "8"
    mask_prob: str = "0.15"
    validate_interval: str = "500"
    optimizer: Optimizer = Optimizer("(0.9,0.98)", "1e-6", "0.01", "0.0", "RoBERTa's pretraining AdamW")


@dataclass(frozen=True)
class EmbeddingDistillationDefaults:
    """run_distill_embeddings.sh: Reimers & Gurevych 2020 (MSE, AdamW lr 2e-5, batch 64, 10k warm-up steps) and
    sentence-transformers' make_multilingual recipe (weight decay 0.01, clip 1.0, 5 epochs, evaluation every 1000
    steps)."""

    lr: str = "2e-5"
    batch: str = "64"
    epochs: str = "5"
    warmup_max: int = 10000  # capped at a tenth of the run, so that short runs reach the peak learning rate
    weight_decay: str = "0.01"
    clip: str = "1.0"
    pooling: str = "mean"
    contrastive_weight: str = "0"
    contrastive_temperature: str = "0.05"
    validate_interval: str = "1000"
    e5_prefix: str = "query: "  # multilingual-e5's model card: "query: " for symmetric tasks


MLM = MlmDefaults()
EMBEDDING_DISTILLATION = EmbeddingDistillationDefaults()


@dataclass(frozen=True)
class RowLength:
    """The tokens a stored row (or MLM block) holds by default, special tokens included: what ``process.sh`` cuts to
    (its ``MAX_LEN=``). Not the model's positions (``release.py``), which bound it."""

    tokens: int
    source: str


ROW_LENGTHS = {
    "xnli": RowLength(256, f"{XTUNE}cross-lingual-transfer/train_xnli.sh:30 (MAXL=256)"),
    "pawsx": RowLength(256, f"{XTUNE}cross-lingual-transfer/train_pawsx.sh:30 (MAXL=256)"),
    "udpos": RowLength(128, f"{XTUNE}cross-lingual-transfer/train_udpos.sh:29 (MAX_LENGTH=128)"),
    "panx": RowLength(128, f"{XTUNE}cross-lingual-transfer/train_panx.sh:29 (MAX_LENGTH=128)"),
    "xquad": RowLength(384, f"{XTUNE}cross-lingual-transfer/train_xquad.sh:33 (MAXL=384)"),
    "mlqa": RowLength(384, f"{XTUNE}cross-lingual-transfer/train_mlqa.sh:35 (MAXL=384)"),
    "tydiqa": RowLength(384, f"{XTUNE}cross-lingual-transfer/train_tydiqa.sh:31 (MAXL=384)"),
    "squad": RowLength(384, "as XQuAD and MLQA, which xTune trains on SQuAD v1.1 (train_xquad.sh:33)"),
    "glue": RowLength(512, "XLM-R's 512 positions: a GLUE row is cut only at the model's length"),
    "parallel": RowLength(128, "Reimers & Gurevych 2020 (max_seq_length 128)"),
    "mlm": RowLength(512, "XLM-R's 512 positions: a block fills the model (MAX_LEN= longer for an extended model)"),
}


if __name__ == "__main__":  # run by path from run_squad.sh: its settings, one a line
    if sys.argv[1:] != ["squad2"]:
        sys.exit("usage: python stabletune_fairseq/recipes/defaults.py squad2")
    print("\n".join(SQUAD2.settings()))
