"""``stabletune-plot-states``: the ``<s>`` states of the last layer of one or more fine-tuned models (a teacher and
its distilled student) on a dev set, projected onto their first two principal components, as a PNG: one column per
model, coloured by label (top) and by language (bottom).

    stabletune-plot-states --checkpoint <teacher.pt> --checkpoint <student.pt> --data <out>/<task> --out states.png
        [--split valid] [--per-language 300]

Each model gets its own projection (their widths may differ); the examples are the first ``--per-language`` of every
language of the split, the same for every model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .console import bad_input_as_one_line, log_to_stderr


def plot_states(
    checkpoints: list[str],
    data: str,
    split: str,
    out: str,
    per_language: int = 300,
    batch_size: int = 64,
    cpu: bool = False,
) -> dict:
    import numpy as np

    from ..data.metadata import split_languages
    from ..models.checkpoint_loading import choose_device, load_for_inference
    from ..report.state_projection import draw, first_position_states, principal_components

    device = choose_device("cpu" if cpu else None)
    panels, summary = [], {"split": split, "per_language": per_language, "models": []}
    for checkpoint in checkpoints:
        model, task, _ = load_for_inference(checkpoint, data, device)
        languages = split_languages(task.metadata, split)
        if not languages:
            raise ValueError(f"{data} has no {split}_<lang> splits")
        states, labels, langs = [], [], []
        for lang in languages:
            dataset = task.load_dataset(f"{split}_{lang}")
            s, lab, lg = first_position_states(model, task, dataset, batch_size, device)
            states.append(s[:per_language]), labels.append(lab[:per_language]), langs.append(lg[:per_language])
        states, labels, langs = np.concatenate(states), np.concatenate(labels), np.concatenate(langs)
        points, explained = principal_components(states)
        layers = model.cfg.encoder_layers
        run = os.path.basename(os.path.dirname(os.path.abspath(checkpoint)))
        title = f"{run}/{os.path.basename(checkpoint)} ({layers} layers)"
        panels.append({"title": title, "points": points, "explained": explained, "labels": labels, "languages": langs})
        summary["models"].append(
            {
                "checkpoint": checkpoint,
                "layers": layers,
                "examples": len(states),
                "explained_variance": [round(float(x), 4) for x in explained],
            }
        )
        label_names = list(task.labels) if (labels >= 0).any() else []
        language_names = list(task.languages)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    draw(panels, label_names, language_names, out)
    with open(os.path.splitext(out)[0] + ".json", "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-plot-states", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        help="a fine-tuned checkpoint (repeat: one column per model, e.g. teacher then student)",
    )
    parser.add_argument("--data", required=True, help="the task folder they were trained on, e.g. <out>/xnli")
    parser.add_argument("--split", choices=["valid", "test"], default="valid")
    parser.add_argument("--out", required=True, help="the PNG to write (a .json beside it records what was drawn)")
    parser.add_argument("--per-language", type=int, default=300, help="the first N examples of every language")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    args = parser.parse_args(argv)
    log_to_stderr()
    summary, status = bad_input_as_one_line(
        "stabletune-plot-states",
        plot_states,
        args.checkpoint,
        args.data,
        args.split,
        args.out,
        args.per_language,
        args.batch_size,
        args.cpu,
        also=(FileNotFoundError, ValueError),
    )
    if status:
        return status
    print(f"wrote {args.out}: " + ", ".join(f"{m['checkpoint']} ({m['examples']} examples)" for m in summary["models"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
