"""What the plugin adds to ``fairseq-train``'s own loop, installed when the plugin is imported:

- one run per save dir (``save_dir_lock``), taken by the first rank before training starts;
- preemption (``preemption``): after every update, a signal received means save and exit 75;
- checkpoint copies that cannot cut ``checkpoint_last.pt`` short, and a full disk said as such
  (``disk_writes``);
- exit statuses (``exit_status``): a ``BadInput`` (a wrong checkpoint, a save dir in use) is one line and
  status 2, a full disk one line and status 1, a preemption status 75; anything else stays fairseq's
  traceback and status 1.

fairseq has no hooks for these, so three of its functions are wrapped: ``distributed_utils.call_main``
(around the whole run, in every rank), ``validate_and_save`` of ``fairseq_cli.train`` (after every update)
and ``checkpoint_utils.save_checkpoint``; and ``PathManager.copy`` is replaced. Each wrapper calls the
original and changes nothing else.
"""
from __future__ import annotations

import functools
import logging
import sys

from fairseq import checkpoint_utils
from fairseq.distributed import utils as distributed_utils
from fairseq.file_io import PathManager

from . import preemption
from .disk_writes import DiskFull, atomic_copy, disk_full_error, is_disk_full
from .exit_status import BAD_INPUT, FAILED, PREEMPTED, BadInput
from .save_dir_lock import SaveDirLock

logger = logging.getLogger(__name__)


class _Run:
    saved_update: int | None = None  # the update of the last checkpoint written, to save it once only


def _fail(error: BaseException, status: int):
    print(f"fairseq-train: {error}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def guarded_main(main, cfg, **kwargs):
    """fairseq-train's ``main`` in one rank, under the lock, with preemption and our exit statuses."""
    _wrap_update_loop(sys.modules[main.__module__])
    lock = None
    try:
        if distributed_utils.is_master(cfg.distributed_training) and not cfg.checkpoint.no_save:
            lock = SaveDirLock(cfg.checkpoint.save_dir).acquire()
        preemption.install()
        return main(cfg, **kwargs)
    except BadInput as error:
        _fail(error, BAD_INPUT)
    except DiskFull as error:
        _fail(error, FAILED)
    except preemption.Preempted as stop:
        logger.warning("%s", stop)
        _fail(stop, PREEMPTED)
    finally:
        if lock is not None:
            lock.release()


def _guarded_call_main(original):
    @functools.wraps(original)
    def call_main(cfg, main, **kwargs):
        import torch.multiprocessing

        preemption.install()  # in the process that may spawn fairseq's GPU ranks: passes signals on
        try:
            return original(cfg, functools.partial(guarded_main, main), **kwargs)
        except torch.multiprocessing.ProcessExitedException as error:  # a spawned rank's status is the run's
            if error.exit_code in (BAD_INPUT, FAILED, PREEMPTED):
                raise SystemExit(error.exit_code) from None
            raise
    call_main.stabletune = True
    return call_main


def _wrap_update_loop(train_module) -> None:
    original = getattr(train_module, "validate_and_save", None)
    if original is None or getattr(original, "stabletune", False):
        return

    @functools.wraps(original)
    def validate_and_save(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch):
        valid_losses, should_stop = original(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch)
        if not should_stop and preemption.requested(trainer):
            update = trainer.get_num_updates()
            if _Run.saved_update != update:
                checkpoint_utils.save_checkpoint(cfg.checkpoint, trainer, epoch_itr, None)
            raise preemption.Preempted(update, f"{cfg.checkpoint.save_dir}/checkpoint_last.pt")
        return valid_losses, should_stop
    validate_and_save.stabletune = True
    train_module.validate_and_save = validate_and_save


def _guarded_save(original):
    @functools.wraps(original)
    def save_checkpoint(cfg, trainer, epoch_itr, val_loss):
        try:
            result = original(cfg, trainer, epoch_itr, val_loss)
        except Exception as error:
            if is_disk_full(error):
                raise disk_full_error(cfg.save_dir, trainer.get_num_updates()) from None
            raise
        _Run.saved_update = trainer.get_num_updates()
        return result
    save_checkpoint.stabletune = True
    return save_checkpoint


def install() -> None:
    if getattr(distributed_utils.call_main, "stabletune", False):
        return
    distributed_utils.call_main = _guarded_call_main(distributed_utils.call_main)
    checkpoint_utils.save_checkpoint = _guarded_save(checkpoint_utils.save_checkpoint)
    PathManager.copy = staticmethod(atomic_copy)
    if "fairseq_cli.train" in sys.modules:
        _wrap_update_loop(sys.modules["fairseq_cli.train"])
