"""stabletune-fairseq: consistency-regularised cross-lingual fine-tuning of XLM-R, as a fairseq plugin.

Use it with ``fairseq-train --user-dir stabletune_fairseq``. fairseq only auto-imports ``tasks/`` and
``models/`` of a user dir, so every registering module is imported here explicitly.
"""
from .checkpoint_safety import allow_fairseq_checkpoints

allow_fairseq_checkpoints()

from . import criterions, models, optim, tasks  # noqa: E402,F401
