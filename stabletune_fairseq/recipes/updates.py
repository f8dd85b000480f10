"""Count the updates a ``fairseq-train`` command will make, from the dataset it actually trains on.

The recipes size the learning-rate schedule (``--total-num-update``, ``--warmup-updates``) with it, so that
stage 2, which trains on the rows plus their augmented copies (twice as many batches per epoch, or for QA the
windows of both), decays to 0 at its real last update and not half-way. The task is set up and its training
set batched exactly as fairseq's trainer does (same batch size, length grouping, batch-size multiple, shards
of a distributed run, update frequency), for every epoch up to ``--max-epoch`` (a dataset whose items change
from epoch to epoch is batched anew for each).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import traceback

from .plan import RecipeError


def count_updates(argv: list[str]) -> tuple[int, list[int], int]:
    """``fairseq-train`` arguments -> (training items of epoch 1, updates of each epoch, their sum capped by
    ``--max-update``)."""
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, argv))
    utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    dataset = task.dataset("train")
    world = max(cfg.distributed_training.distributed_world_size, 1)
    update_freq = cfg.optimization.update_freq[0]
    epochs = cfg.optimization.max_epoch or 1
    per_epoch, rows = [], len(dataset)
    for epoch in range(1, epochs + 1):
        iterator = task.get_batch_iterator(
            dataset=dataset,
            max_tokens=cfg.dataset.max_tokens,
            max_sentences=cfg.dataset.batch_size,
            max_positions=task.max_positions(),
            ignore_invalid_inputs=True,
            required_batch_size_multiple=cfg.dataset.required_batch_size_multiple,
            seed=cfg.common.seed,
            num_shards=world,
            shard_id=0,
            epoch=epoch,
        )
        # Every rank gets ceil(batches / world) batches (shards are padded); updates group update_freq of them.
        per_epoch.append(math.ceil(len(iterator) / update_freq))
        if getattr(dataset, "can_reuse_epoch_itr_across_epochs", False):
            per_epoch += [per_epoch[0]] * (epochs - 1)  # the same batches every epoch
            break
    total = sum(per_epoch)
    if cfg.optimization.max_update:
        total = min(total, cfg.optimization.max_update)
    return rows, per_epoch, total


def shown_per_epoch(per_epoch: list[int]) -> str:
    """One number when every epoch has as many updates, else ``1,2,...``."""
    return str(per_epoch[0]) if len(set(per_epoch)) == 1 else ",".join(map(str, per_epoch))


def count_for_recipe(train_args: list[str], failure: str) -> tuple[int, list[int], int]:
    """``count_updates`` for a recipe: its stdout dropped, fairseq's logging below warnings off; when it fails,
    its reason (``error: ...``, fairseq's usage error or a traceback) and then the recipe's ``failure``."""
    logging.disable(logging.WARNING)
    program, sys.argv[0] = sys.argv[0], "count_updates.py"  # fairseq's usage errors name the counting step
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # stdout carries the recipe's lines only
            return count_updates(train_args + ["--total-num-update", "1"])
    except (ValueError, FileNotFoundError) as err:
        raise RecipeError(f"error: {err}\n{failure}") from None
    except SystemExit:  # fairseq's argument parser said why (usage and error, on stderr)
        raise RecipeError(failure) from None
    except Exception:  # anything else (a dataset fairseq cannot batch, ...): its traceback, then the recipe's message
        traceback.print_exc()
        raise RecipeError(failure) from None
    finally:
        logging.disable(logging.NOTSET)
        sys.argv[0] = program
