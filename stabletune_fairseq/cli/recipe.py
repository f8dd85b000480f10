"""The Python half of the bash recipes in ``run_scripts/``: builds a recipe's ``fairseq-train`` command
(``recipes/``) and writes it, with its info line, to a file the script reads.

    python -m stabletune_fairseq.cli.recipe <xtreme|mlm|distill-embeddings|sweep> <plan file> <repo root> <python>
        <script as invoked> <the recipe's own arguments ...>

Progress lines go to stdout, errors to stderr (exit status 2), as the scripts printed them.
"""

from __future__ import annotations

import importlib
import sys

from ..recipes.plan import Invocation, RecipeError

BUILDERS = {
    "xtreme": ("xtreme", 4),
    "mlm": ("mlm", 3),
    "distill-embeddings": ("sentence_distillation", 3),
    "sweep": ("sweep", 4),  # run_sweep.sh: the grid's configurations, each a run_seeds.sh command
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 5 or argv[0] not in BUILDERS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    kind, plan_file, root, python, header, *rest = argv
    module, positional = BUILDERS[kind]
    build = importlib.import_module(f"..recipes.{module}", __package__).build
    if len(rest) < positional:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        plan = build(
            *rest[:positional],
            rest[positional:],
            Invocation(root, python, header, sys.stdout.isatty(), lambda line: print(line, flush=True)),
        )
    except RecipeError as err:
        sys.stdout.flush()
        print(err, file=sys.stderr)
        return 2
    plan.write(plan_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
