"""Predict a whole split with a trained model and score it: one predictor per task family.

``predict(split)`` returns the scores (``{"accuracy": ..., "n": ...}``, or ``{"n": ..., "labelled": False}``
for a split without labels) and the prediction file's text, in input order. What the model says about any
dataset of the task (a stored split, or raw text encoded the same way: ``inference/``) comes from
``outputs(dataset)``, so evaluation and prediction on raw text run the model one way.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import torch
from seqeval.metrics import f1_score

from ..data.datasets.word_chunks import merge_chunk_predictions
from ..metrics.correlation import pearson, spearman
from ..metrics.entities import f1_score as f1_from_counts
from ..metrics.glue_scores import matthews
from ..metrics.qa_scores import score_questions
from ..metrics.squad_v2 import evaluate_v2
from ..models.precision import autocast


def eval_batches(task, dataset, batch_size: int):
    # Not cached by the task: a long-lived process predicting many inputs would keep every dataset alive.
    return task.get_batch_iterator(
        dataset,
        max_sentences=batch_size,
        max_positions=task.max_positions(),
        ignore_invalid_inputs=False,
        num_workers=0,
        disable_iterator_cache=True,
    ).next_epoch_itr(shuffle=False)


class SentencePredictor:
    """Sentence tasks: one label per input line; accuracy."""

    metrics = ("accuracy",)
    suffix = ".tsv"  # of the prediction files
    precision = "fp32"  # of the forward passes (models/precision.py): --precision of the commands

    def __init__(self, task, model, device, batch_size: int):
        self.task, self.model, self.device, self.batch_size = task, model, device, batch_size

    def head_outputs(self, sample, *head_inputs: str) -> torch.Tensor:
        """The task head's outputs for a batch, in float32 (on the model's device); ``head_inputs``: the batch's
        ``head_input`` entries the head reads."""
        tokens = sample["net_input"]["src_tokens"].to(self.device)
        inputs = {name: sample["head_input"][name].to(self.device) for name in head_inputs}
        with autocast(self.precision):
            return self.model(tokens, head=self.task.head_name, **inputs).float()

    def outputs(self, dataset) -> tuple[list[torch.Tensor], list[int]]:
        """Per example of ``dataset``, in its order: the head's logits over the labels (on the CPU) and the gold
        label."""
        logits_of, gold = [None] * len(dataset), [None] * len(dataset)
        with torch.no_grad():
            for sample in eval_batches(self.task, dataset, self.batch_size):
                logits = self.head_outputs(sample)
                for i, row, t in zip(sample["id"].tolist(), logits.cpu(), sample["target"].tolist()):
                    logits_of[i], gold[i] = row, t
        missing = sum(row is None for row in logits_of)
        if missing:
            raise RuntimeError(f"{missing} of {len(dataset)} examples got no prediction")
        return logits_of, gold

    def predict(self, split: str) -> tuple[dict, str]:
        logits, gold = self.outputs(self.task.load_dataset(split))
        predictions = [int(row.argmax()) for row in logits]
        labelled = [(p, g) for p, g in zip(predictions, gold) if g >= 0]
        scores = (
            {"accuracy": round(100.0 * sum(p == g for p, g in labelled) / len(labelled), 2), "n": len(labelled)}
            if labelled
            else {"n": len(predictions), "labelled": False}
        )
        return scores, "".join(self.task.labels[p] + "\n" for p in predictions)


class TaggingPredictor(SentencePredictor):
    """Tagging tasks: chunks merged back into sentences, one tag per word read; seqeval F1 (entity level,
    as XTREME scores UD-POS and PAN-X) and word accuracy; predictions as ``word<TAB>tag`` lines with a
    blank line after each sentence."""

    metrics = ("f1", "accuracy")

    def outputs(self, dataset) -> dict[tuple[int, int], list[tuple[torch.Tensor, int]]]:
        """Per chunk of ``dataset``, keyed (sentence, first word) for ``merge_chunk_predictions``: each of its words'
        logits over the labels (on the CPU) and gold tag."""
        chunks = {}
        with torch.no_grad():
            for sample in eval_batches(self.task, dataset, self.batch_size):
                logits = self.head_outputs(sample, "word_index").cpu()
                for row in range(logits.size(0)):
                    n = int(sample["word_mask"][row].sum())
                    key = (int(sample["sentence"][row]), int(sample["first_word"][row]))
                    chunks[key] = list(zip(logits[row, :n], sample["target"][row, :n].tolist()))
        return chunks

    def predict(self, split: str) -> tuple[dict, str]:
        chunks = self.outputs(self.task.load_dataset(split))
        words = self._words(split)
        merged = [
            [(int(logits.argmax()), gold) for logits, gold in sentence]
            for sentence in merge_chunk_predictions([len(w) for w in words], chunks)
        ]
        predicted = [[self.task.labels[p] for p, _ in sentence] for sentence in merged]
        text = "".join("".join(f"{w}\t{t}\n" for w, t in zip(ws, ts)) + "\n" for ws, ts in zip(words, predicted))
        n_words = sum(len(s) for s in merged)
        if merged[0][0][1] < 0:
            return {"n": n_words, "sentences": len(merged), "labelled": False}, text
        gold = [[self.task.tag_names[g] for _, g in sentence] for sentence in merged]
        correct = sum(p == g for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs))
        scores = {
            "f1": round(100.0 * f1_score(gold, predicted), 2),
            "accuracy": round(100.0 * correct / n_words, 2),
            "n": n_words,
            "sentences": len(merged),
        }
        return scores, text

    def _words(self, split: str) -> list[list[str]]:
        with open(os.path.join(self.task.cfg.data, "words", f"{split}.jsonl"), encoding="utf-8") as f:
            return [json.loads(line) for line in f]


class QAPredictor(SentencePredictor):
    """Extractive QA: every window of a question is read, the answer decoded over all of them and cut out
    of the context; SQuAD v1.1 EM/F1 (MLQA's normalisation for MLQA); predictions in the SQuAD submission
    format, ``{question id: answer text}``.

    SQuAD 2.0 data (the task decodes "no answer"): "" where the null score beats the best span by more than
    ``null_threshold``; the official v2.0 evaluation (``metrics/squad_v2.py``) with each question's null odds
    (null score - best span score, BERT's ``null_odds.json``) as its ``na_prob`` and ``null_threshold`` as the
    threshold, so ``exact``/``f1`` are those of the predictions written; and ``side_files[split]``, the na_prob
    file's text (``{question id: null odds}``) for ``.na_prob.json``."""

    metrics = ("f1", "exact_match")
    suffix = ".json"
    null_threshold = 0.0  # stabletune-evaluate --null-threshold
    SQUAD_V2_METRICS = ("f1", "exact_match", "best_f1", "best_exact")

    def __init__(self, task, model, device, batch_size: int):
        super().__init__(task, model, device, batch_size)
        self.squad_v2 = bool(task.allow_null)
        if self.squad_v2:
            self.metrics = self.SQUAD_V2_METRICS
        self.side_files: dict[str, dict[str, str]] = {}  # split -> {file suffix: text}

    def outputs(self, dataset) -> list[tuple[dict, str, object]]:
        """(record, language, answer) of every question of ``dataset``, decoded over all of its windows."""
        decoded = []
        with torch.no_grad():
            for sample in eval_batches(self.task, dataset, self.batch_size):
                logits = self.head_outputs(sample, "span_mask")
                decoded += self.task.decode(logits, sample, null_margin=self.null_threshold)
        return decoded

    def predict(self, split: str) -> tuple[dict, str]:
        predictions, golds, na_probs = {}, {}, {}
        for record, _, answer in self.outputs(self.task.load_dataset(split)):
            predictions[record["id"]] = answer.text
            na_probs[record["id"]] = answer.null_odds
            if record["answers"] or record.get("impossible"):
                golds[record["id"]] = record["answers"]
        text = json.dumps(predictions, ensure_ascii=False, indent=1) + "\n"
        if self.squad_v2:
            self.side_files[split] = {".na_prob.json": json.dumps(na_probs, ensure_ascii=False, indent=1) + "\n"}
        if not golds:
            return {"n": len(predictions), "labelled": False}, text
        if self.squad_v2:
            return self._squad_v2_scores(golds, predictions, na_probs), text
        language = self.task.metadata["splits"][split]["language"]
        scores = score_questions(predictions, golds, style=self.task.score_style, lang=language)
        if scores.get("missing"):
            raise RuntimeError(f"{split}: {scores['missing']} questions got no prediction")
        return {"f1": round(scores["f1"], 2), "exact_match": round(scores["exact_match"], 2), "n": scores["n"]}, text

    def _squad_v2_scores(self, golds: dict, predictions: dict, na_probs: dict) -> dict:
        """The official v2.0 keys (percentages rounded to 2 decimals, thresholds as found), ``exact_match`` and
        ``n`` (the other tasks' names for ``exact`` and ``total``) and the threshold the predictions were made with."""
        official = evaluate_v2(golds, predictions, na_probs, na_prob_thresh=self.null_threshold)
        scores = {
            key: value if key.endswith(("_thresh", "total")) else round(value, 2) for key, value in official.items()
        }
        return {**scores, "exact_match": scores["exact"], "n": scores["total"], "null_threshold": self.null_threshold}


PREDICTORS = {"sentence_pair": SentencePredictor, "tagging": TaggingPredictor, "qa": QAPredictor}


class GluePredictor(SentencePredictor):
    """GLUE: GLUE's metrics for the task (accuracy; also F1 of class 1 for MRPC and QQP, Matthews correlation for
    CoLA; Pearson and Spearman x100 for STS-B, on the 0-5 scale) and predictions in GLUE's submission format,
    ``index<TAB>prediction`` under that header, the index being the input file's own."""

    TASK_METRICS = {
        "cola": ("mcc", "accuracy"),
        "mrpc": ("f1", "accuracy"),
        "qqp": ("f1", "accuracy"),
        "stsb": ("pearson", "spearman"),
    }
    # GLUE's submission file of each test set (MNLI's two test sets: subsets m and mm)
    SUBMISSION = {
        "cola": "CoLA",
        "sst2": "SST-2",
        "mrpc": "MRPC",
        "qqp": "QQP",
        "stsb": "STS-B",
        "mnli": "MNLI",
        "qnli": "QNLI",
        "rte": "RTE",
        "wnli": "WNLI",
    }

    def __init__(self, task, model, device, batch_size: int):
        super().__init__(task, model, device, batch_size)
        self.metrics = self.TASK_METRICS.get(task.metadata["task"], ("accuracy",))

    def submission_name(self, split: str) -> str:
        """``RTE.tsv``; for MNLI ``MNLI-m.tsv`` and ``MNLI-mm.tsv``."""
        name = self.SUBMISSION[self.task.metadata["task"]]
        language = self.task.metadata["splits"][split]["language"]
        return f"{name}-{language}.tsv" if language != "en" else f"{name}.tsv"

    def predict(self, split: str) -> tuple[dict, str]:
        logits, gold = self.outputs(self.task.load_dataset(split))
        index = np.load(os.path.join(self.task.cfg.data, "index", f"{split}.npy")).tolist()
        if self.task.regression:
            scale = self.task.cfg.regression_scale
            predicted = [float(row[0]) * scale for row in logits]
            labelled = [(p, g * scale) for p, g in zip(predicted, gold) if not math.isnan(g)]
            shown = [f"{p:.3f}" for p in predicted]
            scores = (
                {"pearson": round(pearson(*zip(*labelled)), 2), "spearman": round(spearman(*zip(*labelled)), 2)}
                if labelled
                else {}
            )
        else:
            predicted = [int(row.argmax()) for row in logits]
            labelled = [(p, g) for p, g in zip(predicted, gold) if g >= 0]
            shown = [self.task.labels[p] for p in predicted]
            scores = self._class_scores(labelled) if labelled else {}
        scores = {**scores, "n": len(labelled)} if labelled else {"n": len(predicted), "labelled": False}
        return scores, "index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in zip(index, shown))

    def _class_scores(self, labelled: list[tuple[int, int]]) -> dict:
        scores = {"accuracy": round(100.0 * sum(p == g for p, g in labelled) / len(labelled), 2)}
        if len(self.task.labels) == 2:
            tp = sum(p == 1 and g == 1 for p, g in labelled)
            predicted, gold = sum(p == 1 for p, _ in labelled), sum(g == 1 for _, g in labelled)
            scores["f1"] = round(f1_from_counts(tp, predicted, gold), 2)
            scores["mcc"] = round(matthews(tp, predicted, gold, len(labelled)), 2)
        return {name: scores[name] for name in self.metrics}


PREDICTORS["glue"] = GluePredictor
