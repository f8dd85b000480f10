"""``stabletune-evaluate``: score a checkpoint on every language of a split, write results and predictions.

Writes to ``--out``: ``results.json``, ``results.md``, ``evaluate.log`` (the libraries' log; the console
shows progress and the table) and ``predictions/<split>-<lang>.tsv``, in input
order, also for test sets without labels: one predicted label per line for sentence tasks (GLUE:
``index<TAB>prediction`` under that header, and for a test split also GLUE's submission file, e.g. ``RTE.tsv``,
``MNLI-m.tsv``, in ``--out``), the input's
``word<TAB>tag`` format (blank line between sentences) for tagging tasks; for QA,
``predictions/<split>-<lang>.json`` in the SQuAD submission format (``{question id: answer text}``). SQuAD 2.0
(data with unanswerable questions): the answer is "" where the null score beats the best span by more than
``--null-threshold``; also ``predictions/<split>-<lang>.na_prob.json`` (``{question id: null score - best span
score}``, BERT's null odds) and the official v2.0 evaluation's keys in the results, with ``best_exact``/``best_f1``
and their thresholds found from those null odds (docs/squad2.md).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .console import bad_input_as_one_line, quiet_logging

logger = logging.getLogger("stabletune_fairseq.evaluate")


def markdown_table(results: dict) -> str:
    names = results["metrics"]
    lines = [f"# {results['task']} {results['split']} ({results['checkpoint']})", "",
             "| language | " + " | ".join(names) + " | n |", "|---|" + "---|" * (len(names) + 1)]
    for lang, row in results["per_language"].items():
        cells = [str(row.get(name, "no labels")) for name in names]
        lines.append(f"| {lang} | " + " | ".join(cells) + f" | {row['n']} |")
    if results["average"]:
        cells = [str(results["average"][name]) for name in names]
        lines.append("| **average** | " + " | ".join(cells) + f" | {results['average']['languages']} languages |")
    return "\n".join(lines) + "\n"


def evaluate(checkpoint: str, data: str, split: str, out: str, batch_size: int = 64, cpu: bool = False,
             null_threshold: float = 0.0) -> dict:
    from ..data.metadata import split_languages
    from ..inference.checkpoint_loading import choose_device, load_for_inference
    from .predictors import PREDICTORS

    device = choose_device("cpu" if cpu else None)
    model, task, data_check = load_for_inference(checkpoint, data, device)
    languages = split_languages(task.metadata, split)
    if not languages:
        raise ValueError(f"{data} has no {split}_<lang> splits")
    predictor = PREDICTORS[task.metadata["kind"]](task, model, device, batch_size)
    if task.metadata["kind"] == "qa":
        predictor.null_threshold = null_threshold
    out_dir = Path(out)
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    per_language = {}
    for lang in languages:
        per_language[lang], text = predictor.predict(f"{split}_{lang}")
        (out_dir / "predictions" / f"{split}-{lang}{predictor.suffix}").write_text(text, encoding="utf-8")
        for suffix, side_text in getattr(predictor, "side_files", {}).get(f"{split}_{lang}", {}).items():  # SQuAD 2.0
            (out_dir / "predictions" / f"{split}-{lang}{suffix}").write_text(side_text, encoding="utf-8")
        if split == "test" and hasattr(predictor, "submission_name"):  # GLUE: CoLA.tsv, MNLI-m.tsv, ...
            (out_dir / predictor.submission_name(f"{split}_{lang}")).write_text(text, encoding="utf-8")
        logger.info("%s %s: %s", split, lang, per_language[lang])
    scored = [row for row in per_language.values() if row.get("labelled", True)]
    average = {name: round(sum(row[name] for row in scored) / len(scored), 2) for name in predictor.metrics} if scored else {}
    results = {
        "task": task.metadata["task"], "split": split, "metric": predictor.metrics[0], "metrics": list(predictor.metrics),
        "checkpoint": str(checkpoint), "data_check": data_check, "per_language": per_language,
        "average": {**average, "languages": len(scored)} if scored else {},
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    (out_dir / "results.md").write_text(markdown_table(results), encoding="utf-8")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabletune-evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="fairseq checkpoint, e.g. <save_dir>/checkpoint_best.pt")
    parser.add_argument("--data", required=True, help="task folder written by process.sh, e.g. <out>/xnli")
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--out", required=True, help="folder for results.json, results.md and predictions/")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument("--null-threshold", type=float, default=0.0,
                        help='SQuAD 2.0: answer "" when the null score beats the best span by more than this (BERT\'s '
                             '--null_score_diff_threshold; e.g. best_f1_thresh of a dev evaluation)')
    args = parser.parse_args(argv)
    quiet_logging(os.path.join(args.out, "evaluate.log"))
    results, status = bad_input_as_one_line("stabletune-evaluate", evaluate, args.checkpoint, args.data, args.split,
                                            args.out, args.batch_size, args.cpu, args.null_threshold,
                                            also=(FileNotFoundError, ValueError))
    if status:
        return status
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
