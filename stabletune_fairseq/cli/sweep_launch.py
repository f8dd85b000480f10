"""run_sweep.sh's ``LAUNCHER=local|slurm``: the plan's jobs through submitit (``recipes/sweep_launch.py``).

    python -m stabletune_fairseq.cli.sweep_launch <plan file> <out_root>

Exit status 0 when every job finished, 1 when any failed, 2 on bad settings, 75 when a job was still preempted.
"""

from __future__ import annotations

import sys

from ..recipes.plan import RecipeError


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    from ..recipes.sweep_launch import launch

    try:
        return launch(argv[0], argv[1], say=lambda line: print(line, flush=True))
    except RecipeError as err:
        print(err, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
