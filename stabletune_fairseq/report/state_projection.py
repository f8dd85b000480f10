"""A picture of what a model's last layer says about a dev set: its ``<s>`` states projected onto their first
two principal components (PCA by SVD, numpy only), one column per model (a teacher and its student), coloured
by label in the top row and by language in the bottom one (the picture the BERT distillation recipes draw).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DPI = 100


def first_position_states(model, task, dataset, batch_size: int, device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per example of ``dataset``, in its order: the last layer's ``<s>`` state, the gold label (-1: none, or not
    a sentence task) and the language index."""
    from ..inference.predictors import eval_batches

    states, labels, languages = [None] * len(dataset), np.full(len(dataset), -1), np.zeros(len(dataset), dtype=int)
    with torch.no_grad():
        for sample in eval_batches(task, dataset, batch_size):
            collected: list = []
            head_input = {k: v.to(device) for k, v in sample.get("head_input", {}).items()}
            model(
                sample["net_input"]["src_tokens"].to(device), head=task.head_name, layer_states=collected, **head_input
            )
            target = sample["target"] if sample["target"].dim() == 1 else None
            for row, i in enumerate(sample["id"].tolist()):
                states[i] = collected[-1][row].float().cpu().numpy()
                languages[i] = int(sample["lang"][row])
                if target is not None and not torch.is_floating_point(target):
                    labels[i] = int(target[row])
    return np.stack(states), labels, languages


def principal_components(states: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(n x k projection onto the first ``k`` principal components, the share of variance each explains)."""
    centred = states - states.mean(0, keepdims=True)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    return centred @ vt[:k].T, variance[:k] / variance.sum()


def draw(panels: list[dict], label_names: list[str], language_names: list[str], path: str) -> None:
    """``panels``: per model ``{"title", "points" (n x 2), "explained", "labels", "languages"}``."""
    figure, axes = plt.subplots(2, len(panels), figsize=(4.5 * len(panels), 8.0), dpi=DPI, squeeze=False)
    for column, panel in enumerate(panels):
        for row, (key, names) in enumerate((("labels", label_names), ("languages", language_names))):
            ax = axes[row][column]
            values = panel[key]
            for index, name in enumerate(names):
                chosen = values == index
                if chosen.any():
                    ax.scatter(panel["points"][chosen, 0], panel["points"][chosen, 1], s=6, alpha=0.6, label=name)
            explained = panel["explained"]
            ax.set_title(f"{panel['title']}\nby {key[:-1]}", fontsize=9)
            ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)", fontsize=8)
            ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}%)", fontsize=8)
            ax.tick_params(labelsize=7)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, markerscale=2, loc="best")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
