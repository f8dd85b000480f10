"""What every task of the plugin shares: it reads a folder that ``process.sh`` wrote (``metadata.json``, one
``dict.txt``) and records that folder's identity in every checkpoint, where loading and resuming compare it; and
``--cpu-precision``, the precision of its forward passes and losses in training and validation
(``models/precision.py``)."""

from dataclasses import dataclass, field

import torch
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask

from ..models.precision import HELP, PRECISIONS, autocast, check_precision
from ..reliability.run_identity import KEY as IDENTITY_KEY
from ..reliability.run_identity import data_identity

OPTION = "--cpu-precision"


@dataclass
class StoredDataConfig(FairseqDataclass):
    """The options of every task's configuration."""

    cpu_precision: ChoiceEnum(PRECISIONS) = field(default="fp32", metadata={"help": HELP})


class StoredDataTask(FairseqTask):
    """Subclasses set ``self.dictionary`` and ``self.metadata`` (the folder's ``metadata.json``) in ``__init__``."""

    _identity = None
    _model_checked = False

    def __init__(self, cfg):
        super().__init__(cfg)
        # Before any data is read. A checkpoint opened for prediction has its task set to fp32 (checkpoint_loading.py).
        check_precision(self.precision, OPTION)

    @property
    def precision(self) -> str:
        return str(getattr(self.cfg, "cpu_precision", "fp32"))

    @property
    def identity(self) -> dict:
        """What this run trains on: stored in every checkpoint, compared wherever one is read."""
        if self._identity is None:
            self._identity = data_identity(self.cfg.data, self.metadata)
        return self._identity

    def get_checkpoint_dict(self) -> dict:
        """Merged by fairseq into the ``extra_state`` of every checkpoint it writes."""
        return {IDENTITY_KEY: self.identity}

    def _check_model(self, model) -> None:
        """bf16 needs a float32 model on the CPU: known only once fairseq's trainer has placed it."""
        if not self._model_checked:
            parameter = next(model.parameters())
            check_precision(self.precision, OPTION, parameter.device, parameter.dtype)
            self._model_checked = True

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if hasattr(criterion, "set_num_updates"):  # e.g. distillation's phases, which follow the update count
            criterion.set_num_updates(update_num)
        if self.precision == "fp32":
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        # fairseq's step with the forward and the loss under autocast; the backward outside it, as torch advises.
        self._check_model(model)
        model.train()
        model.set_num_updates(update_num)
        with torch.autograd.profiler.record_function("forward"), autocast(self.precision):
            loss, sample_size, logging_output = criterion(model, sample)
        if ignore_grad:
            loss *= 0
        with torch.autograd.profiler.record_function("backward"):
            optimizer.backward(loss)
        return loss, sample_size, logging_output

    def valid_step(self, sample, model, criterion):
        if self.precision != "fp32":
            self._check_model(model)
        with autocast(self.precision):
            return super().valid_step(sample, model, criterion)

    def max_positions(self):
        return self.metadata["max_positions"]

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
