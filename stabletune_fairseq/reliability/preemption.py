"""Preemption: on SIGTERM or SIGUSR1 (what cluster schedulers send before they kill a job; SLURM:
``--signal=USR1@<seconds>``), finish the current update, write ``checkpoint_last.pt``, and exit with
status 75 (``exit_status.PREEMPTED``), so that a requeue script can tell it from a failure. Re-running the
same command resumes from that checkpoint with nothing lost.

The handler only notes the signal; the training loop asks ``requested`` after every update. With several
ranks, the ranks agree (a max all-reduce of one number per update, negligible next to the gradients'), so
all of them stop after the same update even when the signal reached only some: a rank that stopped alone
would leave the others waiting for it in the next collective.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal

import torch
from fairseq.distributed import utils as distributed_utils

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_received: str | None = None


class Preempted(Exception):
    def __init__(self, update: int, checkpoint: str):
        self.update, self.checkpoint = update, checkpoint
        super().__init__(
            f"preempted by {_received or 'a signal'} after update {update}: {checkpoint} holds it; "
            "re-run the same command to resume"
        )


def _on_signal(number, frame) -> None:
    global _received
    if _received is not None:
        return  # a scheduler signals every process, and run_xtreme.sh passes it on too: one is enough
    _received = signal.Signals(number).name
    logger.warning(
        "%s received: finishing the current update, then saving checkpoint_last.pt and exiting with "
        "status 75 (preempted)",
        _received,
    )
    for child in multiprocessing.active_children():  # fairseq's own GPU ranks, when it spawned them
        os.kill(child.pid, signal.SIGUSR1)


def install() -> None:
    """Every process that trains, and the process that spawns fairseq's GPU ranks (it passes the signal on).
    A spawned rank itself handles only USR1: torch stops the other ranks with SIGTERM when one fails, and a
    rank that took that for a preemption would wait for the failed one forever."""
    spawned = multiprocessing.parent_process() is not None
    for number in SIGNALS:
        if not (spawned and number == signal.SIGTERM):
            signal.signal(number, _on_signal)


def requested(trainer) -> bool:
    """Whether any rank received a preemption signal (a collective: every rank must ask, after every update)."""
    received = _received is not None
    if trainer.data_parallel_world_size > 1:
        flag = torch.tensor([float(received)], device=trainer.device)
        flag = distributed_utils.all_reduce(flag, group=trainer.data_parallel_process_group, op="max")
        received = bool(flag.item() > 0)
    return received
