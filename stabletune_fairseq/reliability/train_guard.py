"""What the plugin adds to ``fairseq-train``'s own loop:

- one run per save dir (``save_dir_lock``), taken by the first rank before training starts;
- preemption (``preemption``): after every update, a signal received means save and exit 75;
- checkpoint copies that cannot cut ``checkpoint_last.pt`` short, and a full disk said as such
  (``disk_writes``);
- exit statuses (``exit_status``): a ``BadInput`` (a wrong checkpoint, a save dir in use) is one line and
  status 2, a full disk one line and status 1, a preemption status 75; anything else stays fairseq's
  traceback and status 1.

fairseq has no hooks for these, so three of its functions are wrapped: ``distributed_utils.call_main``
(around the whole run, in every rank), ``validate_and_save`` of the train module (after every update)
and ``checkpoint_utils.save_checkpoint``; ``PathManager.copy`` becomes ``disk_writes.guarded_copy`` (atomic for
local paths, fairseq's own for the others), and torch may load the types of official releases
(``checkpoint_safety.allow_fairseq_checkpoints``, for fairseq's own loads). Each wrapper calls the original and
changes nothing else.

Training processes only. Importing the plugin installs the guard when the process is fairseq-train
(``training_process``): its ``__main__`` module is ``fairseq_cli.train`` itself (``python -m fairseq_cli.train``),
or a script file whose ``cli_main`` is ``fairseq_cli.train.cli_main`` (the ``fairseq-train`` console script,
whatever its file is called). fairseq imports the plugin (``--user-dir``) while parsing the arguments, after that entry
point is loaded. The ranks run_xtreme.sh starts with ``--distributed-no-spawn`` are such processes; GPU ranks
that fairseq spawns re-load the parent's ``__main__``, and ``guarded_main`` installs what a rank needs in any
case. ``fairseq-validate``, ``fairseq-interactive``, a notebook or a test process importing the plugin keep
fairseq as it is. Callers that drive fairseq's train loop themselves (through ``distributed_utils.call_main``
with the train module's ``main``) call ``install()``.

Where fairseq's train loop lacks what the guard hooks into (``check_train_loop``), training refuses to start
(status 2, one line naming fairseq's version) rather than run without preemption.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys

import fairseq
from fairseq import checkpoint_utils
from fairseq.distributed import utils as distributed_utils
from fairseq.file_io import PathManager

from . import preemption
from .checkpoint_safety import allow_fairseq_checkpoints
from .disk_writes import DiskFull, disk_full_error, guarded_copy, is_disk_full
from .exit_status import BAD_INPUT, FAILED, PREEMPTED, BadInput
from .save_dir_lock import SaveDirLock

logger = logging.getLogger(__name__)

TRAIN_MODULE = "fairseq_cli.train"
UPDATE_HOOK = ("validate_and_save", ("cfg", "trainer", "task", "epoch_itr", "valid_subsets", "end_of_epoch"))
SAVE = ("save_checkpoint", ("cfg", "trainer", "epoch_itr", "val_loss"))


class UnsupportedFairseq(BadInput, RuntimeError):
    """A fairseq whose train loop lacks a function the guard wraps."""


class _Run:
    saved_update: int | None = None  # the update of the last checkpoint written, to save it once only


def training_process() -> bool:
    """Whether this process is fairseq-train (the rule in the module's docstring)."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) == TRAIN_MODULE:
        return True
    train = sys.modules.get(TRAIN_MODULE)
    entry = getattr(main, "cli_main", None)  # a notebook's or ``python -c``'s __main__ has no __file__
    return (
        train is not None
        and entry is not None
        and entry is getattr(train, "cli_main", None)
        and getattr(main, "__file__", None) is not None
    )


def _parameters(function) -> str | None:
    try:
        return f"({', '.join(inspect.signature(function).parameters)})"
    except (TypeError, ValueError):
        return None


def check_train_loop(train_module) -> None:
    """``UnsupportedFairseq`` unless ``train_module`` has ``validate_and_save`` with the parameters the guard's
    wrapper passes on, called by its ``train`` (after every update), and ``checkpoint_utils.save_checkpoint``
    has the parameters of its wrapper."""
    name = getattr(train_module, "__name__", "the train module")
    problems = []
    hook, parameters = UPDATE_HOOK[0], f"({', '.join(UPDATE_HOOK[1])})"
    function = getattr(train_module, hook, None)
    if not callable(function):
        problems.append(f"{name} has no {hook}{parameters}")
    elif _parameters(function) != parameters:
        problems.append(f"{name}.{hook} takes {_parameters(function)}, not {parameters}")
    else:
        train = getattr(train_module, "train", None)
        code = getattr(inspect.unwrap(train), "__code__", None) if callable(train) else None
        if code is None or hook not in code.co_names:
            problems.append(f"{name}.train does not call {hook}")
    save, parameters = SAVE[0], f"({', '.join(SAVE[1])})"
    if _parameters(getattr(checkpoint_utils, save, None)) != parameters:
        problems.append(f"fairseq.checkpoint_utils has no {save}{parameters}")
    if problems:
        raise UnsupportedFairseq(
            f"fairseq {getattr(fairseq, '__version__', '(version unknown)')} is not supported for training with "
            f"this plugin: {'; '.join(problems)} (its preemption, save-dir lock and checkpoint safety hook into "
            "them; install.sh installs the fairseq it supports)"
        )


def _fail(error: BaseException, status: int):
    print(f"fairseq-train: {error}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def guarded_main(main, cfg, **kwargs):
    """fairseq-train's ``main`` in one rank, under the lock, with preemption and our exit statuses."""
    lock = None
    try:
        train_module = sys.modules[main.__module__]
        check_train_loop(train_module)
        _install_in_rank()
        _wrap_update_loop(train_module)
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
    original = train_module.validate_and_save
    if getattr(original, "stabletune", False):
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


def _install_in_rank() -> None:
    """What every process that trains needs (a spawned rank included); once."""
    if getattr(checkpoint_utils.save_checkpoint, "stabletune", False):
        return
    allow_fairseq_checkpoints()
    checkpoint_utils.save_checkpoint = _guarded_save(checkpoint_utils.save_checkpoint)
    PathManager.copy = staticmethod(guarded_copy(PathManager.copy))


def install() -> None:
    """Guard the fairseq-train runs of this process: those of ``distributed_utils.call_main(cfg, main)`` with
    the train module's ``main``. Imported by fairseq-train, the plugin calls it itself; a second call changes
    nothing."""
    if not getattr(distributed_utils.call_main, "stabletune", False):
        distributed_utils.call_main = _guarded_call_main(distributed_utils.call_main)
    _install_in_rank()
