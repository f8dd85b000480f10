"""``sentence_distillation``: multilingual knowledge distillation of sentence embeddings (docs/embeddings.md).

Reimers & Gurevych 2020 ("Making monolingual sentence embeddings multilingual using knowledge distillation"): a
frozen teacher M embeds the source sentence s; the student M^ learns M^(s) ~ M(s) and M^(t) ~ M(s) for its
translation t:

    loss = 1/|B| sum_rows [ MSE(M^(s), M(s)) + [pair] MSE(M^(t), M(s)) ] + w * CON

MSE is the mean over the embedding's dimensions; a source-only row has the first term only. CON (optional) is a
symmetric in-batch InfoNCE between the student's embeddings of the sources and of their translations (cosine /
temperature; every other pair of the batch a negative), a mean over the batch's pairs. It uses no teacher and is not
the multi-stage framework's MCL (an MSE between the teacher's and the student's cosine similarities, no temperature).
The framework's MCL is ``--mcl-weight`` (``mcl_terms.py``: the teacher's source-source cosines
against the student's source-translation cosines, squared, 1:1:1 with the MSE terms at weight 1). For the framework's
stages 2 and 3 (docs/compressed-students.md) ``--target-teacher self`` compares M^(t) with the teacher's (the
assistant's) embedding of t itself, and ``--teacher-layers 0`` pools the teacher's embedding layer's output.

With ``--teacher-bank`` the teacher's embeddings of the sources come from a sentence bank
(``embeddings/sentence_bank.py``, written by ``stabletune-sentence-bank``): a teacher with its own tokenizer, such as
the English all-MiniLM-L6-v2 Reimers & Gurevych distil, embedded every stored source row once; batches look their
rows up by id (training rows while the model trains, validation rows in eval mode), checked against the bank.

Without a bank the teacher is any sentence encoder ``stabletune-embed-eval`` reads (a release ``model.pt`` such as
the embedded e5-small, or a fine-tuned checkpoint), with the data's vocabulary, frozen in eval mode; it runs live on
every row's source, training and validation, without gradients, with the task's prefix and pooling. It is not saved
with the student. A student narrower than the teacher is compared through a learned projection (a parameter of
this criterion, trained with the student and saved in checkpoint_last.pt, not in the student's weights).
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from ..embeddings.encoder import load_encoder
from ..models.pooling_head import embed, pool_states
from ..models.precision import full_precision
from ..models.teacher import freeze_teacher
from ..reliability.checkpoint_safety import WrongCheckpoint
from ..reliability.run_identity import vocabulary_hash
from .mcl_terms import mcl_loss

logger = logging.getLogger(__name__)


@dataclass
class SentenceDistillationCriterionConfig(FairseqDataclass):
    teacher: Optional[str] = field(
        default=None,
        metadata={
            "help": "the frozen teacher: a sentence encoder with the data's vocabulary (a release model.pt with "
            "dict.txt "
            "and the sentencepiece model beside it, e.g. the embedded e5-small, or a fine-tuned checkpoint)"
        },
    )
    teacher_bank: Optional[str] = field(
        default=None,
        metadata={
            "help": "a sentence bank (stabletune-sentence-bank): the embeddings of every stored source row by a "
            "teacher with its own tokenizer (e.g. all-MiniLM-L6-v2), used instead of running --teacher; "
            "--teacher, when given too, must be the bank's teacher (its weights' sha256 is compared)"
        },
    )
    no_projection: bool = field(
        default=False,
        metadata={
            "help": "refuse a teacher of another width than the student's instead of learning a linear projection "
            "(student -> teacher width) to compare them"
        },
    )
    contrastive_weight: float = field(
        default=0.0,
        metadata={
            "help": "weight of a symmetric in-batch InfoNCE between the student's source and target embeddings (no "
            "teacher; not the multi-stage framework's MCL); 0: MSE distillation alone, as Reimers & Gurevych"
        },
    )
    contrastive_temperature: float = field(
        default=0.05,
        metadata={
            "help": "temperature of the InfoNCE over cosine similarities (0.05: sentence-transformers' "
            "MultipleNegativesRankingLoss scale 20)"
        },
    )
    mcl_weight: float = field(
        default=0.0,
        metadata={
            "help": "weight of the multi-stage framework's MCL term (criterions/mcl_terms.py: MSE between the "
            "teacher's source-source and the student's source-translation cosine matrices); 1: the framework's "
            "1:1:1 with the two MSE terms (rec_bottle_mcl.py l.203); 0: off"
        },
    )
    target_teacher: ChoiceEnum(["source", "self"]) = field(
        default="source",
        metadata={
            "help": "what the student's translation embedding M^(t) is compared with: source, the teacher's "
            "embedding of the source M(s) (Reimers & Gurevych; the framework's stages 1 and 4); self, the teacher's "
            "embedding of t itself (the framework's stages 2 and 3, which align each sentence with the assistant's "
            "embedding of it: parallel_all_distill_dataset.py l.149-155)"
        },
    )
    teacher_layers: Optional[int] = field(
        default=None,
        metadata={
            "help": "pool the teacher's states after this many layers (0: its embedding layer's output, the "
            "framework's stage 2, whose assistant keeps no layer: parallel_all_emb_dataset.py l.26-32); "
            "unset: its last layer"
        },
    )


def embedding_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per row: the mean over dimensions of the squared difference (torch's MSELoss per row)."""
    return (student.float() - teacher.float()).pow(2).mean(-1)


def in_batch_infonce(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of n paired embeddings: row i of ``first`` against every row of ``second`` (its own the
    positive) and the other way round, cosine / temperature; the mean of both directions per pair."""
    a, b = F.normalize(first.float(), dim=-1), F.normalize(second.float(), dim=-1)
    with full_precision():  # float32 under bf16 autocast too: a small temperature magnifies rounding
        logits = a @ b.t() / temperature
    gold = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, gold, reduction="none") + F.cross_entropy(logits.t(), gold, reduction="none")) / 2


def load_embedding_teacher(path: str, task):
    """The teacher's encoder (frozen, eval mode, on the CPU until the first batch), refused unless its vocabulary
    is the data's and it reads sentences as long as the task's."""
    if not path:
        raise WrongCheckpoint("sentence distillation needs --teacher <sentence encoder> (e.g. the e5-small model.pt)")
    if not os.path.exists(path):
        raise WrongCheckpoint(f"teacher {path}: no such file")
    loaded = load_encoder(path, torch.device("cpu"))
    teacher_vocabulary, data_vocabulary = vocabulary_hash(str(loaded.vocabulary)), vocabulary_hash(task.cfg.data)
    if teacher_vocabulary != data_vocabulary:
        raise WrongCheckpoint(
            f"teacher {path}: its vocabulary ({loaded.vocabulary}/dict.txt {teacher_vocabulary}) is "
            f"not the data's ({task.cfg.data}/dict.txt {data_vocabulary}): teacher and student read "
            "the same tokens; preprocess with the teacher's dict.txt and sentencepiece model"
        )
    if loaded.max_positions < task.max_positions():
        raise WrongCheckpoint(
            f"teacher {path}: reads {loaded.max_positions} tokens, the task feeds up to "
            f"{task.max_positions()} (--max-positions)"
        )
    logger.info(
        "teacher: %s (%s, %d layers, frozen, eval mode; runs live on every source sentence)",
        path,
        loaded.kind,
        len(loaded.encoder.sentence_encoder.layers),
    )
    return freeze_teacher(loaded.encoder)


@register_criterion("sentence_distillation", dataclass=SentenceDistillationCriterionConfig)
class SentenceDistillationCriterion(FairseqCriterion):
    def __init__(
        self,
        task,
        teacher=None,
        teacher_bank=None,
        no_projection=False,
        contrastive_weight=0.0,
        contrastive_temperature=0.05,
        mcl_weight=0.0,
        target_teacher="source",
        teacher_layers=None,
    ):
        super().__init__(task)
        if mcl_weight < 0 or str(target_teacher) not in ("source", "self"):
            raise ValueError(f"--mcl-weight must be >= 0 (got {mcl_weight}); --target-teacher source or self")
        self.mcl_weight, self.target_teacher, self.teacher_layers = mcl_weight, str(target_teacher), teacher_layers
        if contrastive_weight < 0 or contrastive_temperature <= 0:
            raise ValueError(
                f"--contrastive-weight must be >= 0 and --contrastive-temperature > 0 (got "
                f"{contrastive_weight}, {contrastive_temperature})"
            )
        self.contrastive_weight, self.contrastive_temperature = contrastive_weight, contrastive_temperature
        self.pooling = str(task.cfg.pooling)
        student_width = task.trained_model_cfg.encoder_embed_dim
        self.bank = None
        if teacher_bank and (self.target_teacher == "self" or teacher_layers is not None):
            raise ValueError(
                "--teacher-bank holds the teacher's final embeddings of the sources only: --target-teacher self and "
                "--teacher-layers need a live teacher (--teacher)"
            )
        if teacher_bank:
            from ..embeddings.sentence_bank import SentenceBank

            self.bank = SentenceBank(teacher_bank)
            self.bank.check_run(task.identity, student_width, not no_projection, teacher)
            object.__setattr__(self, "teacher", None)
            teacher_width = self.bank.width
            self.added_tokens = 2 + len(task.prefix_pieces)  # <s>, the prefix's pieces, </s>
            logger.info(
                "teacher: the sentence bank %s (%s, %d dimensions; no teacher runs)",
                teacher_bank,
                self.bank.record["teacher"]["folder"],
                teacher_width,
            )
        else:
            object.__setattr__(self, "teacher", load_embedding_teacher(teacher, task))  # not a submodule: never saved
            teacher_width = self.teacher.sentence_encoder.embed_tokens.embedding_dim
        if teacher_width != student_width and no_projection:
            raise WrongCheckpoint(
                f"the teacher's embeddings have {teacher_width} dimensions, the student's {student_width}, and "
                "--no-projection forbids the learned projection that would compare them"
            )
        self.projection = nn.Linear(student_width, teacher_width) if student_width != teacher_width else None
        if self.projection is not None:
            logger.info(
                "student width %d, teacher %d: a learned projection compares them", student_width, teacher_width
            )

    @torch.no_grad()
    def teacher_embeddings(self, tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The teacher's pooled embeddings of ``tokens``, on the device and in the dtype of ``like``, a parameter of
        the student (not its output, which bf16 autocast makes bfloat16 while the weights stay float32)."""
        parameter = next(self.teacher.parameters())
        if parameter.device != like.device or parameter.dtype != like.dtype:
            self.teacher.to(device=like.device, dtype=like.dtype)
        self.teacher.eval()
        states = self.teacher(tokens, num_layers=self.teacher_layers)
        return pool_states(states, tokens, self.padding_idx, self.pooling)

    def forward(self, model, sample, reduce=True):
        sources = sample["net_input"]["src_tokens"]
        student_src = embed(model, sources)
        if self.bank is not None:  # fairseq trains in train mode and validates in eval mode
            teacher_src = self.bank.lookup(
                "train" if model.training else "valid",
                sample["id"],
                sources.ne(self.padding_idx).sum(1),
                self.added_tokens,
                self.task.max_positions(),
                student_src,
            )
        else:
            teacher_src = self.teacher_embeddings(sources, next(model.parameters())).float()
        project = self.projection if self.projection is not None else (lambda x: x)
        mse_src = embedding_mse(project(student_src), teacher_src)
        pairs = sample["target_rows"]
        n_rows, n_pairs = len(sources), int(pairs.sum())
        zero = mse_src.sum() * 0.0
        mse_tgt, contrastive, mcl = zero, zero, zero
        if n_pairs:
            student_tgt = embed(model, sample["target_tokens"])
            if self.target_teacher == "self":  # the assistant's embedding of the translation itself
                teacher_tgt = self.teacher_embeddings(sample["target_tokens"], next(model.parameters())).float()
            else:
                teacher_tgt = teacher_src[pairs]
            mse_tgt = embedding_mse(project(student_tgt), teacher_tgt).sum()
            if self.contrastive_weight > 0 and n_pairs > 1:
                contrastive = in_batch_infonce(student_src[pairs], student_tgt, self.contrastive_temperature).mean()
            if self.mcl_weight > 0:
                mcl = mcl_loss(project(student_src[pairs]), project(student_tgt), teacher_src[pairs])
        # fairseq divides by the sample size (the rows): MSE terms become means over rows, CON and MCL stay pair means
        loss = mse_src.sum() + mse_tgt + (self.contrastive_weight * contrastive + self.mcl_weight * mcl) * n_rows
        logging_output = {
            "loss": loss.data,
            "mse_src": mse_src.sum().data,
            "mse_tgt": mse_tgt.data,
            "contrastive": contrastive.data * n_pairs,
            "mcl": mcl.data * n_pairs,
            "rows": n_rows,
            "pairs": n_pairs,
            "nsentences": n_rows,
            "ntokens": sample["ntokens"],
            "sample_size": n_rows,
        }
        return loss, n_rows, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        total = lambda key: sum(float(log.get(key, 0)) for log in logging_outputs)
        rows, pairs = total("rows"), total("pairs")
        if rows:
            metrics.log_scalar("loss", total("loss") / rows, rows, round=6)
            metrics.log_scalar("mse_src", total("mse_src") / rows, rows, round=6)
        if pairs:
            metrics.log_scalar("mse_tgt", total("mse_tgt") / pairs, pairs, round=6)
            metrics.log_scalar("contrastive", total("contrastive") / pairs, pairs, round=4)
            if total("mcl"):
                metrics.log_scalar("mcl", total("mcl") / pairs, pairs, round=6)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
