"""A fine-tuned checkpoint ready to predict on raw text: ``stabletune_fairseq.load_model(checkpoint)``.

The model is loaded as evaluation loads it (``checkpoint_loading.py``) and run by evaluation's predictors
(``predictors.py``: the same batching, heads and decoding), on datasets built from raw text exactly as
preprocessing builds a split (``raw_datasets.py``), so a raw input gets the prediction evaluation writes for
the same row. One result per input, in input order:

- sentence pairs: ``{"label", "score", "scores": {label: probability}}`` (``score``: the label's probability);
- tagging: ``{"words", "tags", "scores"}``, the probability of each word's tag;
- QA: ``{"answer", "score", "start", "end"}``: the answer cut out of the context, ``context[start:end]``
  (``""`` and ``None`` offsets for no answer, which only a task trained with unanswerable questions gives),
  and its score, the start and end logits summed (a span's score in decoding, not a probability); the
  input's ``"id"`` when it has one.
"""

from __future__ import annotations

import logging

import torch

from ..models.checkpoint_loading import choose_device, load_for_inference, recorded_task_folder
from ..models.precision import check_precision
from .raw_datasets import pair_dataset, qa_dataset, tagging_dataset, task_encoder
from .raw_inputs import check_inputs

logger = logging.getLogger(__name__)

DIGITS = 6  # of the probabilities and scores written


class LoadedModel:
    """``kind``: the task family (``sentence_pair``, ``tagging``, ``qa``); ``labels``: the head's labels, in the
    order of its outputs; ``predict(inputs)``: one result dict per input (see the module's doc)."""

    def __init__(
        self, checkpoint: str, task_dir: str | None = None, device=None, batch_size: int = 32, precision: str = "fp32"
    ):
        from .predictors import PREDICTORS

        self.task_dir = str(task_dir) if task_dir is not None else recorded_task_folder(checkpoint)
        self.device = choose_device(device)
        check_precision(precision, "precision", self.device)
        self.model, self.task, self.data_check = load_for_inference(checkpoint, self.task_dir, self.device)
        self.kind: str = self.task.metadata["kind"]
        self.labels: list[str] = list(self.task.labels)
        self.predictor = PREDICTORS[self.kind](self.task, self.model, self.device, batch_size)
        self.predictor.precision = precision
        self.encoder = task_encoder(self.task)
        logger.info(
            "%s: %s (%s, %d labels) on %s, task folder %s",
            checkpoint,
            self.task.metadata["task"],
            self.kind,
            len(self.labels),
            self.device,
            self.task_dir,
        )

    def predict(self, inputs) -> list[dict]:
        items = check_inputs(self.kind, self.task.metadata["task"], inputs)
        if not items:
            return []
        predict = {"sentence_pair": self._classify, "tagging": self._tag, "qa": self._answer}[self.kind]
        return predict(items)

    def _classify(self, pairs) -> list[dict]:
        logits, _ = self.predictor.outputs(pair_dataset(self.task, self.encoder, pairs))
        results = []
        for row in logits:
            probabilities = torch.softmax(row, -1).tolist()
            best = int(row.argmax())
            results.append(
                {
                    "label": self.labels[best],
                    "score": round(probabilities[best], DIGITS),
                    "scores": {label: round(p, DIGITS) for label, p in zip(self.labels, probabilities)},
                }
            )
        return results

    def _tag(self, sentences) -> list[dict]:
        from ..data.datasets.word_chunks import merge_chunk_predictions

        chunks = self.predictor.outputs(tagging_dataset(self.task, self.encoder, sentences))
        results = []
        for words, predicted in zip(sentences, merge_chunk_predictions([len(s) for s in sentences], chunks)):
            logits = torch.stack([word_logits for word_logits, _ in predicted])
            best = logits.argmax(-1)
            probabilities = torch.softmax(logits, -1).gather(1, best[:, None])[:, 0]
            results.append(
                {
                    "words": words,
                    "tags": [self.labels[t] for t in best.tolist()],
                    "scores": [round(p, DIGITS) for p in probabilities.tolist()],
                }
            )
        return results

    def _answer(self, questions) -> list[dict]:
        results = [None] * len(questions)
        for record, _, answer in self.predictor.outputs(qa_dataset(self.task, self.encoder, questions)):
            row = int(record["id"])  # raw_datasets numbers the questions
            found = answer.char_begin >= 0
            results[row] = {
                **({"id": questions[row]["id"]} if "id" in questions[row] else {}),
                "answer": answer.text,
                "score": round(answer.score, DIGITS),
                "start": answer.char_begin if found else None,
                "end": answer.char_end if found else None,
            }
        missing = sum(r is None for r in results)
        if missing:
            raise RuntimeError(f"{missing} of {len(questions)} questions got no answer")
        return results


def load_model(
    checkpoint: str, task_dir: str | None = None, device=None, batch_size: int = 32, precision: str = "fp32"
) -> LoadedModel:
    """The fine-tuned ``checkpoint`` (e.g. ``<save_dir>/checkpoint_best.pt``) ready to predict on raw text.

    ``task_dir``: the task folder process.sh wrote (default: the one the checkpoint was trained on, from its
    record); ``device``: e.g. ``"cpu"`` (default: the GPU when there is one); ``batch_size``: inputs (QA:
    windows) per batch; ``precision``: ``"fp32"``, or ``"bf16"`` on a CPU with bf16 instructions (docs/precision.md)."""
    return LoadedModel(checkpoint, task_dir, device, batch_size, precision)
