"""Consistency training pieces in-process: views per (seed, epoch, example), the lambda-0 equivalence
with plain fine-tuning, R1 from noise, and the frozen teacher."""

import torch
from fairseq.data import data_utils
from omegaconf import OmegaConf

from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion
from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig
from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask


def make_task(toy_data, toy_dicts, **overrides):
    cfg = XtremeSentenceConfig(data=str(toy_data), seed=3, dict_dir=str(toy_dicts), dict_langs="de,fr", **overrides)
    return XtremeSentenceTask.setup_task(cfg)


def make_model(task, e5_dir):
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        pretrained_encoder=str(e5_dir / "model.pt"),
        save_dir="",
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
    )
    return task.build_model(OmegaConf.structured(cfg)).eval()


def test_views_depend_on_seed_epoch_and_example_only(toy_data, toy_dicts):
    task = make_task(toy_data, toy_dicts, view_augmentation="code_switch", code_switch_prob=1.0)
    views = task.load_dataset("train").dataset  # under the shuffling SortDataset
    views.set_epoch(1)
    first = [views[i]["view"] for i in range(40)]
    assert all(torch.equal(views[i]["view"], first[i]) for i in range(40))  # drawn again: the same
    assert any(not torch.equal(views[i]["tokens"], first[i]) for i in range(40))  # dictionary words were switched
    views.set_epoch(2)
    assert any(not torch.equal(views[i]["view"], first[i]) for i in range(40))  # fresh views each epoch
    other = (
        make_task(toy_data, toy_dicts, view_augmentation="code_switch", code_switch_prob=1.0)
        .load_dataset("train")
        .dataset
    )
    other.set_epoch(1)
    assert all(torch.equal(other[i]["view"], first[i]) for i in range(40))  # another process, same views


def test_new_epoch_reaches_persistent_workers(toy_data, toy_dicts):
    task = make_task(toy_data, toy_dicts, view_augmentation="code_switch", code_switch_prob=1.0)
    dataset = task.load_dataset("train")
    epochs = task.get_batch_iterator(dataset, max_sentences=64, num_workers=1, seed=3)
    seen = []
    for _ in range(2):
        batches = epochs.next_epoch_itr(shuffle=False)
        seen.append(
            {int(i): row for b in batches for i, row in zip(b["id"], b["net_input"]["src_tokens"][len(b["id"]) :])}
        )
    changed = sum(not torch.equal(seen[0][i], seen[1][i]) for i in seen[0])
    assert changed > len(seen[0]) // 4  # the workers saw epoch 2


def test_lambda_zero_is_exactly_plain_fine_tuning(toy_data, toy_dicts, e5_dir):
    task = make_task(toy_data, toy_dicts, view_augmentation="code_switch", code_switch_prob=1.0)
    views = task.load_dataset("train")
    sample = views.collater([views[i] for i in range(8)])
    assert sample["has_views"] and sample["net_input"]["src_tokens"].shape[0] == 16
    rows = [views[i]["tokens"] for i in range(8)]
    plain = {
        **sample,
        "has_views": False,
        "net_input": {"src_tokens": data_utils.collate_tokens(rows, task.dictionary.pad(), left_pad=False)},
    }
    model = make_model(task, e5_dir)
    results = []
    for batch, criterion in (
        (sample, StabilityConsistencyCriterion(task)),
        (plain, StabilityConsistencyCriterion(task)),
    ):
        model.zero_grad()
        loss, size, _ = criterion(model, batch)
        loss.backward()
        results.append((loss.detach(), size, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    assert torch.equal(results[0][0], results[1][0]) and results[0][1] == results[1][1] == 8
    assert all(torch.equal(a, b) for a, b in zip(results[0][2], results[1][2]))


def test_noise_view_gives_r1(toy_data, toy_dicts, e5_dir):
    task = make_task(toy_data, toy_dicts, view_augmentation="noise", noise_std=0.5)
    views = task.load_dataset("train")
    sample = views.collater([views[i] for i in range(4)])
    rows, view_rows = sample["net_input"]["src_tokens"].chunk(2)
    assert torch.equal(rows, view_rows)  # the text is the same: the views differ only by noise
    model = make_model(task, e5_dir)  # eval mode: no dropout, so only noise can tell the halves apart
    seen = []
    hook = model.register_forward_hook(lambda module, args, output: seen.append(output.detach()))
    _, _, log = StabilityConsistencyCriterion(task, r1_lambda=1.0)(model, sample)
    hook.remove()
    assert log["r1"] > 0 and len(seen) == 1
    with torch.no_grad():
        clean = model(sample["net_input"]["src_tokens"], head=task.head_name)
    assert torch.allclose(seen[0][:4], clean[:4], atol=1e-6)  # the rows themselves: no noise
    assert (seen[0][4:] - clean[4:]).abs().max() > 1e-3  # their views: embeddings with noise


def test_a_non_finite_loss_is_reported_and_skipped(toy_data, toy_dicts, e5_dir, caplog):
    task = make_task(toy_data, toy_dicts)
    model = make_model(task, e5_dir).train()
    dataset = task.load_dataset("valid_de")
    sample = dataset.collater([dataset[i] for i in range(6)])
    tokens = sample["net_input"]["src_tokens"]
    word = int(tokens[2, 1])  # a word of example 2
    with torch.no_grad():
        model.encoder.sentence_encoder.embed_tokens.weight[word] = 3e38  # finite, but overflows in the layers
    criterion = StabilityConsistencyCriterion(task)
    with caplog.at_level("WARNING"):
        loss, _, log = criterion(model, sample)
    assert torch.isfinite(loss) and loss.item() == 0.0 and log["nonfinite_skipped"] == 1
    assert str(sample["id"].tolist()) in caplog.text
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() and not g.any() for g in grads)
