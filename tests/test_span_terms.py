"""The span terms: start/end cross-entropy, and R1 over the common support with the rest folded."""

import math

import torch

from stabletune_fairseq.criterions.span_terms import fold_to_support, span_consistency, span_loss, span_teacher_term
from stabletune_fairseq.models.heads import SpanHead


def spans(start, end):
    """batch x time x 2 logits from lists of start and end logits (one row)."""
    return torch.tensor([list(zip(start, end))], dtype=torch.float32)


def test_span_loss_is_the_mean_of_start_and_end_cross_entropy():
    logits = spans([0.0, 1.0, 2.0], [2.0, 0.0, 0.0])
    target = torch.tensor([[2, 0]])
    start = -math.log(math.exp(2) / (1 + math.e + math.exp(2)))
    end = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert span_loss(logits, target).item() == torch.tensor((start + end) / 2).item()


def test_folding_keeps_the_support_and_sums_the_rest():
    logits = spans([0.0, 1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0, 0.0])
    folded = fold_to_support(logits, torch.tensor([[0, 2, -1]]))  # support: positions 0 and 2, one pad
    probs = folded.exp()
    start = torch.softmax(logits[0, :, 0], 0)
    assert torch.allclose(
        probs[0, 0], torch.tensor([start[0], start[2], 0.0, start[1] + start[3] + start[4]]), atol=1e-6
    )
    assert torch.allclose(probs.sum(-1), torch.ones(1, 2))


def test_r1_ignores_how_perturbed_words_spread_their_mass():
    # row: null, two kept pieces, then a word of 2 pieces; view: the same, the word re-segmented into 3 pieces
    row = spans([1.0, 2.0, 0.5, 0.0, 1.0], [0.0, 1.0, 2.0, 0.3, 0.3])
    rest_start = math.log(math.exp(0.0) + math.exp(1.0))
    rest_end = math.log(2 * math.exp(0.3))
    view = spans(
        [1.0, 2.0, 0.5, rest_start, -50.0, -50.0],
        [0.0, 1.0, 2.0, rest_end - math.log(3)] + [rest_end - math.log(3)] * 2,
    )
    support = torch.tensor([[[0, 1, 2], [0, 1, 2]]])
    assert span_consistency(row, view, support).item() < 1e-6
    moved = view.clone()
    moved[0, 1, 0] += 1.0  # a kept piece's start logit differs: R1 sees it
    assert span_consistency(row, moved, support).item() > 1e-3


def test_r1_gradients_stay_finite_with_masked_positions_and_padding():
    head = SpanHead(8, 2, 0.0)
    features = torch.randn(2, 6, 8, requires_grad=True)
    mask = torch.tensor([[1, 0, 0, 1, 1, 0], [1, 0, 1, 1, 1, 1]], dtype=torch.bool)
    logits = head(features, span_mask=mask)
    view = head(features.flip(1), span_mask=mask.flip(1))
    support = torch.tensor([[[0, 3, -1], [5, 2, -1]], [[0, 2, 3], [5, 3, 2]]])
    value = span_consistency(logits, view, support).sum() + span_teacher_term(logits, view.detach(), False).sum()
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def test_hard_teacher_labels_are_its_argmax_positions():
    student = spans([0.0, 1.0, 2.0], [2.0, 0.0, 1.0])
    teacher = spans([0.0, 5.0, 0.0], [0.0, 0.0, 5.0])
    assert torch.allclose(span_teacher_term(student, teacher, True), span_loss(student, torch.tensor([[1, 2]])))
    assert span_teacher_term(teacher, teacher, False).abs().item() < 1e-6
