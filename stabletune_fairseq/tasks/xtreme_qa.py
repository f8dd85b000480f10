"""``xtreme_qa``: extractive question answering (XQuAD, MLQA, TyDiQA-GoldP, SQuAD) on a folder written
by process.sh.

Every question's context is read in overlapping windows (``data/qa_windows.py``); the span head gives
start and end logits over each window, and the answer is decoded over all windows of the question
(n-best starts and ends, at most ``--max-answer-length`` pieces, the start in its max-context window)
and cut out of the original context text (``data/span_decoding.py``). Validation scores whole
questions: SQuAD v1.1 EM/F1 (MLQA's language-aware normalisation for MLQA) per language and averaged
(``f1_<lang>``, ``em_<lang>``, ``f1_avg``), so checkpoints can be selected by F1.

Consistency (xTune): R1 on the start and end distributions of a window and its view over their common
support (``criterions/span_terms.py``); stage 2 adds augmented copies (``subword_sampling``,
``code_switch``) or, with ``translation``, one translated question per English question and epoch, drawn at
random among those with its id (with their own answers).
"""

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task

from ..data.datasets.qa_views import QADataset, QAPart, QATranslationPool
from ..data.span_decoding import WindowScores, best_answer
from ..metrics.qa_scores import exact_match, f1
from ..metrics.span_scores import log_span_scores, span_score_counts
from ..models.heads import HEAD_OF_KIND
from .xtreme_base import XtremeTask, XtremeTaskConfig

logger = logging.getLogger(__name__)


@dataclass
class XtremeQAConfig(XtremeTaskConfig):
    doc_stride: Optional[int] = field(
        default=None, metadata={"help": "context pieces between the starts of two windows (default: process.sh's, 128)"}
    )
    n_best: int = field(default=20, metadata={"help": "start and end candidates per window when decoding"})
    max_answer_length: int = field(default=30, metadata={"help": "longest answer decoded, in pieces"})
    answer_boundaries: ChoiceEnum(["keep", "augment"]) = field(
        default="keep",
        metadata={
            "help": "keep: views and copies leave the answer's first and last words as they "
            "are (the reference's --keep_boundary_unchanged); augment: like any word"
        },
    )
    copy_question: ChoiceEnum(["keep", "augment"]) = field(
        default="keep", metadata={"help": "stage-2 copies: keep the question as it is (the reference), or augment it"}
    )


@register_task("xtreme_qa", dataclass=XtremeQAConfig)
class XtremeQATask(XtremeTask):
    kind = "qa"
    head_name, head_kind = HEAD_OF_KIND[kind]
    loss_family = "spans"

    def __init__(self, cfg, dictionary, metadata):
        super().__init__(cfg, dictionary, metadata)
        if cfg.view_augmentation == "translation":
            raise ValueError(
                "QA views must be word-aligned: --view-augmentation translation is not possible "
                "(translations come in as stage-2 copies, --copy-augmentation translation)"
            )
        # SQuAD 2.0 data (unanswerable questions) lets the decoder answer "no answer".
        self.allow_null = any(s.get("unanswerable", 0) for s in metadata["splits"].values())
        self.score_style = "mlqa" if metadata["task"] == "mlqa" else "squad"
        self.doc_stride = cfg.doc_stride or metadata.get("doc_stride", 128)

    def _part(self, folder: str, name: str, language: int, role: str, with_records: bool) -> QAPart:
        stored = {
            kind: self._stored(os.path.join(folder, kind), [name])
            for kind in ("question", "question_words", "context", "context_words")
        }
        records = None
        if with_records:
            with open(os.path.join(self.cfg.data, folder, "examples", f"{name}.jsonl"), encoding="utf-8") as f:
                records = [json.loads(line) for line in f]
        return QAPart(
            **stored,
            char_spans=np.load(os.path.join(self.cfg.data, folder, "char_spans", f"{name}.npy")),
            answers=np.load(os.path.join(self.cfg.data, folder, "answers", f"{name}.npy")),
            language=language,
            role=role,
            records=records,
        )

    def _ids(self, folder: str, name: str) -> list[str]:
        with open(os.path.join(self.cfg.data, folder, "examples", f"{name}.jsonl"), encoding="utf-8") as f:
            return [json.loads(line)["id"] for line in f]

    def _translation_pool(self) -> QATranslationPool:
        """Stage 2 of translate-train-all: the translated questions, paired with the English ones by id."""
        languages = self.translation_languages()
        parts = [
            self._part(
                "translation",
                f"train_{lang}",
                self.languages.index(lang) if lang in self.languages else -1,
                "translations",
                with_records=False,
            )
            for lang in languages
        ]
        pool = QATranslationPool.by_id(
            parts, [self._ids("translation", f"train_{lang}") for lang in languages], self._ids("", "train")
        )
        logger.info(
            "translated copies from %s; %d English questions have no translation with their id (their copy "
            "is a translated question drawn at random, as the reference does)",
            ",".join(languages),
            pool.without_translation,
        )
        return pool

    def load_dataset(self, split: str, combine: bool = False, **kwargs):
        training = split == "train"
        names = self.split_names(split)
        parts = [self._part("", name, self.language_of(name), "rows", with_records=not training) for name in names]
        copy_kind = self.cfg.copy_augmentation if training else "none"
        if copy_kind not in ("none", "translation"):
            parts += [dataclasses.replace(part, role="copies") for part in parts]
        dataset = QADataset(
            parts,
            self.dictionary,
            self.max_positions(),
            self.doc_stride,
            self.cfg.seed,
            training,
            view_augmenter=self.augmenter(self.cfg.view_augmentation) if training else None,
            copy_augmenter=self.augmenter(copy_kind) if copy_kind not in ("none", "translation") else None,
            keep_answer_boundaries=self.cfg.answer_boundaries == "keep",
            augment_copy_question=self.cfg.copy_question == "augment",
            translations=self._translation_pool() if copy_kind == "translation" else None,
        )
        if dataset.untrainable:
            logger.warning(
                "%s: %d questions have no answer to train on (unlabelled, or the answer text is not in "
                "the context; see metadata.json) and are left out of training",
                split,
                dataset.untrainable,
            )
        logger.info(
            "loaded %s: %d windows of %d questions from %s (views: %s, copies: %s)",
            split,
            len(dataset),
            len(np.unique(dataset.windows[:, :2], axis=0)),
            ", ".join(names),
            self.cfg.view_augmentation if training else "none",
            copy_kind,
        )
        if training and dataset.can_reuse_epoch_itr_across_epochs:  # (drawn translations: it orders itself)
            dataset = self._shuffled_by_length(dataset, dataset.sizes)
        self.datasets[split] = dataset
        return dataset

    def decode(self, row_logits, sample, null_margin: float = 0.0) -> list[tuple[dict, str, object]]:
        """(record, language, answer) of every question of an evaluation batch (all its windows are in it). SQuAD
        2.0: "" where the null score beats the best span by more than ``null_margin``; every answer carries its
        ``null_odds`` (null score - best span score, BERT's convention)."""
        logits = row_logits.detach().float().cpu().numpy()
        questions: dict[tuple, list] = {}
        for row, info in enumerate(sample["windows"]):
            n = len(info.char_spans)
            window = WindowScores(logits[row, :n, 0], logits[row, :n, 1], info.char_spans, info.max_context)
            entry = questions.setdefault(info.question, [info.record, int(sample["lang"][row]), []])
            entry[2].append(window)
        decoded = []
        for record, lang, windows in questions.values():
            answer = best_answer(
                windows,
                record["context"],
                n_best=self.cfg.n_best,
                max_answer_tokens=self.cfg.max_answer_length,
                allow_null=self.allow_null,
                null_margin=null_margin,
            )
            decoded.append((record, self.languages[lang], answer))
        return decoded

    def metric_counts(self, row_logits, sample, training: bool) -> dict:
        """EM/F1 sums per language, in validation (its batches hold every window of their questions)."""
        return self.span_scores(row_logits, sample) if not training and "windows" in sample else {}

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)  # fairseq's batch sizes, the criterion's loss terms
        log_span_scores(logging_outputs)

    def span_scores(self, row_logits, sample) -> dict:
        """EM/F1 sums per language of the batch's labelled questions (validation)."""
        scores: dict[str, list] = {}
        for record, lang, answer in self.decode(row_logits, sample):
            if record["answers"] or record.get("impossible"):
                golds = record["answers"]
                scores.setdefault(lang, []).append(
                    (
                        exact_match(answer.text, golds, style=self.score_style, lang=lang),
                        f1(answer.text, golds, style=self.score_style, lang=lang),
                    )
                )
        return span_score_counts(scores, self.languages)
