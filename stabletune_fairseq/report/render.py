"""report.md from report.json (``summary.py``): the tables a person reads, and what each number is."""

from __future__ import annotations

from .runs import STAGE_TITLES
from .statistics import format_difference, format_summary

RULE_NOTES = {
    "best-avg": "uses every language's dev set (not zero-shot)",
    "best-en": "only English dev (true zero-shot transfer)",
    "best": "the task's own dev metric, on the dev set reported here (optimistic)",
    "best-mm": "MNLI's mismatched dev accuracy",
    "last": "none",
}


def _row(label: str, cells: dict, columns: list[str], fmt) -> str:
    return f"| {label} | " + " | ".join(fmt(cells.get(c)) for c in columns) + " |"


def _table(columns: list[str], header: list[str], rows: list[str]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|", *rows]


def _n(cells: dict) -> str:
    return str(max((s["n"] for s in cells.values()), default=0))


def score_columns(report: dict) -> list[str]:
    """The languages (GLUE: its dev sets, ``en``; MNLI ``m``, ``mm``), then ``average`` where there are several
    and ``gap`` where any run has one (English and another language)."""
    langs = report["languages"]
    has_gap = any(
        "gap" in cells
        for by_rule in report["scores"].values()
        for by_stage in by_rule.values()
        for by_metric in by_stage.values()
        for cells in by_metric.values()
    )
    return [*langs, *(["average"] if len(langs) > 1 else []), *(["gap"] if has_gap else [])]


def markdown(report: dict, images: list[str]) -> str:
    metric = report["metric"]
    columns = score_columns(report)
    seeds = report["seeds"]
    many = len(seeds) > 1
    lines = [
        f"# {report['task']}: {metric}" + (f" over {len(seeds)} seeds ({', '.join(map(str, seeds))})" if seeds else ""),
        "",
        f"Runs under `{report['target']}`.",
    ]
    lines += [
        "",
        "How to read it: each cell is the mean ± sample standard deviation over seeds (just the value "
        "for one run)"
        + ("; **average** is the mean over languages" if "average" in columns else "")
        + (
            "; **gap** is English minus the mean of the other languages (the cross-lingual transfer gap: "
            "smaller is better)"
            if "gap" in columns
            else ""
        )
        + ".",
    ]
    if report["differences"]:
        lines += [
            f"Differences from plain fine-tuning are per seed (same seed, same rule), shown as mean [95% interval]: "
            f"{report['interval']}. An interval that contains 0 is no evidence of a difference."
        ]
    if report["wall_s"]:
        walls = ", ".join(f"{STAGE_TITLES[s]} {format_summary(w, 0)} s" for s, w in report["wall_s"].items())
        lines += ["", f"Wall time per run (training and its evaluation): {walls}."]
    for split in report["splits"]:
        for rule in report["rules"]:
            scores = report["scores"].get(split, {}).get(rule)
            if not scores:
                continue
            lines += ["", f"## {split}, {report['rule_titles'][rule]} (`{rule}`)"]
            for m in report["metrics"]:
                rows = [
                    _row(f"{STAGE_TITLES[s]} (n={_n(v[m])})", v[m], columns, format_summary) for s, v in scores.items()
                ]
                lines += ["", f"{m}:", "", *_table(columns, ["run", *columns], rows)]
                diffs = report["differences"].get(split, {}).get(rule, {})
                if diffs:
                    rows = [
                        _row(f"{STAGE_TITLES[s]} − plain (n={_n(v[m])})", v[m], columns, format_difference)
                        for s, v in diffs.items()
                    ]
                    lines += [
                        "",
                        f"{m}, difference from plain fine-tuning:",
                        "",
                        *_table(columns, ["run", *columns], rows),
                    ]
    lines += _rules_side_by_side(report)
    lines += _agreement(report)
    if report["checkpoints"]:
        lines += ["", "## Which checkpoint each rule chose (update, per seed)", ""]
        rules = report["rules"]
        rows = [
            f"| {STAGE_TITLES[s]} | "
            + " | ".join(
                ", ".join(f"{seed}: {u}" if many else str(u) for seed, u in chosen.get(r, {}).items()) for r in rules
            )
            + " |"
            for s, chosen in report["checkpoints"].items()
        ]
        lines += _table(rules, ["run", *rules], rows)
    if report["missing"]:
        lines += ["", "## Missing or failed", "", *[f"- {m}" for m in report["missing"]]]
    if images:
        lines += ["", "## Plots", "", *[f"![{name}]({name})" for name in images]]
    return "\n".join(lines) + "\n"


def _rules_side_by_side(report: dict) -> list[str]:
    split = report["splits"][0]
    by_rule = report["scores"].get(split, {})
    if len(by_rule) < 2:
        return []
    rules = list(by_rule)
    stages = list(dict.fromkeys(s for r in rules for s in by_rule[r]))
    cells = lambda s: {r: by_rule[r].get(s, {}).get(report["metric"], {}).get("average") for r in rules}  # noqa: E731
    rows = [_row(STAGE_TITLES[s], cells(s), rules, format_summary) for s in stages]
    ways = ", ".join(f"`{r}` {RULE_NOTES[r]}" for r in rules)
    what = f"average {report['metric']}" if len(report["languages"]) > 1 else report["metric"]
    return [
        "",
        f"## Selection rules side by side ({split}, {what})",
        "",
        f"The same runs, {len(rules)} ways to pick the checkpoint: {ways}.",
        "",
        *_table(rules, ["run", *rules], rows),
    ]


def _agreement(report: dict) -> list[str]:
    split = report["splits"][0]
    by_rule = report["agreement"].get(split, {})
    if not by_rule:
        return []
    rule = "best-avg" if "best-avg" in by_rule else next(iter(by_rule))
    stages = by_rule[rule]
    columns = [*[lang for lang in report["languages"] if lang != "en"], "mean"]
    rows = [_row(STAGE_TITLES[s], v, columns, format_summary) for s, v in stages.items()]
    qa = report["metric"] in ("f1", "exact_match") and report["task"] not in ("udpos", "panx")
    what = (
        (
            "token F1 between the language's answer and the English answer to the same question (a lower bound "
            "across scripts)"
        )
        if qa
        else "percent of examples whose prediction equals the English prediction of the same example"
    )
    lines = [
        "",
        f"## Cross-lingual agreement with English ({split}, `{rule}`)",
        "",
        f"Per language: {what}; mean ± sd over seeds. Consistency regularisation claims to raise it.",
        "",
        *_table(columns, ["run", *columns], rows),
    ]
    diffs = report["agreement_differences"].get(split, {}).get(rule, {})
    if diffs:
        rows = [_row(f"{STAGE_TITLES[s]} − plain", v, columns, format_difference) for s, v in diffs.items()]
        lines += [
            "",
            "Agreement, difference from plain fine-tuning (same seed; mean [95% interval]):",
            "",
            *_table(columns, ["run", *columns], rows),
        ]
    return lines


SELECT_TITLES = {
    "avg": "mean dev average over seeds (checkpoints by dev average, `best-avg`)",
    "en": "mean English dev over seeds (checkpoints by English dev, `best-en`: true zero-shot)",
}


def sweep_markdown(report: dict, images: list[str]) -> str:
    """sweep.md from ``report/sweep.py``'s report: per configuration mean ± sd, the chosen configuration and its
    reported numbers, the per-language view, and the spread."""
    split, metric = report["reported_split"], report["metric"]
    langs = report["languages"]
    columns = [*langs, *(["average"] if len(langs) > 1 else [])]
    n_failed = sum(c["failed"] for c in report["configurations"])
    n_runs = sum(c["runs"] for c in report["configurations"])
    lines = [
        f"# {report['task']} sweep: {metric}, {len(report['configurations'])} configurations",
        "",
        f"Runs under `{report['target']}`: {n_runs} runs, {n_failed} failed (listed below, left out of every mean).",
        "",
        f"Selection (`--select {report['select']}`): the configuration with the best "
        f"{SELECT_TITLES[report['select']]}; "
        f"{report['tie_rule']}. "
        + (
            "The chosen configuration is reported on **test**: selection on dev, reporting on test."
            if split == "test"
            else "The test sets carry no labels: the chosen configuration is reported on **dev**, the data it was "
            "selected on (optimistic)."
        ),
        "",
        "Cells: mean ± sample standard deviation over seeds (n in the row label).",
    ]
    for stage in report["stages"]:
        title = STAGE_TITLES.get(stage, stage)
        selection = report["selection"].get(stage, {})
        lines += ["", f"## {title}"]
        for how in (report["select"], *[h for h in selection if h != report["select"]]):
            if how not in selection:
                continue
            chosen = selection[how]
            rule = chosen["rule"]
            for sp in report["splits"]:
                table = report["scores"].get(stage, {}).get(sp, {}).get(rule)
                if not table or (how != report["select"] and sp == "valid"):
                    continue
                rows = [
                    _row(
                        f"{'**' + n + '**' if n == chosen['chosen'] else n} (n={_n(cells)})",
                        cells,
                        columns,
                        format_summary,
                    )
                    for n, cells in table.items()
                ]
                lines += [
                    "",
                    f"{sp}, `{rule}` checkpoints, per configuration:",
                    "",
                    *_table(columns, ["configuration", *columns], rows),
                ]
            dev = format_summary(chosen["dev"])
            lines += [
                "",
                f"**Chosen by {'English dev' if how == 'en' else 'dev average'}** (`--select {how}`): "
                f"`{chosen['chosen']}` (dev {chosen['dev_cell']} {dev}); its {split} numbers:",
                "",
                *_table(
                    columns,
                    ["configuration", *columns],
                    [_row(chosen["chosen"], chosen["reported"], columns, format_summary)],
                ),
            ]
        view = report["per_language"].get(stage)
        if view and view["chosen"]:
            lines += ["", f"Second view, {report['xlm_view']}.", ""]
            lines += _table(
                ["language", "configuration", split],
                ["language", "configuration (by its own dev)", f"{split} {metric}"],
                [
                    f"| {lang} | {view['chosen'][lang]} | {format_summary(view['reported'][lang])} |"
                    for lang in view["chosen"]
                ],
            )
            lines += ["", f"Average of the per-language choices: {view['average']:.2f}."]
        spread = report["spread"].get(stage, {})
        if spread:
            lines += [
                "",
                f"How much the choice moves the reported number ({split} average {metric}, mean over seeds):",
                "",
            ]
            rows = []
            for how, s in spread.items():
                honest = "–" if s["honest_mean"] is None else f"{s['honest_mean']:.2f}"
                optimism = "–" if s["optimism"] is None else f"{s['optimism']:+.2f}"
                rows.append(
                    f"| `--select {how}` ({s['rule']}) | {honest} | {s['oracle_mean']:.2f} (`{s['oracle']}`) | "
                    f"{optimism} | {s['grid_min']:.2f} – {s['grid_max']:.2f} ({s['grid_max'] - s['grid_min']:.2f}) | "
                    f"{s['best_single_run']:.2f} |"
                )
            lines += _table(
                [],
                [
                    "selection",
                    f"chosen on dev, {split}",
                    f"chosen on {split} itself",
                    "optimism",
                    "grid min – max (range)",
                    "best single run",
                ],
                rows,
            )
            lines += [
                "",
                f"*chosen on {split} itself*: the configuration with the best mean on the data it is reported on; "
                "*optimism*: that minus the honest number (selection on dev). *grid min – max*: the number any "
                "configuration of the grid would have reported; *best single run*: the highest single seed of any "
                "configuration (reporting the best run of the best configuration)."
                + (
                    " Without labelled test data both columns are dev, and the optimism is 0 by construction."
                    if split == "valid"
                    else ""
                ),
            ]
    if report["failed"]:
        lines += ["", "## Failed runs (not in any mean)", "", *[f"- {f}" for f in report["failed"]]]
    if images:
        lines += ["", "## Plot", "", *[f"![{name}]({name})" for name in images]]
    return "\n".join(lines) + "\n"


def compression_markdown(report: dict) -> str:
    """compression.md from ``report/compression.py``'s report: per stage mean ± sd over seeds, each task's rows
    (Tatoeba languages, STS tracks) and average, then each stage minus stage 1 (the uncompressed assistant)."""
    lines = [
        f"# The compressed student after each stage: {len(report['seeds'])} seeds",
        "",
        f"Runs under `{report['target']}` (run_seeds.sh COMPRESS). Each stage's checkpoint_best, scored by "
        "stabletune-embed-eval (cosine). Cells: mean ± sample standard deviation over seeds (n in the row label).",
    ]
    if report["wall_s"]:
        wall = format_summary(report["wall_s"], 0)
        lines += ["", f"Wall time of a seed (the stages and their evaluation): {wall} s."]
    for task in report["tasks"]:
        for metric, by_stage in report["scores"][task].items():
            columns = list(dict.fromkeys(name for cells in by_stage.values() for name in cells))
            rows = [
                _row(f"{report['stage_titles'][stage]} (n={_n(cells)})", cells, columns, format_summary)
                for stage, cells in by_stage.items()
            ]
            lines += ["", f"## {task}: {metric}", "", *_table(columns, ["stage", *columns], rows)]
            differences = report["differences"].get(task, {}).get(metric, {})
            if differences:
                rows = [
                    _row(f"stage {stage} − stage 1 (n={_n(cells)})", cells, columns, format_difference)
                    for stage, cells in differences.items()
                ]
                lines += ["", "Paired by seed, with the 95% t interval:", "", *_table(columns, ["", *columns], rows)]
    if report["missing"]:
        lines += ["", "## Missing", "", *[f"- {m}" for m in report["missing"]]]
    return "\n".join(lines) + "\n"
