"""A results dict of ``evaluation.py`` as the markdown people read (``results.md`` and the console)."""

from __future__ import annotations

TITLES = {
    "tatoeba": "Tatoeba (XTREME retrieval)",
    "bucc": "BUCC 2018 (margin mining)",
    "sts": "STS (cosine similarity)",
}
COUNTS = {
    "tatoeba": ("n",),
    "bucc": ("gold_pairs", "predicted", "source_sentences", "english_sentences", "threshold"),
    "sts": ("n",),
}


def _cell(value) -> str:
    return "–" if value is None else str(value)


def markdown(results: dict) -> str:
    task = results["task"]
    rows_name, rows = (
        ("track", results["per_track"]) if "per_track" in results else ("language", results["per_language"])
    )
    metrics, counts = results["metrics"], COUNTS[task]
    settings, truncated = results.get("settings", {}), results.get("truncated", {})
    split = f" {results['split']}" if "split" in results else ""
    lines = [f"# {TITLES[task]}{split}: {results.get('checkpoint', '')}", ""]
    if settings:
        lines += [
            f"layer {settings['layer']} of {results['model']['layers']}, {settings['pooling']} pooling, prefix "
            f"{settings['prefix']!r}, batch {settings['batch_size']}, {settings['device']}"
            f"{' bf16' if settings.get('precision') == 'bf16' else ''}; "
            f"{truncated['sentences']} of {truncated['of']} sentences cut to {truncated['max_tokens']} tokens"
            + (f"; {results['seconds']} s" if "seconds" in results else ""),
            "",
        ]
    lines += [
        f"| {rows_name} | " + " | ".join(metrics + list(counts)) + " |",
        "|---|" + "---|" * (len(metrics) + len(counts)),
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(row.get(m)) for m in metrics + list(counts)) + " |")
    if results["average"]:
        average = results["average"]
        lines.append(
            "| **average** | "
            + " | ".join(_cell(average[m]) for m in metrics)
            + f" | {average['count']} {rows_name}{'s' if average['count'] != 1 else ''} |"
            + " |" * (len(counts) - 1)
        )
    notes = list(results["notes"])
    for name, reasons in results["skipped"].items():
        notes += [f"{name}: {count} {reason}" for reason, count in reasons.items()]
    if task == "bucc":
        notes += [
            f"{name}: threshold from {row['threshold_from']}" for name, row in rows.items() if row.get("threshold_from")
        ]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
