"""The training recipes' decisions: per-task defaults (``defaults.py``, one table) and the ``fairseq-train``
command each bash recipe in ``run_scripts/`` runs (``xtreme.py``, ``mlm.py``, ``sentence_distillation.py``).

The bash scripts keep what bash does well (signals, CPU ranks, the log, exit statuses); they get their command
from ``python -m stabletune_fairseq.cli.recipe``. ``defaults.py`` and ``run_record.py`` are standard library
only, so that bash can run them by path without the package's import of fairseq.
"""
