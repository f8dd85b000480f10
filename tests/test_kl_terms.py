"""The KL terms against hand-computed values, their gradients, and extreme inputs."""

import math

import torch

from stabletune_fairseq.criterions.kl_terms import kl_to_target, symmetric_consistency


def test_kl_matches_hand_computed_value():
    p = torch.tensor([0.7, 0.2, 0.1])  # model
    t = torch.tensor([0.5, 0.3, 0.2])  # target
    expected = sum(ti * math.log(ti / pi) for ti, pi in zip(t.tolist(), p.tolist()))
    assert torch.allclose(kl_to_target(p.log()[None], t.log()[None]), torch.tensor([expected]), atol=1e-6)


def test_symmetric_is_sum_of_both_directions_and_zero_on_equal_inputs():
    a, b = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.5, 0.5, 0.0]])
    pa, pb = a.softmax(-1)[0], b.softmax(-1)[0]
    both = sum(x * math.log(x / y) for x, y in zip(pb.tolist(), pa.tolist())) + sum(
        x * math.log(x / y) for x, y in zip(pa.tolist(), pb.tolist())
    )
    assert torch.allclose(symmetric_consistency(a, b), torch.tensor([both]), atol=1e-6)
    assert torch.allclose(symmetric_consistency(a, a), torch.zeros(1), atol=1e-7)


def test_gradient_flows_only_through_the_model_side():
    logits = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    target = torch.tensor([[3.0, 2.0, 1.0]], requires_grad=True)
    kl_to_target(logits, target).sum().backward()
    assert logits.grad is not None and target.grad is None
    # d KL / d logits = softmax(logits) - softmax(target)
    assert torch.allclose(logits.grad, logits.softmax(-1) - target.softmax(-1), atol=1e-6)


def test_extreme_logits_stay_finite():
    big = torch.tensor([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0], [-1e4, -1e4, 1e4]], dtype=torch.float16).float()
    other = torch.tensor([[-1e4, 1e4, 0.0], [1e4, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # By hand, with log-softmax in float32 (exp(-1e4) is 0): row 1, two opposite one-hots, 2e4 each way;
    # row 2, uniform against one-hot: log 3 one way, (2/3)·1e4 - log 3 the other; row 3, one-hot (margin 2e4)
    # against uniform: (1/3)·4e4 - log 3 one way, log 3 the other.
    values = symmetric_consistency(big, other)
    assert torch.allclose(values, torch.tensor([4e4, 2e4 / 3, 4e4 / 3]), rtol=1e-6)
    one_way = kl_to_target(big.half(), other.half())  # KL(p_other || p_big), fp16 inputs
    assert torch.allclose(one_way, torch.tensor([2e4, math.log(3), 4e4 / 3 - math.log(3)]), rtol=1e-6)


def test_masked_classes_and_empty_batches_stay_finite():
    inf = float("inf")
    logits = torch.tensor([[2.0, -inf, 0.5], [0.0, 1.0, -inf]], requires_grad=True)
    target = torch.tensor([[1.0, -inf, -1.0], [-1e4, 3.0, -inf]])  # the same classes masked; row 2 all but one-hot
    values = symmetric_consistency(logits, target)
    assert torch.isfinite(values).all() and (values >= 0).all()
    kl_to_target(logits, target).sum().backward()
    assert torch.isfinite(logits.grad).all()
    empty = torch.zeros(0, 3, requires_grad=True)  # no unit in the batch (e.g. no augmented view)
    total = symmetric_consistency(empty, empty).sum()
    total.backward()
    assert total.item() == 0.0 and empty.grad.shape == (0, 3)
