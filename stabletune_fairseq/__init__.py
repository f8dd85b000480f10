"""stabletune-fairseq: consistency-regularised cross-lingual fine-tuning of XLM-R, as a fairseq plugin.

Use it with ``fairseq-train --user-dir stabletune_fairseq``. fairseq only auto-imports ``tasks/`` and
``models/`` of a user dir, so every registering module is imported here explicitly.
"""
import logging

# fairseq's speech task logs "Please install tensorboardX" on import, on every command: not ours to act on.
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

from .reliability.checkpoint_safety import allow_fairseq_checkpoints  # noqa: E402

allow_fairseq_checkpoints()

from . import criterions, models, optim, tasks  # noqa: E402,F401
from .reliability import train_guard  # noqa: E402

train_guard.install()
