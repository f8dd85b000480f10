"""``stabletune-report``: tables, statistics over seeds, cross-lingual agreement and plots of training runs.

``runs.py`` finds the runs and their evaluation results, ``selection.py`` the checkpoint of each
selection rule (and evaluates them), ``statistics.py`` means, deviations and paired intervals,
``agreement.py`` agreement with English, ``curves.py`` training curves from fairseq's logs,
``plots.py`` the pictures, ``render.py`` report.md and report.json.
"""
