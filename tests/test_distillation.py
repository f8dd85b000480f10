"""Distillation (docs/distillation.md): the loss terms against hand computations, stabletune-convert shrink, the
criterion's loss on a real batch, the logits bank (bit for bit, and refused for other data or another teacher), and
tiny real runs of a 2-layer student distilled from a fine-tuned 4-layer teacher in every task family, evaluated."""

import json
import math
import shutil
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import QA_MAX_LEN, TOY_DEV_PAIRS, TOY_TRAIN_PAIRS, drawn_pixels, run
from test_train_glue import glue  # noqa: F401  (the GLUE sample fixture: STS-B for the regression family)
from test_train_tagging import logged

from stabletune_fairseq.criterions.distillation_terms import (
    contrastive_distillation,
    patient_hidden_loss,
    soft_target_kd,
    span_soft_target_kd,
)
from stabletune_fairseq.criterions.stability_distillation import layer_pairs
from stabletune_fairseq.models.heads import SpanHead
from stabletune_fairseq.report.state_projection import principal_components

SETTINGS = ["MAX_UPDATE=2", "BSZ=8", "LR=1e-4", "FREEZE_EMBEDDINGS=1", "PROGRESS=0"]


# --- the terms, by hand ---------------------------------------------------------------------------------------
def softmax(values):
    exps = [math.exp(v - max(values)) for v in values]
    return [e / sum(exps) for e in exps]


def test_soft_target_kd_matches_a_hand_computation():
    student = torch.tensor([[1.0, -0.5, 2.0], [0.3, 0.1, -1.2]])
    teacher = torch.tensor([[2.5, 0.0, -1.0], [0.3, 0.1, -1.2]])
    temperature = 4.0
    expected = []
    for s, t in zip(student.tolist(), teacher.tolist()):
        p_s, p_t = softmax([v / temperature for v in s]), softmax([v / temperature for v in t])
        expected.append(temperature**2 * sum(pt * (math.log(pt) - math.log(ps)) for ps, pt in zip(p_s, p_t)))
    kd = soft_target_kd(student, teacher, temperature)
    assert torch.allclose(kd, torch.tensor(expected), atol=1e-6)
    assert kd[1] == 0 and kd[0] > 0  # the same logits: nothing to learn
    assert torch.allclose(
        soft_target_kd(student, teacher, temperature, class_mean=True), torch.tensor(expected) / 3, atol=1e-6
    )


def test_span_kd_is_the_mean_of_start_and_end_and_ignores_masked_positions():
    """The KD takes no mask: the span head's masking (-1e4 where ``span_mask`` is false) must remove a position from
    both distributions. Student and teacher disagree most at the masked position, so a position the head left in
    (or a KD that read it) changes the result."""
    head = SpanHead(4, 2, dropout=0.0)
    with torch.no_grad():
        head.out_proj.weight.copy_(torch.tensor([[1.0, 0.5, 0.0, -1.0], [0.0, -0.5, 1.0, 0.5]]))
        head.out_proj.bias.zero_()
    features = torch.tensor([[[1.0, 0.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.5], [3.0, 0.0, 0.0, -3.0], [0.5, 0.5, 0.5, 0.5]]])
    teacher_features = features.clone()
    teacher_features[0, 0] = torch.tensor([0.0, 1.0, 1.0, 0.0])
    teacher_features[0, 2] = -features[0, 2]  # position 2 (a question piece): far apart on the two sides
    span_mask = torch.tensor([[True, True, False, True]])
    student, teacher = head(features, span_mask), head(teacher_features, span_mask)
    kept = [0, 1, 3]
    start = soft_target_kd(student[:, kept, 0], teacher[:, kept, 0], 2.0)
    end = soft_target_kd(student[:, kept, 1], teacher[:, kept, 1], 2.0)
    kd = span_soft_target_kd(student, teacher, 2.0)
    assert torch.allclose(kd, (start + end) / 2, atol=1e-6) and kd.item() > 0
    everything = torch.ones_like(span_mask)
    unmasked = span_soft_target_kd(head(features, everything), head(teacher_features, everything), 2.0)
    assert unmasked.item() > 2 * kd.item()  # the masked position would have counted, and much


def test_patient_kd_with_a_projection_matches_a_hand_computation():
    torch.manual_seed(0)
    projection = nn.Linear(4, 6)
    student, teacher = torch.randn(3, 2, 4), torch.randn(3, 2, 6)  # batch x layers x hidden
    total = 0.0
    for b in range(3):
        for layer in range(2):
            s = projection(student[b, layer]).tolist()
            t = teacher[b, layer].tolist()
            s_norm, t_norm = math.sqrt(sum(x * x for x in s)), math.sqrt(sum(x * x for x in t))
            total += sum((x / s_norm - y / t_norm) ** 2 for x, y in zip(s, t))
    assert math.isclose(float(patient_hidden_loss(projection(student), teacher)), total / (3 * 2 * 6), rel_tol=1e-5)


def test_contrastive_term_takes_the_rows_of_other_labels_as_negatives():
    student = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    teacher = torch.tensor([[0.8, 0.6], [1.0, 0.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    tau = 0.5
    cos = lambda a, b: sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    s, t = student.tolist(), teacher.tolist()
    negatives = {0: [2], 1: [2], 2: [0, 1]}
    expected = []
    for i in range(3):
        logits = [cos(s[i], t[i]) / tau] + [cos(s[i], t[j]) / tau for j in negatives[i]]
        expected.append(-logits[0] + math.log(sum(math.exp(v) for v in logits)))
    assert torch.allclose(contrastive_distillation(student, teacher, labels, tau), torch.tensor(expected), atol=1e-5)
    # one label in the whole batch: no negatives, no term (rather than a loss of 0 - log 1 pretending to learn)
    assert contrastive_distillation(student, teacher, torch.zeros(3, dtype=torch.long), tau).abs().sum() == 0


def test_layer_pairs():
    assert layer_pairs("skip", 6, 12) == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]  # PKD-skip
    assert layer_pairs("last", 6, 12) == [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]  # PKD-last
    assert layer_pairs("1:3", 2, 4) == [(1, 3)]
    with pytest.raises(ValueError, match="multiple"):
        layer_pairs("skip", 5, 12)
    with pytest.raises(ValueError, match="the teacher"):
        layer_pairs("1:13", 6, 12)


def test_principal_components_find_the_direction_of_most_variance():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0, 0.0]) / 5
    points = rng.normal(size=(200, 1)) * 10 * direction + rng.normal(size=(200, 3)) * 0.1
    projected, explained = principal_components(points)
    assert projected.shape == (200, 2) and explained[0] > 0.99
    centred = points - points.mean(0)
    assert np.allclose(np.abs(projected[:, 0]), np.abs(centred @ direction), atol=0.05)


# --- shrink -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shrunk(e5_dir, tmp_path_factory):
    """A 4-layer teacher base and a 2-layer student, both from the pretrained e5-small."""
    out = tmp_path_factory.mktemp("shrunk")
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.convert",
            "shrink",
            e5_dir / "model.pt",
            out / "t4",
            "--layers",
            "0,4,8,11",
        ]
    )
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.convert",
            "shrink",
            e5_dir / "model.pt",
            out / "s2",
            "--layers",
            "0,6",
        ]
    )
    return out / "t4", out / "s2"


def test_shrink_keeps_the_chosen_layers_in_order(shrunk, e5_dir):
    source = torch.load(e5_dir / "model.pt", map_location="cpu", weights_only=True)["model"]
    student = torch.load(shrunk[0] / "model.pt", map_location="cpu", weights_only=True)
    weights = student["model"]
    layers = {k.split(".")[3] for k in weights if ".layers." in k}
    assert layers == {"0", "1", "2", "3"} and student["cfg"]["model"]["encoder_layers"] == 4
    prefix = "encoder.sentence_encoder."
    for new, old in enumerate((0, 4, 8, 11)):
        assert torch.equal(weights[f"{prefix}layers.{new}.fc1.weight"], source[f"{prefix}layers.{old}.fc1.weight"])
    assert torch.equal(weights[f"{prefix}embed_tokens.weight"], source[f"{prefix}embed_tokens.weight"])
    assert (shrunk[0] / "dict.txt").read_bytes() == (e5_dir / "dict.txt").read_bytes()


def test_shrink_layer_choices_of_the_references():
    from stabletune_fairseq.convert.shrink import parse_layers

    assert parse_layers("first:6", 12) == [0, 1, 2, 3, 4, 5]  # Patient KD: the first k layers
    assert parse_layers("block-last:6", 12) == [1, 3, 5, 7, 9, 11]  # BERT-gang: range(skip - 1, 12, skip)
    assert parse_layers("block-last:3", 24) == [7, 15, 23]
    assert parse_layers("0,2,4", 12) == [0, 2, 4]
    for bad, reason in (("block-last:5", "not a multiple of 5"), ("first:13", "has 12 layers"), ("first:x", "K")):
        with pytest.raises(ValueError, match=reason):
            parse_layers(bad, 12)


def test_shrink_refuses_layers_the_model_does_not_have(e5_dir, tmp_path):
    result = run(
        [sys.executable, "-m", "stabletune_fairseq.cli.convert", "shrink", e5_dir / "model.pt", tmp_path / "x"]
        + ["--layers", "block-last:5"],
        check=False,
    )
    assert result.returncode == 2 and "the model has 12 layers, not a multiple of 5" in result.stderr
    result = run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.convert",
            "shrink",
            e5_dir / "model.pt",
            tmp_path / "x",
            "--layers",
            "0,12",
        ],
        check=False,
    )
    assert result.returncode == 2 and "has layers 0..11, not [12]" in result.stderr
    result = run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.convert",
            "shrink",
            e5_dir / "model.pt",
            tmp_path / "x",
            "--layers",
            "0,0",
        ],
        check=False,
    )
    assert result.returncode == 2 and "give each layer once" in result.stderr
    assert not (tmp_path / "x" / "model.pt").exists()


# --- the teachers and students of every family ------------------------------------------------------------------
def xtreme(task, model, data, save_dir, *extra):
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            task,
            model,
            data,
            save_dir,
            *SETTINGS,
            *extra,
            "--",
            "--log-interval",
            "1",
        ],
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def evaluate(checkpoint, data, out) -> dict:
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.evaluate",
            "--checkpoint",
            checkpoint,
            "--data",
            data,
            "--split",
            "valid",
            "--out",
            out,
        ]
    )
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def xnli_teacher(shrunk, toy_data, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("xnli-teacher") / "run"
    xtreme("XNLI", shrunk[0] / "model.pt", toy_data, save_dir, "VALID_LANGS=de")
    return save_dir / "checkpoint_best.pt"


@pytest.fixture(scope="module")
def xnli_bank(xnli_teacher, toy_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("xnli-bank") / "bank"
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.teacher_bank",
            "--checkpoint",
            xnli_teacher,
            "--data",
            toy_data,
            "--out",
            out,
            "--batch-size",
            "16",
        ]
    )
    return out


def test_the_recipe_prints_the_student_architecture_and_the_distillation_settings(
    shrunk, xnli_teacher, toy_data, tmp_path
):
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            shrunk[1] / "model.pt",
            toy_data,
            tmp_path / "s",
            "DRY_RUN=1",
            f"DISTILL={xnli_teacher}",
            "PKD_MU=100",
        ]
    )
    command = next(line for line in result.stdout.splitlines() if "fairseq-train " in line)
    assert "--arch stabletune_xlmr_e5_small --encoder-layers 2 --criterion stability_distillation" in command
    assert f"--teacher {xnli_teacher} --kd-alpha 0.5 --kd-temperature 10 --pkd-mu 100 --pkd-layers skip" in command
    assert "--lr 5e-5" in command  # the BERT distillation recipes' rate, unless LR= says otherwise
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            shrunk[1] / "model.pt",
            toy_data,
            tmp_path / "s",
            "DRY_RUN=1",
            f"DISTILL={xnli_teacher}",
            "STAGE=2",
        ],
        check=False,
    )
    assert result.returncode == 2 and "stage 2's teacher is the stage-1 model" in result.stderr


@pytest.fixture(scope="module")
def xnli_student(shrunk, xnli_teacher, xnli_bank, toy_data, toy_dicts, tmp_path_factory):
    """KD on rows (from the bank) and on code-switched views (teacher run live), PKD and the contrastive term."""
    save_dir = tmp_path_factory.mktemp("xnli-student") / "run"
    log = xtreme(
        "XNLI",
        shrunk[1] / "model.pt",
        toy_data,
        save_dir,
        "VALID_LANGS=de",
        "STAGE=1",
        f"DICT_DIR={toy_dicts}",
        f"DISTILL={xnli_teacher}",
        "PKD_MU=100",
        "CON_WEIGHT=0.1",
        f"BANK={xnli_bank}",
        "LR=1e-4",
    )
    return save_dir, log


def test_sentence_student_distils_rows_views_and_states(xnli_student, toy_data, tmp_path):
    save_dir, log = xnli_student
    assert "PKD layer pairs (student:teacher): 1:2" in log
    for term in ("kd", "pkd", "contrastive", "r1"):
        values = logged(log, term)
        assert len(values) >= 2 and all(v > 0 for v in values), (term, values)
    # PKD needs the teacher's hidden states: every row and every code-switched view ran through the teacher
    assert logged(log, "teacher_live") == [16.0, 16.0] and logged(log, "teacher_banked") == [0.0, 0.0]
    results = evaluate(save_dir / "checkpoint_best.pt", toy_data, tmp_path / "eval")
    assert results["per_language"]["de"]["n"] == TOY_DEV_PAIRS and 0 <= results["average"]["accuracy"] <= 100
    student = torch.load(save_dir / "checkpoint_best.pt", map_location="cpu", weights_only=False)
    assert student["cfg"]["model"]["encoder_layers"] == 2
    assert not any(k.startswith("criterion") for k in student["model"])  # the student alone: no teacher weights


def test_kd_from_the_bank_does_not_run_the_teacher_for_stored_rows(shrunk, xnli_teacher, xnli_bank, toy_data, tmp_path):
    log = xtreme(
        "XNLI",
        shrunk[1] / "model.pt",
        toy_data,
        tmp_path / "run",
        "VALID_LANGS=de",
        f"DISTILL={xnli_teacher}",
        f"BANK={xnli_bank}",
    )
    assert "teacher bank" in log and f"{TOY_TRAIN_PAIRS} stored training rows" in log
    assert logged(log, "teacher_banked") == [8.0, 8.0] and logged(log, "teacher_live") == [0.0, 0.0]
    assert all(v > 0 for v in logged(log, "kd"))


def test_the_criterion_loss_is_the_weighted_sum_of_its_terms_on_a_real_batch(shrunk, xnli_teacher, toy_data):
    """loss = (1 - alpha) CE + alpha T^2 KL + mu PKD (through a projection) + w CON, on real models and data."""
    from omegaconf import OmegaConf

    from stabletune_fairseq.criterions.stability_distillation import StabilityDistillationCriterion
    from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig
    from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask

    task = XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(toy_data), seed=3))
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        pretrained_encoder=str(shrunk[1] / "model.pt"),
        save_dir="",
        encoder_layers=2,
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
        dropout=0.0,
        attention_dropout=0.0,
        head_dropout=0.0,
    )  # no dropout: the hand pass sees the same
    student = task.build_model(OmegaConf.structured(cfg)).train()
    alpha, temperature, mu, weight, tau = 0.3, 4.0, 10.0, 0.2, 0.1
    criterion = StabilityDistillationCriterion(
        task,
        teacher=str(xnli_teacher),
        kd_alpha=alpha,
        kd_temperature=temperature,
        pkd_mu=mu,
        pkd_layers="1:3",
        contrastive_weight=weight,
        contrastive_temperature=tau,
    )
    torch.manual_seed(0)
    criterion.projection = nn.Linear(384, 384)  # as for a teacher of another width: trained with the student
    assert [name for name, _ in criterion.named_parameters()] == ["projection.weight", "projection.bias"]
    dataset = task.load_dataset("train")
    sample = dataset.collater([dataset[i] for i in range(8)])
    loss, sample_size, logging_output = criterion(student, sample)

    tokens, target = sample["net_input"]["src_tokens"], sample["target"]
    states, teacher_states = [], []
    logits = student(tokens, head="sentence", layer_states=states)
    with torch.no_grad():
        teacher_logits = criterion.teacher(tokens, head="sentence", layer_states=teacher_states)
    assert len(states) == 2 and len(teacher_states) == 4
    ce = F.cross_entropy(logits, target, reduction="sum")
    kd = 0.0
    for s, t in zip(logits.tolist(), teacher_logits.tolist()):
        p_s, p_t = softmax([v / temperature for v in s]), softmax([v / temperature for v in t])
        kd += temperature**2 * sum(pt * (math.log(pt) - math.log(ps)) for ps, pt in zip(p_s, p_t))
    projected = F.normalize(criterion.projection(states[0]), dim=-1)
    pkd = ((projected - F.normalize(teacher_states[2], dim=-1)) ** 2).mean() * 8  # batch mean, times the 8 rows
    con = contrastive_distillation(criterion.projection(states[-1]), teacher_states[-1], target, tau).sum()
    expected = (1 - alpha) * ce + alpha * kd + mu * pkd + weight * con
    assert sample_size == 8
    assert math.isclose(float(loss), float(expected), rel_tol=1e-5)
    # KD of two near-uniform distributions is small (~7e-3) and the criterion's is float32's: log-softmax rounding
    # (~1e-7 per class) times T^2 = 16 over 8 rows bounds the difference by ~2e-5; a wrong formula is off by far more
    assert (
        math.isclose(float(logging_output["kd"]), kd, rel_tol=1e-4, abs_tol=2e-5) and float(logging_output["pkd"]) > 0
    )
    loss.backward()
    assert criterion.projection.weight.grad.abs().sum() > 0  # the projection learns with the student
    assert all(p.grad is None for p in criterion.teacher.parameters())  # the teacher never does
    student.eval()
    loss, _, logging_output = criterion(student, sample)
    assert float(logging_output["kd"]) == 0 and math.isclose(
        float(loss), float(logging_output["task_loss"]), rel_tol=1e-6
    )


# --- the bank -----------------------------------------------------------------------------------------------------
def load_teacher_task(teacher, data):
    from stabletune_fairseq.models.checkpoint_loading import load_for_inference

    return load_for_inference(
        str(teacher),
        str(data),
        torch.device("cpu"),
        overrides={"view_augmentation": "none", "copy_augmentation": "none"},
    )[:2]


def test_the_bank_holds_the_teacher_logits_bit_for_bit(xnli_teacher, xnli_bank, toy_data):
    from stabletune_fairseq.models.teacher_bank import TeacherBank, token_checksums

    model, task = load_teacher_task(xnli_teacher, toy_data)
    bank = TeacherBank(xnli_bank)
    dataset = task.load_dataset("train")
    order = dataset.ordered_indices()
    assert bank.rows == len(dataset) == TOY_TRAIN_PAIRS
    with torch.no_grad():
        # The batches the bank was written in: exactly the teacher's float32 logits, row by row.
        for begin in range(0, 96, 16):
            sample = dataset.collater([dataset[int(i)] for i in order[begin : begin + 16]])
            tokens = sample["net_input"]["src_tokens"]
            live = model(tokens, head=task.head_name).float()
            assert torch.equal(bank.lookup(sample["id"], token_checksums(tokens, 1), live, 0.0), live)
        # Training batches group other rows: CPU matrix products then differ in the last bits, as two batchings of
        # the live teacher do between themselves; the bank is as close to either as they are to each other.
        batches = task.get_batch_iterator(dataset, max_sentences=8, seed=5).next_epoch_itr(shuffle=True)
        for _, sample in zip(range(6), batches):
            tokens = sample["net_input"]["src_tokens"]
            live = model(tokens, head=task.head_name).float()
            banked = bank.lookup(sample["id"], token_checksums(tokens, 1), live, 0.0)
            alone = torch.cat(
                [
                    model(tokens[i : i + 1, : int(tokens[i].ne(1).sum())], head=task.head_name)
                    for i in range(len(tokens))
                ]
            )
            assert (banked - live).abs().max() < 1e-6 and (alone - live).abs().max() < 1e-6


def test_a_bank_for_other_data_or_of_another_teacher_is_refused(
    xnli_teacher, xnli_bank, toy_xtreme, toy_data, e5_dir, shrunk, tmp_path
):
    from stabletune_fairseq.models.teacher_bank import TeacherBank, token_checksums
    from stabletune_fairseq.reliability.checkpoint_safety import WrongCheckpoint

    # Other data: the same task with one training pair less (a real download, edited), preprocessed alike.
    download = tmp_path / "download"
    shutil.copytree(toy_xtreme / "xnli", download / "xnli")
    lines = (download / "xnli" / "train-en.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (download / "xnli" / "train-en.tsv").write_text("".join(lines[1:]), encoding="utf-8")
    run(["bash", "preprocess/xtreme/process.sh", download, "xnli", e5_dir, tmp_path / "other"])
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            shrunk[1] / "model.pt",
            tmp_path / "other" / "xnli",
            tmp_path / "run",
            *SETTINGS,
            "VALID_LANGS=de",
            f"DISTILL={xnli_teacher}",
            f"BANK={xnli_bank}",
        ],
        check=False,
    )
    assert result.returncode != 0 and "made for other data" in result.stdout + result.stderr
    bank = TeacherBank(xnli_bank)
    _, task = load_teacher_task(xnli_teacher, tmp_path / "other" / "xnli")
    with pytest.raises(WrongCheckpoint, match="fingerprint differs"):
        bank.check_run(task.identity, 3, None)
    # Another teacher: one weight changed.
    other_teacher = tmp_path / "other_teacher.pt"
    state = torch.load(xnli_teacher, map_location="cpu", weights_only=False)
    key = next(k for k in state["model"] if k.endswith("out_proj.bias"))
    state["model"][key] = state["model"][key] + 1
    torch.save(state, other_teacher)
    _, task = load_teacher_task(xnli_teacher, toy_data)
    with pytest.raises(WrongCheckpoint, match="checksums differ"):
        bank.check_run(task.identity, 3, str(other_teacher))
    # A row that is not the stored one (another token) is refused at lookup.
    tokens = torch.tensor([[0, 100, 2]])
    with pytest.raises(WrongCheckpoint, match="training row 0 is not the row the bank holds"):
        bank.lookup(torch.tensor([0]), token_checksums(tokens, 1), torch.zeros(1, 3), 0.0)


# --- the other families: tagging (per word), QA (per start/end distribution), regression (STS-B) -------------
def criterion_kd_on_a_real_batch(task, student_release, teacher, temperature, rows=8):
    """The distillation criterion's logged KD on the first training rows of ``task``, with a 2-layer student from
    ``student_release`` (dropout off) and the real ``teacher``; and the student's and teacher's outputs on them,
    run here, and the batch."""
    from omegaconf import OmegaConf

    from stabletune_fairseq.criterions.stability_distillation import StabilityDistillationCriterion
    from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig

    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        pretrained_encoder=str(student_release),
        save_dir="",
        encoder_layers=2,
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
        dropout=0.0,
        attention_dropout=0.0,
        head_dropout=0.0,
    )
    student = task.build_model(OmegaConf.structured(cfg)).train()
    bias = student.heads[task.head_name].out_proj.bias
    with torch.no_grad():  # a new head's bias is 0: made uneven, so that an output slot of no unit is no uniform guess
        bias.copy_(torch.linspace(-2.0, 2.0, len(bias)))
    criterion = StabilityDistillationCriterion(task, teacher=str(teacher), kd_alpha=0.5, kd_temperature=temperature)
    dataset = task.load_dataset("train")
    sample = dataset.collater([dataset[i] for i in range(rows)])
    _, _, logging_output = criterion(student, sample)
    tokens, head_input = sample["net_input"]["src_tokens"], sample.get("head_input", {})
    with torch.no_grad():
        ours = student(tokens, head=task.head_name, **head_input).float()
        theirs = criterion.teacher(tokens, head=task.head_name, **head_input).float()
    return float(logging_output["kd"]), ours, theirs, sample


def kd_by_hand(student, teacher, temperature):
    """T^2 KL(softmax(teacher / T) || softmax(student / T)) over the last dimension, from torch's softmaxes."""
    p_teacher = torch.softmax(teacher / temperature, -1)
    return temperature**2 * (
        p_teacher * (torch.log_softmax(teacher / temperature, -1) - torch.log_softmax(student / temperature, -1))
    ).sum(-1)


def test_tagging_student_distils_every_word(shrunk, toy_panx, tmp_path):
    from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask

    teacher_dir = tmp_path / "teacher"
    xtreme("PANX", shrunk[0] / "model.pt", toy_panx, teacher_dir)
    # KD per word of the word mask: the padded word slots of shorter rows (a head output, 0-filled on the
    # teacher's side) are no units
    task = XtremeTaggingTask.setup_task(XtremeTaggingConfig(data=str(toy_panx), seed=1))
    kd, ours, theirs, sample = criterion_kd_on_a_real_batch(
        task, shrunk[1] / "model.pt", teacher_dir / "checkpoint_best.pt", 2.0
    )
    words = sample["word_mask"]
    assert ours.shape[:2] == words.shape and 0 < int(words.sum()) < words.numel()
    assert kd == pytest.approx(float(kd_by_hand(ours[words], theirs[words], 2.0).sum()), rel=1e-4)
    assert float(kd_by_hand(ours, theirs, 2.0).sum()) > kd * 1.01  # every slot would count more
    log = xtreme(
        "PANX",
        shrunk[1] / "model.pt",
        toy_panx,
        tmp_path / "student",
        f"DISTILL={teacher_dir / 'checkpoint_best.pt'}",
        "PKD_MU=100",
        "KD_T=2",
    )
    assert all(v > 0 for v in logged(log, "kd")) and all(v > 0 for v in logged(log, "pkd"))
    results = evaluate(tmp_path / "student" / "checkpoint_best.pt", toy_panx, tmp_path / "eval")
    assert "f1" in results["metrics"] and results["average"]["languages"] >= 1


def test_qa_student_distils_start_and_end_from_the_bank(shrunk, toy_xquad, tmp_path):
    from stabletune_fairseq.tasks.xtreme_qa import XtremeQAConfig, XtremeQATask

    teacher_dir = tmp_path / "teacher"
    xtreme("XQUAD", shrunk[0] / "model.pt", toy_xquad, teacher_dir)
    teacher = teacher_dir / "checkpoint_best.pt"
    # KD per window: the mean of the start and of the end distributions' KD over the positions (the question's
    # masked by the head on both sides)
    task = XtremeQAConfig(data=str(toy_xquad), seed=1)
    kd, ours, theirs, sample = criterion_kd_on_a_real_batch(
        XtremeQATask.setup_task(task), shrunk[1] / "model.pt", teacher, 2.0
    )
    start, end = (kd_by_hand(ours[..., i], theirs[..., i], 2.0) for i in (0, 1))
    assert not sample["head_input"]["span_mask"].all() and not torch.allclose(start, end, rtol=0.05)
    assert kd == pytest.approx(float(((start + end) / 2).sum()), rel=1e-4)
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.teacher_bank",
            "--checkpoint",
            teacher,
            "--data",
            toy_xquad,
            "--out",
            tmp_path / "bank",
        ]
    )
    record = json.loads((tmp_path / "bank" / "bank.json").read_text())
    assert record["outputs"] == 2 and record["units"] > record["rows"]  # a unit per position of every window
    assert record["units"] <= record["rows"] * QA_MAX_LEN
    log = xtreme(
        "XQUAD",
        shrunk[1] / "model.pt",
        toy_xquad,
        tmp_path / "student",
        f"DISTILL={teacher}",
        f"BANK={tmp_path / 'bank'}",
    )
    assert all(v > 0 for v in logged(log, "kd")) and sum(logged(log, "teacher_banked")) == 2 * 8  # 2 updates of BSZ=8
    results = evaluate(tmp_path / "student" / "checkpoint_best.pt", toy_xquad, tmp_path / "eval")
    assert {"exact_match", "f1"} <= set(results["metrics"])


def test_regression_student_distils_the_teacher_score(shrunk, glue, tmp_path):  # noqa: F811
    from stabletune_fairseq.tasks.glue import GlueConfig, GlueTask

    teacher_dir = tmp_path / "teacher"
    xtreme("STSB", shrunk[0] / "model.pt", glue / "STS-B", teacher_dir)
    # KD: the squared difference of the student's and the teacher's scores on the training scale (score / 5), the
    # raw head outputs of both; a teacher read on the 0-5 scale of the predictions would be off by a factor of 25
    task = GlueTask.setup_task(GlueConfig(data=str(glue / "STS-B"), seed=1))
    kd, ours, theirs, sample = criterion_kd_on_a_real_batch(
        task, shrunk[1] / "model.pt", teacher_dir / "checkpoint_best.pt", 2.0
    )
    assert ours.shape == theirs.shape == (8, 1) and task.cfg.regression_scale == 5.0
    assert kd == pytest.approx(float(((ours - theirs) ** 2).sum()), rel=1e-4)
    assert float(sample["target"].max()) <= 1.0  # the gold scores of the batch are on that scale too
    log = xtreme(
        "STSB",
        shrunk[1] / "model.pt",
        glue / "STS-B",
        tmp_path / "student",
        f"DISTILL={teacher_dir / 'checkpoint_best.pt'}",
    )
    assert all(v > 0 for v in logged(log, "kd"))
    results = evaluate(tmp_path / "student" / "checkpoint_best.pt", glue / "STS-B", tmp_path / "eval")
    assert "spearman" in results["metrics"]


def test_the_states_picture_of_teacher_and_student(xnli_teacher, xnli_student, toy_data, tmp_path):
    save_dir, _ = xnli_student
    result = run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.plot_states",
            "--data",
            toy_data,
            "--out",
            tmp_path / "states.png",
            "--per-language",
            "40",
            "--checkpoint",
            xnli_teacher,
            "--checkpoint",
            save_dir / "checkpoint_best.pt",
        ]
    )
    assert "states.png" in result.stdout
    assert drawn_pixels(tmp_path / "states.png") > 0.005  # coloured points of both models, not an empty canvas
    summary = json.loads((tmp_path / "states.json").read_text())
    assert [m["layers"] for m in summary["models"]] == [4, 2]
    languages = len(json.loads((toy_data / "metadata.json").read_text())["splits"]) - 1  # dev splits, without train
    assert all(m["examples"] <= 40 * languages and 0 < sum(m["explained_variance"]) <= 1 for m in summary["models"])


def test_run_seeds_kd_stage_needs_a_teacher(shrunk, toy_data, xnli_teacher, tmp_path):
    result = run(
        [
            "bash",
            "run_scripts/run_seeds.sh",
            "XNLI",
            shrunk[1] / "model.pt",
            toy_data,
            tmp_path / "runs",
            "STAGES=0,kd",
            "DRY_RUN=1",
        ],
        check=False,
    )
    assert result.returncode == 2 and "the kd runs need DISTILL=" in result.stderr
    result = run(
        [
            "bash",
            "run_scripts/run_seeds.sh",
            "XNLI",
            shrunk[1] / "model.pt",
            toy_data,
            tmp_path / "runs",
            "STAGES=0,kd",
            "SEEDS=1",
            "DRY_RUN=1",
            f"DISTILL={xnli_teacher}",
            "PKD_MU=100",
        ]
    )
    lines = [line for line in result.stdout.splitlines() if "run_xtreme.sh" in line]
    assert len(lines) == 2 and "DISTILL=" not in lines[0] and f"DISTILL={xnli_teacher} PKD_MU=100" in lines[1]
    assert lines[1].count("/seed1/kd ") == 1
