"""stabletune-fairseq: consistency-regularised cross-lingual fine-tuning of XLM-R, as a fairseq plugin.

Use it with ``fairseq-train --user-dir stabletune_fairseq``. fairseq only auto-imports ``tasks/`` and
``models/`` of a user dir, so every registering module is imported here explicitly.

Importing it registers its tasks, models, criteria and optimizer and changes nothing else in fairseq or torch,
except in fairseq-train, where it installs the training guard (``reliability/train_guard.py``: when and how).
"""

import logging

# fairseq's speech task logs "Please install tensorboardX" on import, on every command: not ours to act on.
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

from . import criterions, models, optim, tasks  # noqa: E402,F401
from .reliability import train_guard  # noqa: E402

if train_guard.training_process():
    train_guard.install()


def load_model(checkpoint, task_dir=None, device=None, batch_size: int = 32, precision: str = "fp32"):
    """A fine-tuned checkpoint ready to predict on raw text (``inference/loaded_model.py``, docs/prediction.md):
    ``load_model("<save>/checkpoint_best.pt").predict([("premise", "hypothesis")])``. Imported when called, so
    that the plugin's import (what fairseq-train needs) stays what it is."""
    from .inference.loaded_model import load_model as load

    return load(checkpoint, task_dir=task_dir, device=device, batch_size=batch_size, precision=precision)
