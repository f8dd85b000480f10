"""R-Drop and R3F as R1 with views that keep the row's tokens, in-process on the toy XNLI data and e5-small:
the view is the row, the two passes differ by dropout (or noise) only, the references' gradient (through both
sides) and task loss (on both passes) are what the options say, and a dropout view without dropout is refused."""

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from stabletune_fairseq.criterions.kl_terms import kl_to_target, squared_difference, symmetric_consistency
from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion
from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig
from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask


def make_task(toy_data, **overrides):
    return XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(toy_data), seed=3, **overrides))


def make_model(task, e5_dir, **overrides):
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        pretrained_encoder=str(e5_dir / "model.pt"),
        save_dir="",
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
        **overrides,
    )
    return task.build_model(OmegaConf.structured(cfg))


def batch_of(task, n=6):
    dataset = task.load_dataset("train")
    return dataset.collater([dataset[i] for i in range(n)])


def test_dropout_view_is_the_row_and_differs_only_by_dropout(toy_data, e5_dir):
    task = make_task(toy_data, view_augmentation="dropout")
    sample = batch_of(task)
    tokens = sample["net_input"]["src_tokens"]
    assert sample["has_views"] and torch.equal(tokens[:6], tokens[6:])  # the view is the row itself
    model = make_model(task, e5_dir)
    seen = []
    model.heads["sentence"].register_forward_hook(lambda module, args, output: seen.append(output.detach()))
    criterion = StabilityConsistencyCriterion(task, r1_lambda=1.0)
    model.train()
    _, _, log = criterion(model, sample)
    assert log["r1"] > 0 and (seen[-1][:6] - seen[-1][6:]).abs().max() > 1e-4  # independent dropout masks
    model.eval()
    _, _, log = criterion(model, sample)
    assert float(log["r1"]) == pytest.approx(0.0, abs=1e-6)  # no dropout: the two passes agree


def test_dropout_view_needs_dropout(toy_data, e5_dir):
    task = make_task(toy_data, view_augmentation="dropout")
    with pytest.raises(ValueError, match="needs dropout in the model"):
        make_model(task, e5_dir, dropout=0.0, attention_dropout=0.0, head_dropout=0.0)
    make_model(task, e5_dir, dropout=0.0, attention_dropout=0.0, head_dropout=0.1)  # any dropout makes two views


def test_task_loss_on_views_is_the_mean_over_both_passes(toy_data, e5_dir):
    """R-Drop's classification loss: CE on both passes. Here their mean, checked against the head's outputs."""
    task = make_task(toy_data, view_augmentation="dropout")
    sample = batch_of(task)
    model = make_model(task, e5_dir).train()
    seen = []
    model.heads["sentence"].register_forward_hook(lambda module, args, output: seen.append(output.detach()))
    torch.manual_seed(0)
    _, size, log = StabilityConsistencyCriterion(task, r1_lambda=0.25, r1_full_gradient=True, task_loss_on_views=True)(
        model, sample
    )
    logits, target = seen[-1], sample["target"]
    both = (
        F.cross_entropy(logits[:6], target, reduction="sum") + F.cross_entropy(logits[6:], target, reduction="sum")
    ) / 2
    assert size == 6 and float(log["task_loss"]) == pytest.approx(float(both), rel=1e-5)
    r1 = symmetric_consistency(logits[:6], logits[6:]).sum()
    assert float(log["r1"]) == pytest.approx(float(r1), rel=1e-5)
    with pytest.raises(ValueError, match="keep the row's tokens"):
        StabilityConsistencyCriterion(
            make_task(toy_data, view_augmentation="subword_sampling"), r1_lambda=1.0, task_loss_on_views=True
        )


def test_full_gradient_flows_through_both_sides_of_the_kl():
    a = torch.tensor([[1.0, 0.0, -1.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.5, 0.0]], requires_grad=True)
    kl_to_target(a, b).sum().backward()
    assert b.grad is None and a.grad.abs().sum() > 0  # xTune: stop-gradient on the target side
    a.grad = None
    kl_to_target(a, b, stop_gradient=False).sum().backward()
    assert b.grad.abs().sum() > 0 and a.grad.abs().sum() > 0  # R-Drop, R3F: both sides
    # regression: (a - b)^2 per row, its gradient 2(a - b) for a
    x, y = torch.tensor([[0.7], [0.2]], requires_grad=True), torch.tensor([[0.4], [0.2]])
    squared_difference(x, y).sum().backward()
    assert squared_difference(x, y).tolist() == pytest.approx(
        [0.09, 0.0]
    ) and x.grad.flatten().tolist() == pytest.approx([0.6, 0.0])


@pytest.mark.parametrize("kind,scale", [("uniform", 1e-5), ("normal", 1e-2)])
def test_noise_views_draw_their_distribution_on_the_views_only(kind, scale, toy_data, e5_dir):
    """R3F's view (``REG=r3f``: uniform, eps 1e-5, on detached embeddings) and xTune's Gaussian one: the token
    embeddings the encoder receives, minus the clean ones, are 0 on the rows and, on the views, U(-eps, eps) (std
    eps/sqrt(3), a flat histogram) or N(0, std^2)."""
    task = make_task(toy_data, view_augmentation="noise", noise_std=scale, noise_type=kind, noise_detached=True)
    sample = batch_of(task)
    model = make_model(task, e5_dir).eval()  # no dropout: only the noise tells the passes apart
    encoder = model.encoder.sentence_encoder
    received, forward_embedding = [], encoder.forward_embedding

    def recording(tokens, token_embedding=None):  # what the encoder's embedding layer is given, then as it was
        received.append((tokens, token_embedding.detach().double()))
        return forward_embedding(tokens, token_embedding)

    encoder.forward_embedding = recording
    _, _, log = StabilityConsistencyCriterion(task, r1_lambda=1.0, r1_full_gradient=True)(model, sample)
    assert float(log["r1"]) > 0
    tokens, embedded = received[-1]
    assert torch.equal(tokens, sample["net_input"]["src_tokens"])  # rows and views in one pass
    noise = embedded - encoder.embed_tokens(tokens).detach().double()
    assert noise[:6].abs().max() == 0  # the rows: clean
    views = noise[6:].flatten()  # ~40k draws
    assert abs(float(views.mean())) < 0.02 * scale
    if kind == "uniform":
        assert float(views.abs().max()) <= scale * 1.001 and float(views.abs().max()) > 0.99 * scale
        assert float(views.std()) == pytest.approx(scale / 3**0.5, rel=0.02)
        quarters = torch.histc(views, bins=4, min=-scale, max=scale) / len(views)
        assert quarters.tolist() == pytest.approx([0.25] * 4, abs=0.015)  # flat (a normal one: 32% in each middle bin)
    else:
        assert float(views.std()) == pytest.approx(scale, rel=0.02)
        assert float((views.abs() < scale).double().mean()) == pytest.approx(0.6827, abs=0.015)  # within one std
    with pytest.raises(ValueError, match="positive --noise-std"):
        make_task(toy_data, view_augmentation="noise", noise_type="uniform")


@pytest.mark.parametrize("family", ["tagging", "qa"])
def test_dropout_views_in_the_other_task_families(family, request, e5_dir):
    """R-Drop for tagging (per word) and QA (per window over the common support): the view is the row, and R1 is
    zero without dropout and positive with it; the task loss on views is the mean of the row's loss on the rows'
    outputs and on the views' (computed here from the head's outputs)."""
    from stabletune_fairseq.tasks.xtreme_qa import XtremeQAConfig, XtremeQATask
    from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask

    if family == "tagging":
        data = request.getfixturevalue("toy_panx")
        task = XtremeTaggingTask.setup_task(XtremeTaggingConfig(data=str(data), seed=3, view_augmentation="dropout"))
    else:
        data = request.getfixturevalue("toy_xquad")
        task = XtremeQATask.setup_task(XtremeQAConfig(data=str(data), seed=3, view_augmentation="dropout"))
    sample = batch_of(task, 4)
    tokens = sample["net_input"]["src_tokens"]
    assert sample["has_views"] and torch.equal(tokens[:4], tokens[4:])
    model = make_model(task, e5_dir)
    criterion = StabilityConsistencyCriterion(task, r1_lambda=1.0, r1_full_gradient=True, task_loss_on_views=True)
    model.eval()
    _, _, log = criterion(model, sample)
    assert float(log["r1"]) == pytest.approx(0.0, abs=1e-5)
    model.train()
    seen = []
    model.heads[task.head_name].register_forward_hook(lambda module, args, output: seen.append(output.detach()))
    loss, size, log = criterion(model, sample)
    assert float(log["r1"]) > 0 and torch.isfinite(loss)
    rows, views = seen[-1][:4].float(), seen[-1][4:].float()  # one pass: the rows, then their views
    assert not torch.allclose(rows, views)  # dropout: the two passes differ
    target = sample["target"]
    if family == "tagging":  # cross-entropy per labelled word of the word mask
        words = sample["word_mask"]
        labelled = (target[words] >= 0) & (target[words] < rows.size(-1))
        per_pass = [
            F.cross_entropy(out[words][labelled], target[words][labelled], reduction="sum") for out in (rows, views)
        ]
        scale = size / int(labelled.sum())  # the criterion's mean over labelled words, once divided by the words
    else:  # per window: the mean of the start's and the end's cross-entropy over the positions
        per_pass = [
            sum(F.cross_entropy(out[..., i], target[:, i], reduction="none") for i in (0, 1)).sum() / 2
            for out in (rows, views)
        ]
        scale = 1.0
    assert float(log["task_loss"]) == pytest.approx(scale * float(per_pass[0] + per_pass[1]) / 2, rel=1e-5)
    assert abs(float(per_pass[0] - per_pass[1])) > 1e-4 * float(per_pass[0])  # so the mean is not one pass's loss
