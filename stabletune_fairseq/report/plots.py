"""The report's pictures (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .runs import STAGE_TITLES  # noqa: E402

COLOURS = {
    "plain": "#7f7f7f",
    "stage1": "#1f77b4",
    "stage2": "#d62728",
    "rdrop": "#2ca02c",
    "r3f": "#ff7f0e",
    "kd": "#9467bd",
    "run": "#1f77b4",
}
DPI = 100
SWEEP_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


def score_bars(report: dict, split: str, rule: str, path: str) -> bool:
    """Per language (and the average, where there are several): one bar per stage, the mean over seeds, error
    bars ± sd."""
    scores = report["scores"].get(split, {}).get(rule)
    if not scores:
        return False
    metric = report["metric"]
    columns = [*report["languages"], *(["average"] if len(report["languages"]) > 1 else [])]
    stages = list(scores)
    width = 0.8 / len(stages)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.9 * len(columns) + 2), 4.0), dpi=DPI)
    for i, stage in enumerate(stages):
        cells = scores[stage][metric]
        xs = [j + (i - (len(stages) - 1) / 2) * width for j, c in enumerate(columns) if c in cells]
        means = [cells[c]["mean"] for c in columns if c in cells]
        errors = [cells[c]["sd"] or 0.0 for c in columns if c in cells]
        n = max(cells[c]["n"] for c in columns if c in cells)
        axes.bar(
            xs, means, width, yerr=errors, capsize=3, color=COLOURS.get(stage), label=f"{STAGE_TITLES[stage]} (n={n})"
        )
    low = min(
        cells[c]["mean"] - (cells[c]["sd"] or 0)
        for s in stages
        for cells in [scores[s][metric]]
        for c in cells
        if c in columns
    )
    high = max(
        cells[c]["mean"] + (cells[c]["sd"] or 0)
        for s in stages
        for cells in [scores[s][metric]]
        for c in cells
        if c in columns
    )
    margin = max(1.0, 0.15 * (high - low))
    # differences of a few points stay visible; room at the top for the legend; below 0 only for a score that
    # can be negative (a Matthews or Pearson correlation)
    axes.set_ylim(low - margin if low < 0 else max(0.0, low - margin), high + 3 * margin)
    axes.set_xticks(range(len(columns)), columns)
    axes.set_ylabel(f"{split} {metric}")
    axes.set_title(
        f"{report['task']}: {split} {metric}, {report['rule_titles'][rule]}"
        + (", mean ± sd over seeds" if len(report["seeds"]) > 1 else ""),
        fontsize=10,
    )
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper center", ncol=len(stages), fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def training_curves(curves: dict[str, tuple[str, dict]], path: str) -> bool:
    """Task loss, R1, R2 and the dev average against updates; a line per run, coloured by stage.

    ``curves``: run name -> (stage, ``curves.read_curves`` output)."""
    if not curves:
        return False
    panels = [("task_loss", "task loss"), ("r1", "R1 (views)"), ("r2", "R2 (teacher)"), ("valid", "dev average")]
    figure, grid = plt.subplots(2, 2, figsize=(10.0, 7.0), dpi=DPI)
    shown = set()
    for _name, (stage, run) in curves.items():
        for axes, (key, _) in zip(grid.flat, panels):
            points = run["valid"] if key == "valid" else run["train"].get(key, [])
            if not points:
                continue
            label = STAGE_TITLES[stage] if stage not in shown else None
            axes.plot(
                [u for u, _ in points],
                [v for _, v in points],
                color=COLOURS.get(stage),
                alpha=0.8,
                marker="o" if key == "valid" or len(points) == 1 else None,
                markersize=3,
                linewidth=1.2,
                label=label,
            )  # a single point is no line: without a marker it would not show
        shown.add(stage)
    metric = next((run["valid_metric"] for _, run in curves.values() if run["valid_metric"]), "dev average")
    for axes, (key, title) in zip(grid.flat, panels):
        axes.set_title(metric if key == "valid" else title)
        axes.set_xlabel("updates")
        axes.grid(alpha=0.3)
    grid.flat[0].legend(fontsize=8)
    figure.suptitle("Training curves (one line per run; stage 2 counts its own updates)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def sweep_spread(report: dict, path: str) -> bool:
    """Per configuration, the reported number (the average on the reported split, the selection's checkpoints): each
    seed a dot, the mean ± sd a bar; the configuration chosen on dev ringed, the one the reported data itself would
    choose marked; one colour per stage."""
    select = report["select"]
    stages = [s for s in report["stages"] if select in report["spread"].get(s, {})]
    if not stages:
        return False
    names = [c["name"] for c in report["configurations"]]
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.5), dpi=DPI)
    width = 0.8 / len(stages)
    for i, stage in enumerate(stages):
        spread = report["spread"][stage][select]
        chosen = report["selection"][stage][select]["chosen"]
        offset = (i - (len(stages) - 1) / 2) * width
        for j, name in enumerate(names):
            values = spread["seed_values"].get(name)
            if not values:
                continue
            x = j + offset
            mean = sum(values) / len(values)
            sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
            colour = SWEEP_COLOURS[i % len(SWEEP_COLOURS)]  # plain fine-tuning's grey would hide the dots
            axes.errorbar(
                x,
                mean,
                yerr=sd,
                fmt="s",
                color=colour,
                capsize=4,
                markersize=6,
                label=STAGE_TITLES.get(stage, stage) if j == 0 else None,
            )
            axes.scatter([x] * len(values), values, color=colour, alpha=0.45, s=14)
            if name == chosen:
                axes.scatter(
                    [x],
                    [mean],
                    s=260,
                    facecolors="none",
                    edgecolors="black",
                    linewidths=1.5,
                    label="chosen on dev" if i == 0 else None,
                )
            if name == spread["oracle"]:
                axes.scatter(
                    [x],
                    [mean],
                    marker="*",
                    s=160,
                    color="gold",
                    edgecolors="black",
                    zorder=5,
                    label=f"chosen on {report['reported_split']} itself" if i == 0 else None,
                )
    axes.set_xticks(range(len(names)), [n.replace(",", "\n") for n in names], fontsize=8)
    axes.set_ylabel(f"{report['reported_split']} average {report['metric']}")
    axes.set_title(
        f"{report['task']}: each configuration's number, mean ± sd over seeds (dots: seeds), --select {select}",
        fontsize=9,
    )
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
