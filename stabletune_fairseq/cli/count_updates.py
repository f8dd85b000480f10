"""Count the updates a ``fairseq-train`` command will make, from the dataset it actually trains on.

    python -m stabletune_fairseq.cli.count_updates <fairseq-train arguments ...>

run_xtreme.sh sizes the learning-rate schedule (``--total-num-update``, ``--warmup-updates``) with it, so
that stage 2, which trains on the rows plus their augmented copies (twice as many batches per epoch, or
for QA the windows of both), decays to 0 at its real last update and not half-way. The task is set up and
its training set batched exactly as fairseq's trainer does (same batch size, length grouping, batch-size
multiple, shards of a distributed run, update frequency), for every epoch up to ``--max-epoch`` (a dataset
whose items change from epoch to epoch is batched anew for each). Prints one line:
``rows=<training items of epoch 1> per_epoch=<updates of each epoch: one number when all are equal, else
1,2,...> total=<their sum, capped by --max-update>``.
"""
from __future__ import annotations

import math
import sys


def count_updates(argv: list[str]) -> tuple[int, list[int], int]:
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
            dataset=dataset, max_tokens=cfg.dataset.max_tokens, max_sentences=cfg.dataset.batch_size,
            max_positions=task.max_positions(), ignore_invalid_inputs=True,
            required_batch_size_multiple=cfg.dataset.required_batch_size_multiple, seed=cfg.common.seed,
            num_shards=world, shard_id=0, epoch=epoch)
        # Every rank gets ceil(batches / world) batches (shards are padded); updates group update_freq of them.
        per_epoch.append(math.ceil(len(iterator) / update_freq))
        if getattr(dataset, "can_reuse_epoch_itr_across_epochs", False):
            per_epoch += [per_epoch[0]] * (epochs - 1)  # the same batches every epoch
            break
    total = sum(per_epoch)
    if cfg.optimization.max_update:
        total = min(total, cfg.optimization.max_update)
    return rows, per_epoch, total


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    import logging
    logging.disable(logging.WARNING)  # only the one line below; the training run logs the rest
    try:
        rows, per_epoch, total = count_updates(argv)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shown = str(per_epoch[0]) if len(set(per_epoch)) == 1 else ",".join(map(str, per_epoch))
    print(f"rows={rows} per_epoch={shown} total={total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
