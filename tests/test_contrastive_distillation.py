"""BERT-gang's contrastive distillation (docs/distillation.md): the layer-wise bank contrast and SCL against hand
computations, the negatives' draw, the state bank against the live teacher, the contrast-only phase and its
switch at N updates (on a real batch and in a tiny real run), and the refusals."""

import math
import sys

import numpy as np
import pytest
import torch
from conftest import run
from test_distillation import SETTINGS, load_teacher_task, shrunk, xnli_teacher, xtreme  # noqa: F401
from test_train_tagging import logged

from stabletune_fairseq.criterions.distillation_terms import (
    NegativeSampler,
    bank_contrastive_loss,
    supervised_contrastive_loss,
)


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_layer_wise_bank_contrast_matches_a_hand_computation():
    # 2 rows, 2 layer pairs, 2 negatives each, 2-d states (the student's already projected)
    student = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 2.0], [1.0, 1.0]]])
    positives = torch.tensor([[[0.8, 0.6], [0.0, 1.0]], [[0.0, 3.0], [2.0, 0.0]]])
    negatives = torch.tensor(
        [
            [[[-1.0, 0.0], [1.0, 0.0]], [[0.0, -1.0], [-0.6, 0.8]]],
            [[[1.0, 0.0], [0.0, 1.0]], [[3.0, 4.0], [-1.0, -1.0]]],
        ]
    )  # rows x K x pairs x hidden
    tau = 0.5
    per_pair = bank_contrastive_loss(student, positives, negatives, tau)
    s, p, n = student.tolist(), positives.tolist(), negatives.tolist()
    for b in range(2):
        for pair in range(2):
            logits = [cos(s[b][pair], p[b][pair]) / tau] + [cos(s[b][pair], n[b][k][pair]) / tau for k in range(2)]
            expected = -logits[0] + math.log(sum(math.exp(v) for v in logits))
            assert math.isclose(float(per_pair[b, pair]), expected, rel_tol=1e-5)
    # the reference's reduction: mean over rows, summed over the pairs
    total = per_pair.mean(0).sum()
    assert math.isclose(float(total), float(per_pair.sum() / 2), rel_tol=1e-6)
    # the scale of a state does not matter (cosine), its direction does
    assert torch.allclose(bank_contrastive_loss(student * 3, positives, negatives, tau), per_pair, atol=1e-6)
    assert not torch.allclose(bank_contrastive_loss(-student, positives, negatives, tau), per_pair)


def test_supervised_contrastive_loss_matches_a_hand_computation_and_a_lone_label_has_no_positive():
    features = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.2], [0.3, -0.9]])
    labels = torch.tensor([0, 0, 1, 1, 2])  # label 2: a single row
    tau = 0.1
    loss, has_positive = supervised_contrastive_loss(features, labels, tau)
    f, y = features.tolist(), labels.tolist()
    for i in range(5):
        others = [a for a in range(5) if a != i]
        log_denominator = math.log(sum(math.exp(cos(f[i], f[a]) / tau) for a in others))
        positives = [p for p in others if y[p] == y[i]]
        if not positives:
            assert not has_positive[i] and float(loss[i]) == 0  # left out of the mean (the reference raises)
            continue
        expected = -sum(cos(f[i], f[p]) / tau - log_denominator for p in positives) / len(positives)
        # logits up to 1/tau = 10 in float32: their log-sum-exp is exact to ~1e-6 each, the loss their difference
        assert has_positive[i] and math.isclose(float(loss[i]), expected, rel_tol=1e-5, abs_tol=5e-6)
    assert has_positive.tolist() == [True, True, True, True, False]


def test_negatives_are_of_another_label_drawn_per_row_and_update_and_seeded():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 1])
    sampler = NegativeSampler(labels, 4, True, seed=7, where="bank")
    rows = np.arange(12)
    first = sampler.draw(rows, update=3)
    assert first.shape == (12, 4)
    for row, negatives in zip(rows, first):
        assert len(set(negatives)) == 4 and all(labels[negatives] != labels[row])
    assert np.array_equal(first, NegativeSampler(labels, 4, True, seed=7, where="bank").draw(rows, 3))  # seeded
    assert np.array_equal(sampler.draw(rows[5:6], 3), first[5:6])  # a row's draw does not depend on its batch
    assert not np.array_equal(sampler.draw(rows, 4), first)  # drawn afresh at the next update
    assert not np.array_equal(NegativeSampler(labels, 4, True, seed=8, where="bank").draw(rows, 3), first)
    anyone = NegativeSampler(labels, 11, False, seed=7, where="bank").draw(rows, 0)
    assert all(sorted(n) == [r for r in range(12) if r != row] for row, n in zip(rows, anyone))  # all but itself
    with pytest.raises(ValueError, match="bank: 8 negatives per row, but a row has only 7 candidates of another"):
        NegativeSampler(labels, 8, True, seed=7, where="bank")


# --- the state bank and the criterion on real models --------------------------------------------------------------
@pytest.fixture(scope="module")
def states_bank(xnli_teacher, toy_data, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("states-bank") / "bank"
    command = [sys.executable, "-m", "stabletune_fairseq.cli.teacher_bank", "--checkpoint", xnli_teacher]
    run(command + ["--data", toy_data, "--out", out, "--batch-size", "16", "--states", "--layers", "2,4"])
    return out


def test_the_state_bank_holds_the_live_teachers_states(xnli_teacher, states_bank, toy_data):  # noqa: F811
    from stabletune_fairseq.models.teacher_bank import TeacherBank

    model, task = load_teacher_task(xnli_teacher, toy_data)
    bank = TeacherBank(states_bank)
    assert bank.state_layers == [2, 4] and bank.states.dtype == np.float16
    assert bank.record["hidden"] == 384 and bank.record["teacher_layers"] == 4
    dataset = task.load_dataset("train")
    order = dataset.ordered_indices()
    with torch.no_grad():
        for begin in range(0, len(order), 16):  # the batches the bank was written in
            sample = dataset.collater([dataset[int(i)] for i in order[begin : begin + 16]])
            states = []
            model(sample["net_input"]["src_tokens"], head=task.head_name, layer_states=states)
            live = torch.stack([states[1], states[3]], 1).half().float()
            ids = sample["id"].numpy()
            assert torch.equal(bank.states_of(ids, [0, 1]), live)
            assert torch.equal(bank.states_of(ids, [1]), live[:, 1:])
            assert np.array_equal(bank.labels[ids], sample["target"].numpy())


def criterion_and_batch(task_cls, cfg_cls, data, student_release, layers, **options):
    from omegaconf import OmegaConf

    from stabletune_fairseq.criterions.stability_distillation import StabilityDistillationCriterion
    from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig

    task = task_cls.setup_task(cfg_cls(data=str(data), seed=3))
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        pretrained_encoder=str(student_release),
        save_dir="",
        encoder_layers=layers,
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
        dropout=0.0,
        attention_dropout=0.0,
        head_dropout=0.0,
    )
    student = task.build_model(OmegaConf.structured(cfg)).train()
    criterion = StabilityDistillationCriterion(task, **options)
    return task, student, criterion


def test_the_phase_switch_and_the_criterions_contrast_on_a_real_batch(shrunk, xnli_teacher, states_bank, toy_data):  # noqa: F811
    import torch.nn.functional as F

    from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask

    task, student, criterion = criterion_and_batch(
        XtremeSentenceTask,
        XtremeSentenceConfig,
        toy_data,
        shrunk[1] / "model.pt",
        2,
        teacher=str(xnli_teacher),
        teacher_bank=str(states_bank),
        kd_alpha=0.2,
        kd_temperature=1.0,
        layer_contrast_weight=0.5,
        layer_contrast_negatives=3,
        contrast_steps=2,
    )
    assert criterion.contrast_pairs == [(1, 2), (2, 4)]  # every student layer, the last included
    dataset = task.load_dataset("train")
    sample = dataset.collater([dataset[i] for i in range(8)])
    criterion.set_num_updates(1)
    loss, n, log = criterion(student, sample)
    # by hand: the student's states against the bank's, with the sampler's negatives of update 1
    states = []
    logits = student(sample["net_input"]["src_tokens"], head="sentence", layer_states=states)
    ids = sample["id"].numpy()
    negative_ids = criterion.sampler.draw(ids, 1)
    assert all((criterion.bank.labels[negative_ids[i]] != criterion.bank.labels[ids[i]]).all() for i in range(8))
    positives = criterion.bank.states_of(ids, [0, 1])
    negatives = criterion.bank.states_of(negative_ids.reshape(-1), [0, 1]).view(8, 3, 2, 384)
    contrast = bank_contrastive_loss(torch.stack(states, 1), positives, negatives, 0.07).mean(0).sum()
    assert n == 8 and math.isclose(float(log["layer_contrast"]) / 8, float(contrast), rel_tol=1e-5)
    assert math.isclose(float(loss), float(contrast) * 8, rel_tol=1e-5)  # the contrast alone, weight 1
    assert log["contrast_only"] == 8 and log["teacher_live"] == 0
    criterion.set_num_updates(2)  # the switch: KD from the bank (T 1, weight 0.2) and the contrast at its weight
    loss, n, log = criterion(student, sample)
    teacher = torch.from_numpy(np.stack([criterion.bank.logits[criterion.bank.offsets[i]] for i in ids]))
    kd = F.kl_div(F.log_softmax(logits, -1), F.softmax(teacher, -1), reduction="sum")
    ce = F.cross_entropy(logits, sample["target"], reduction="sum")
    negative_ids = criterion.sampler.draw(ids, 2)
    negatives = criterion.bank.states_of(negative_ids.reshape(-1), [0, 1]).view(8, 3, 2, 384)
    contrast = bank_contrastive_loss(torch.stack(states, 1), positives, negatives, 0.07).mean(0).sum()
    expected = 0.8 * ce + 0.2 * kd + 0.5 * contrast * 8
    assert log["contrast_only"] == 0 and log["teacher_banked"] == 8
    assert math.isclose(float(loss), float(expected), rel_tol=1e-4)
    # SCL alone (lambda 1) needs no teacher: the loss is the mean over anchors of the batch's SCL
    _, student, criterion = criterion_and_batch(
        XtremeSentenceTask,
        XtremeSentenceConfig,
        toy_data,
        shrunk[1] / "model.pt",
        2,
        kd_alpha=0.0,
        scl_lambda=1.0,
    )
    loss, n, log = criterion(student, sample)
    per_anchor, has = supervised_contrastive_loss(states[-1], sample["target"], 0.1)
    assert math.isclose(float(loss), float(per_anchor[has].mean()) * 8, rel_tol=1e-5)


def test_the_refusals(shrunk, xnli_teacher, states_bank, toy_data, toy_panx, tmp_path):  # noqa: F811
    from stabletune_fairseq.reliability.checkpoint_safety import WrongCheckpoint
    from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask
    from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask

    def sentence_criterion(**options):  # the XNLI toy, the 2-layer student, the fine-tuned teacher
        return criterion_and_batch(
            XtremeSentenceTask,
            XtremeSentenceConfig,
            toy_data,
            shrunk[1] / "model.pt",
            2,
            teacher=str(xnli_teacher),
            **options,
        )

    with pytest.raises(ValueError, match="a tagging task .* has no label per row"):
        criterion_and_batch(
            XtremeTaggingTask, XtremeTaggingConfig, toy_panx, shrunk[1] / "model.pt", 2, kd_alpha=0.0, scl_lambda=0.5
        )
    with pytest.raises(ValueError, match="read the teacher's states from --teacher-bank"):
        sentence_criterion(contrast_steps=3)
    logits_only = tmp_path / "logits-bank"
    command = [sys.executable, "-m", "stabletune_fairseq.cli.teacher_bank", "--checkpoint", xnli_teacher]
    run(command + ["--data", toy_data, "--out", logits_only, "--batch-size", "16"])
    with pytest.raises(WrongCheckpoint, match="holds no <s> states; write it with stabletune-teacher-bank --states"):
        sentence_criterion(teacher_bank=str(logits_only), layer_contrast_weight=1.0)
    # a state bank of other layers than the pairs need
    with pytest.raises(WrongCheckpoint, match=r"holds the states of teacher layers \[2, 4\], not \[3\]"):
        sentence_criterion(teacher_bank=str(states_bank), layer_contrast_weight=1.0, layer_contrast_layers="1:3")


def test_a_tiny_run_switches_from_the_contrast_alone_to_kd(shrunk, xnli_teacher, states_bank, toy_data, tmp_path):  # noqa: F811
    log = xtreme(
        "XNLI",
        shrunk[1] / "model.pt",
        toy_data,
        tmp_path / "run",
        "VALID_LANGS=de",
        f"DISTILL={xnli_teacher}",
        f"BANK={states_bank}",
        "CON_STEPS=1",
        "LCON_NEG=4",
        "KD_T=1",
        "KD_ALPHA=0.2",
    )
    assert "layer-wise contrast pairs (student:teacher): 1:2,2:4; 4 negatives; contrast alone for 1 updates" in log
    assert logged(log, "contrast_only") == [8.0, 0.0]
    assert logged(log, "teacher_banked") == [0.0, 8.0] and logged(log, "teacher_live") == [0.0, 0.0]
    assert all(v > 0 for v in logged(log, "layer_contrast"))


def test_a_run_resumed_after_the_switch_points_checkpoint_stays_in_the_kd_phase(
    shrunk,  # noqa: F811
    xnli_teacher,  # noqa: F811
    states_bank,
    toy_data,
    tmp_path,
):
    import shutil

    settings = [f"DISTILL={xnli_teacher}", f"BANK={states_bank}", "CON_STEPS=1", "LCON_NEG=4", "KD_T=1"]
    settings += ["VALID_LANGS=de", "KD_ALPHA=0.2", "SAVE_INTERVAL_UPDATES=1"]  # a checkpoint after every update
    whole = xtreme("XNLI", shrunk[1] / "model.pt", toy_data, tmp_path / "whole", *settings)
    assert logged(whole, "contrast_only") == [8.0, 0.0]
    # Stopped at the switch point: its checkpoint (update 1, the contrast phase done) is all the run left.
    (tmp_path / "resumed").mkdir()
    shutil.copy(tmp_path / "whole" / "checkpoint_1_1.pt", tmp_path / "resumed" / "checkpoint_last.pt")
    resumed = xtreme("XNLI", shrunk[1] / "model.pt", toy_data, tmp_path / "resumed", *settings)
    assert "resuming from it" in resumed
    assert logged(resumed, "contrast_only") == [0.0]  # update 2 only, in the KD phase as the uninterrupted run
    for key in ("loss", "kd", "layer_contrast", "teacher_banked"):  # and the same update: data, negatives, weights
        assert logged(resumed, key)[-1:] == logged(whole, key)[-1:], key


def test_kd_from_a_fine_tuned_checkpoint_starts_from_its_weights_head_included(
    shrunk,  # noqa: F811
    xnli_teacher,  # noqa: F811
    states_bank,
    toy_data,
    tmp_path,
):
    from stabletune_fairseq.models.pretrained import load_fine_tuned
    from stabletune_fairseq.reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint
    from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask

    student = shrunk[1] / "model.pt"
    bank = [f"DISTILL={xnli_teacher}", f"BANK={states_bank}", "VALID_LANGS=de"]
    # The source: SCL with cross-entropy (the head is trained), another seed than the KD run's.
    xtreme("XNLI", student, toy_data, tmp_path / "scl", *bank, "KD_ALPHA=0", "SCL_LAMBDA=0.5", "SEED=7")
    source = tmp_path / "scl" / "checkpoint_last.pt"
    weights = open_checkpoint(source, "source")["model"]
    head = [key for key in weights if key.startswith("heads.")]
    assert head

    # Update 0: the model the run builds holds the checkpoint's weights, the head's included.
    task = XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(toy_data), seed=3))

    def build(init=None):
        from omegaconf import OmegaConf

        from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig

        cfg = StabletuneXLMRConfig(
            _name="stabletune_xlmr",
            pretrained_encoder=str(student),
            init_checkpoint=init,
            save_dir="",
            encoder_layers=2,
            encoder_embed_dim=384,
            encoder_ffn_embed_dim=1536,
        )
        return task.build_model(OmegaConf.structured(cfg))

    fresh = build().state_dict()
    started = build(str(source)).state_dict()
    assert set(started) == set(weights)
    assert all(torch.equal(started[key], weights[key]) for key in weights)
    assert not all(torch.equal(fresh[key], weights[key]) for key in head)  # a fresh head differs from it

    # The recipe: INIT_FROM=, 2 updates of KD; the head moved by Adam's steps only (about lr each).
    log = xtreme("XNLI", student, toy_data, tmp_path / "kd", *bank, f"INIT_FROM={source}", "KD_T=1")
    assert "--init-checkpoint" in log and "initialised from the fine-tuned checkpoint" in log
    after = open_checkpoint(tmp_path / "kd" / "checkpoint_last.pt", "kd")["model"]
    assert max(float((after[key] - weights[key]).abs().max()) for key in head) < 5e-4
    assert max(float((fresh[key] - weights[key]).abs().max()) for key in head) > 1e-2

    # Refused in one line: no such file, a checkpoint of another shape, of other labels, of other data.
    model = build()
    with pytest.raises(WrongCheckpoint, match="no such file"):
        load_fine_tuned(model, str(tmp_path / "none.pt"), task)
    with pytest.raises(
        WrongCheckpoint, match=r"weights have no place in this run's model, e\.g\. encoder\.sentence_encoder\.layers\.2"
    ):
        load_fine_tuned(model, str(xnli_teacher), task)  # 4 layers into 2
    state = open_checkpoint(source, "source")
    record = state["extra_state"]["stabletune_run"]
    for change, message in (
        ({"labels": ["a", "b", "c"]}, "but .* has .*: its outputs would be read as other labels"),
        ({"fingerprint": "0" * 16}, "fine-tuned on other data of the same task"),
    ):
        state["extra_state"]["stabletune_run"] = {**record, **change}
        torch.save(state, tmp_path / "other.pt")
        with pytest.raises(WrongCheckpoint, match=message):
            load_fine_tuned(model, str(tmp_path / "other.pt"), task)
    result = run(
        ["bash", "run_scripts/run_xtreme.sh", "XNLI", student, toy_data, tmp_path / "x", "INIT_FROM=none.pt"],
        check=False,
    )
    assert result.returncode != 0 and "run_xtreme.sh: INIT_FROM=none.pt: no such checkpoint" in result.stderr
