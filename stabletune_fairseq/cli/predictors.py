"""Predict a whole split with a trained model and score it: one predictor per task family.

``predict(split)`` returns the scores (``{"accuracy": ..., "n": ...}``, or ``{"n": ..., "labelled": False}``
for a split without labels) and the prediction file's text, in input order.
"""
from __future__ import annotations

import json
import os

import torch
from seqeval.metrics import f1_score

from ..data.word_chunks import merge_chunk_predictions
from ..metrics.qa_scores import score_questions


def _batches(task, split: str, batch_size: int):
    dataset = task.load_dataset(split)
    iterator = task.get_batch_iterator(
        dataset, max_sentences=batch_size, max_positions=task.max_positions(), ignore_invalid_inputs=False,
        num_workers=0,
    ).next_epoch_itr(shuffle=False)
    return dataset, iterator


class SentencePredictor:
    """Sentence tasks: one label per input line; accuracy."""
    metrics = ("accuracy",)
    suffix = ".tsv"  # of the prediction files

    def __init__(self, task, model, device, batch_size: int):
        self.task, self.model, self.device, self.batch_size = task, model, device, batch_size

    def predict(self, split: str) -> tuple[dict, str]:
        dataset, iterator = _batches(self.task, split, self.batch_size)
        predictions, gold = [None] * len(dataset), [None] * len(dataset)
        with torch.no_grad():
            for sample in iterator:
                logits = self.model(sample["net_input"]["src_tokens"].to(self.device), head=self.task.head_name)
                for i, p, t in zip(sample["id"].tolist(), logits.argmax(-1).tolist(), sample["target"].tolist()):
                    predictions[i], gold[i] = p, t
        missing = sum(p is None for p in predictions)
        if missing:
            raise RuntimeError(f"{split}: {missing} of {len(dataset)} examples got no prediction")
        labelled = [(p, g) for p, g in zip(predictions, gold) if g >= 0]
        scores = ({"accuracy": round(100.0 * sum(p == g for p, g in labelled) / len(labelled), 2), "n": len(labelled)}
                  if labelled else {"n": len(predictions), "labelled": False})
        return scores, "".join(self.task.labels[p] + "\n" for p in predictions)


class TaggingPredictor(SentencePredictor):
    """Tagging tasks: chunks merged back into sentences, one tag per word read; seqeval F1 (entity level,
    as XTREME scores UD-POS and PAN-X) and word accuracy; predictions as ``word<TAB>tag`` lines with a
    blank line after each sentence."""
    metrics = ("f1", "accuracy")

    def predict(self, split: str) -> tuple[dict, str]:
        dataset, iterator = _batches(self.task, split, self.batch_size)
        chunks = {}
        with torch.no_grad():
            for sample in iterator:
                tokens = sample["net_input"]["src_tokens"].to(self.device)
                logits = self.model(tokens, head=self.task.head_name,
                                    word_index=sample["head_input"]["word_index"].to(self.device))
                predicted = logits.argmax(-1).cpu()
                for row in range(tokens.size(0)):
                    n = int(sample["word_mask"][row].sum())
                    key = (int(sample["sentence"][row]), int(sample["first_word"][row]))
                    chunks[key] = list(zip(predicted[row, :n].tolist(), sample["target"][row, :n].tolist()))
        words = self._words(split)
        merged = merge_chunk_predictions([len(w) for w in words], chunks)
        predicted = [[self.task.labels[p] for p, _ in sentence] for sentence in merged]
        text = "".join("".join(f"{w}\t{t}\n" for w, t in zip(ws, ts)) + "\n" for ws, ts in zip(words, predicted))
        n_words = sum(len(s) for s in merged)
        if merged[0][0][1] < 0:
            return {"n": n_words, "sentences": len(merged), "labelled": False}, text
        gold = [[self.task.tag_names[g] for _, g in sentence] for sentence in merged]
        correct = sum(p == g for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs))
        scores = {"f1": round(100.0 * f1_score(gold, predicted), 2), "accuracy": round(100.0 * correct / n_words, 2),
                  "n": n_words, "sentences": len(merged)}
        return scores, text

    def _words(self, split: str) -> list[list[str]]:
        with open(os.path.join(self.task.cfg.data, "words", f"{split}.jsonl"), encoding="utf-8") as f:
            return [json.loads(line) for line in f]


class QAPredictor(SentencePredictor):
    """Extractive QA: every window of a question is read, the answer decoded over all of them and cut out
    of the context; SQuAD v1.1 EM/F1 (MLQA's normalisation for MLQA); predictions in the SQuAD submission
    format, ``{question id: answer text}``."""
    metrics = ("f1", "exact_match")
    suffix = ".json"

    def predict(self, split: str) -> tuple[dict, str]:
        _, iterator = _batches(self.task, split, self.batch_size)
        predictions, golds = {}, {}
        with torch.no_grad():
            for sample in iterator:
                tokens = sample["net_input"]["src_tokens"].to(self.device)
                logits = self.model(tokens, head=self.task.head_name,
                                    span_mask=sample["head_input"]["span_mask"].to(self.device))
                for record, _, answer in self.task.decode(logits, sample):
                    predictions[record["id"]] = answer.text
                    if record["answers"] or record.get("impossible"):
                        golds[record["id"]] = record["answers"]
        text = json.dumps(predictions, ensure_ascii=False, indent=1) + "\n"
        if not golds:
            return {"n": len(predictions), "labelled": False}, text
        language = self.task.metadata["splits"][split]["language"]
        scores = score_questions(predictions, golds, style=self.task.score_style, lang=language)
        if scores.get("missing"):
            raise RuntimeError(f"{split}: {scores['missing']} questions got no prediction")
        return {"f1": round(scores["f1"], 2), "exact_match": round(scores["exact_match"], 2), "n": scores["n"]}, text


PREDICTORS = {"sentence_pair": SentencePredictor, "tagging": TaggingPredictor, "qa": QAPredictor}
