"""``stabletune-evaluate``: score a checkpoint on every language of a split, write results and predictions.

Writes to ``--out``: ``results.json``, ``results.md`` and ``predictions/<split>-<lang>.tsv`` (one
predicted label per input line, in input order; also for test sets without labels).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

logger = logging.getLogger("stabletune_fairseq.evaluate")


def predict_split(task, model, split: str, batch_size: int, device: torch.device) -> tuple[list[int], list[int]]:
    """(predicted label index, gold label index or -1) for every example of ``split``, in input order."""
    dataset = task.load_dataset(split)
    iterator = task.get_batch_iterator(
        dataset, max_sentences=batch_size, max_positions=task.max_positions(), ignore_invalid_inputs=False,
        num_workers=0,
    ).next_epoch_itr(shuffle=False)
    predictions = [None] * len(dataset)
    gold = [None] * len(dataset)
    with torch.no_grad():
        for sample in iterator:
            tokens = sample["net_input"]["src_tokens"].to(device)
            logits = model(tokens, head=task.head_name)
            for i, p, t in zip(sample["id"].tolist(), logits.argmax(-1).tolist(), sample["target"].tolist()):
                predictions[i], gold[i] = p, t
    missing = sum(p is None for p in predictions)
    if missing:
        raise RuntimeError(f"{split}: {missing} of {len(dataset)} examples got no prediction")
    return predictions, gold


def accuracy_result(predictions: list[int], gold: list[int]) -> dict:
    labelled = [(p, g) for p, g in zip(predictions, gold) if g >= 0]
    if not labelled:
        return {"n": len(predictions), "labelled": False}
    correct = sum(p == g for p, g in labelled)
    return {"accuracy": round(100.0 * correct / len(labelled), 2), "n": len(labelled)}


def markdown_table(results: dict) -> str:
    metric = results["metric"]
    lines = [f"# {results['task']} {results['split']} ({results['checkpoint']})", "",
             f"| language | {metric} | n |", "|---|---|---|"]
    for lang, row in results["per_language"].items():
        lines.append(f"| {lang} | {row.get(metric, 'no labels')} | {row['n']} |")
    if results["average"]:
        lines.append(f"| **average** | {results['average'][metric]} | {results['average']['languages']} languages |")
    return "\n".join(lines) + "\n"


def evaluate(checkpoint: str, data: str, split: str, out: str, batch_size: int = 64, cpu: bool = False) -> dict:
    import stabletune_fairseq  # noqa: F401  (registers the plugin, allows fairseq checkpoint types)
    from fairseq import checkpoint_utils

    from ..data.metadata import split_languages

    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides={"data": data})
    model = models[0].to(device).eval()
    languages = split_languages(task.metadata, split)
    if not languages:
        raise ValueError(f"{data} has no {split}_<lang> splits")
    out_dir = Path(out)
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    per_language = {}
    for lang in languages:
        predictions, gold = predict_split(task, model, f"{split}_{lang}", batch_size, device)
        per_language[lang] = accuracy_result(predictions, gold)
        with open(out_dir / "predictions" / f"{split}-{lang}.tsv", "w", encoding="utf-8") as f:
            f.writelines(task.labels[p] + "\n" for p in predictions)
        logger.info("%s %s: %s", split, lang, per_language[lang])
    scored = [row["accuracy"] for row in per_language.values() if "accuracy" in row]
    results = {
        "task": task.metadata["task"], "split": split, "metric": "accuracy", "checkpoint": str(checkpoint),
        "per_language": per_language,
        "average": {"accuracy": round(sum(scored) / len(scored), 2), "languages": len(scored)} if scored else {},
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    results = evaluate(args.checkpoint, args.data, args.split, args.out, args.batch_size, args.cpu)
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
