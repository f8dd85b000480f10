"""Score a fine-tuned checkpoint on every language of a split of its task folder: ``results.json``, ``results.md``
and ``predictions/`` in an output folder (what ``stabletune-evaluate`` writes; its page is docs/xtreme-tasks.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger("stabletune_fairseq.evaluate")


def markdown_table(results: dict) -> str:
    names = results["metrics"]
    precision = ", bf16" if results.get("precision") == "bf16" else ""
    lines = [
        f"# {results['task']} {results['split']} ({results['checkpoint']}{precision})",
        "",
        "| language | " + " | ".join(names) + " | n |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for lang, row in results["per_language"].items():
        cells = [str(row.get(name, "no labels")) for name in names]
        lines.append(f"| {lang} | " + " | ".join(cells) + f" | {row['n']} |")
    if results["average"]:
        cells = [str(results["average"][name]) for name in names]
        lines.append("| **average** | " + " | ".join(cells) + f" | {results['average']['languages']} languages |")
    return "\n".join(lines) + "\n"


def evaluate(
    checkpoint: str,
    data: str,
    split: str,
    out: str,
    batch_size: int = 64,
    cpu: bool = False,
    null_threshold: float = 0.0,
    precision: str = "fp32",
) -> dict:
    """``precision``: fp32, or bf16 on the CPU (``models/precision.py``); the scores are those of that precision."""
    from ..data.metadata import split_languages
    from ..inference.predictors import PREDICTORS
    from ..models.checkpoint_loading import choose_device, load_for_inference
    from ..models.precision import check_precision

    device = choose_device("cpu" if cpu else None)
    check_precision(precision, "--precision", device)  # before the checkpoint is read
    model, task, data_check = load_for_inference(checkpoint, data, device)
    languages = split_languages(task.metadata, split)
    if not languages:
        raise ValueError(f"{data} has no {split}_<lang> splits")
    predictor = PREDICTORS[task.metadata["kind"]](task, model, device, batch_size)
    predictor.precision = precision
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
    average = (
        {name: round(sum(row[name] for row in scored) / len(scored), 2) for name in predictor.metrics} if scored else {}
    )
    results = {
        "task": task.metadata["task"],
        "split": split,
        "metric": predictor.metrics[0],
        "metrics": list(predictor.metrics),
        "checkpoint": str(checkpoint),
        "data_check": data_check,
        "precision": precision,
        "per_language": per_language,
        "average": {**average, "languages": len(scored)} if scored else {},
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    (out_dir / "results.md").write_text(markdown_table(results), encoding="utf-8")
    return results
