"""bf16 on the CPU (``--cpu-precision bf16`` of every task, ``--precision bf16`` of the commands that run a model):
the matrix products run in bfloat16 while weights, gradients, optimizer state and checkpoints stay float32; a real
fairseq-train run trains with finite losses; the refusal on a CPU without bf16 (``STABLETUNE_CPU_BF16=0``) is one
line and status 2; evaluation in bf16 predicts what fp32 predicts except for near-ties.

``STABLETUNE_CPU_BF16=1`` is set where bf16 must run, so these tests run on any CPU (emulated bf16 is slow, not
wrong)."""

from __future__ import annotations

import json
import os
import platform
import re

import numpy as np
import pytest
import torch
from conftest import BIN, run
from omegaconf import OmegaConf

import stabletune_fairseq  # noqa: F401  (registers the tasks)
from stabletune_fairseq.models.precision import CPU_BF16_ENV, PrecisionUnsupported, autocast, cpu_has_bf16

NEAR_TIE = 0.02  # fp32 logit margin (top 1 - top 2) under which bf16 rounding may pick the other label
REFUSAL = "--cpu-precision bf16: this CPU has no bf16 instructions"


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "1")


def sentence_task(data, **settings):
    from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask

    return XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(data), seed=1, **settings))


def tiny_model(task):
    from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig

    torch.manual_seed(0)
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        save_dir="",
        encoder_layers=2,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_attention_heads=4,
    )
    return task.build_model(OmegaConf.structured(cfg))


def first_batch(task, split: str):
    task.load_dataset(split)
    return next(iter(task.get_batch_iterator(task.dataset(split), max_sentences=8).next_epoch_itr(shuffle=False)))


def linear_output_dtypes(model) -> tuple[set, list]:
    """The dtypes of every linear layer's outputs from now on (hooks, returned to be removed)."""
    seen = set()
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    return seen, hooks


# --- the option and its refusal --------------------------------------------------------------------------


def test_every_task_has_the_option():
    from fairseq.tasks import TASK_DATACLASS_REGISTRY

    ours = ["xtreme_sentence", "xtreme_tagging", "xtreme_qa", "glue", "stabletune_mlm", "sentence_distillation"]
    for name in ours:
        field = TASK_DATACLASS_REGISTRY[name].__dataclass_fields__["cpu_precision"]
        assert field.default == "fp32", name


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="reads x86 flags from /proc/cpuinfo")
def test_the_capability_is_the_cpus_own(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    flags = set(re.search(r"^flags\s*:(.*)$", open("/proc/cpuinfo").read(), flags=re.M).group(1).split())
    assert cpu_has_bf16() == bool({"avx512_bf16", "amx_bf16"} & flags)
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert not cpu_has_bf16()
    monkeypatch.setenv(CPU_BF16_ENV, "yes")
    with pytest.raises(PrecisionUnsupported, match=f"{CPU_BF16_ENV}='yes': 0 .* or 1"):
        cpu_has_bf16()


def test_a_cpu_without_bf16_is_refused_at_task_setup(toy_data, monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    with pytest.raises(PrecisionUnsupported, match=REFUSAL):
        sentence_task(toy_data, cpu_precision="bf16")
    assert sentence_task(toy_data).precision == "fp32"  # fp32 needs nothing


def test_fairseq_train_refuses_in_one_line_with_status_2(toy_data, tmp_path):
    result = run(
        [
            BIN / "fairseq-train",
            toy_data,
            "--user-dir",
            "stabletune_fairseq",
            "--task",
            "xtreme_sentence",
            "--arch",
            "stabletune_xlmr_e5_small",
            "--criterion",
            "stability_consistency",
            "--optimizer",
            "fused_adamw",
            "--lr",
            "1e-5",
            "--batch-size",
            "8",
            "--max-update",
            "1",
            "--cpu",
            "--save-dir",
            tmp_path,
            "--cpu-precision",
            "bf16",
        ],
        check=False,
        env={**os.environ, CPU_BF16_ENV: "0"},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"fairseq-train: {REFUSAL}" in result.stderr and "Traceback" not in result.stderr


def test_a_model_that_is_not_float32_is_refused(toy_data, bf16_cpu):
    from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion

    task = sentence_task(toy_data, cpu_precision="bf16")
    model = tiny_model(task).half()
    with pytest.raises(PrecisionUnsupported, match="this model is in torch.float16"):
        task.valid_step(first_batch(task, "valid_en"), model, StabilityConsistencyCriterion(task))


# --- what runs in bf16, what stays float32 ----------------------------------------------------------------


def test_a_bf16_step_multiplies_in_bf16_and_keeps_float32_weights_gradients_and_losses(toy_data, bf16_cpu):
    """One training step of R-Drop (R1 between two dropout passes) and one validation step, in-process."""
    from fairseq import optim
    from fairseq.dataclass.configs import FairseqConfig

    from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion
    from stabletune_fairseq.optim.fused_adam import FusedAdamWConfig

    task = sentence_task(toy_data, cpu_precision="bf16", view_augmentation="dropout")
    model = tiny_model(task)
    criterion = StabilityConsistencyCriterion(task, r1_lambda=1.0)
    cfg = OmegaConf.structured(FairseqConfig())
    cfg.optimizer = OmegaConf.structured(FusedAdamWConfig(_name="fused_adamw"))
    cfg.optimizer.lr = [1e-4]
    optimizer = optim.build_optimizer(cfg.optimizer, list(model.parameters()))
    seen, hooks = linear_output_dtypes(model)
    loss, _, logged = task.train_step(first_batch(task, "train"), model, criterion, optimizer, update_num=0)
    assert seen == {torch.bfloat16}  # every matrix product of the forward
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert logged["r1"] > 0 and torch.isfinite(logged["r1"])  # the KL of the two passes, from float32 log-softmaxes
    assert {p.grad.dtype for p in model.parameters() if p.grad is not None} == {torch.float32}
    optimizer.step()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    moments = [v for s in optimizer.optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    assert moments and {v.dtype for v in moments} == {torch.float32}
    seen.clear()
    _, _, logged = task.valid_step(first_batch(task, "valid_en"), model, criterion)
    assert seen == {torch.bfloat16} and torch.isfinite(logged["loss"])
    seen.clear()
    fp32 = sentence_task(toy_data)  # the default: fairseq's own step, nothing cast
    fp32.valid_step(first_batch(fp32, "valid_en"), model, StabilityConsistencyCriterion(fp32))
    assert seen == {torch.float32}
    for hook in hooks:
        hook.remove()


def test_the_contrastive_terms_keep_their_similarities_in_float32():
    """Cosine similarities divided by a small temperature: bf16 rounding would move these losses by ~1e-2."""
    from stabletune_fairseq.criterions.distillation_terms import contrastive_distillation
    from stabletune_fairseq.criterions.sentence_distillation import in_batch_infonce

    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 64, generator=generator), torch.randn(16, 64, generator=generator)
    labels = torch.arange(16) % 3
    for term in (lambda: contrastive_distillation(a, b, labels, 0.05), lambda: in_batch_infonce(a, b, 0.05)):
        expected = term()
        with autocast("bf16"):
            assert torch.allclose(term(), expected, atol=1e-5)
    # the tolerance tells: a product of the inputs rounded to bf16 is off by far more
    assert ((a.bfloat16().float() @ b.bfloat16().float().t()) - a @ b.t()).abs().max() > 1e-3


# --- a real run and what reads its checkpoint ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(toy_data, e5_dir, tmp_path_factory):
    """fairseq-train with the plugin, --cpu-precision bf16, R-Drop on: the command a user writes."""
    save_dir = tmp_path_factory.mktemp("bf16-run")
    result = run(
        [
            BIN / "fairseq-train",
            toy_data,
            "--user-dir",
            "stabletune_fairseq",
            "--task",
            "xtreme_sentence",
            "--arch",
            "stabletune_xlmr_e5_small",
            "--criterion",
            "stability_consistency",
            "--pretrained-encoder",
            e5_dir / "model.pt",
            "--view-augmentation",
            "dropout",
            "--r1-lambda",
            "1.0",
            "--optimizer",
            "fused_adamw",
            "--lr",
            "1e-4",
            "--batch-size",
            "16",
            "--max-update",
            "8",
            "--valid-subset",
            "valid_en",
            "--best-checkpoint-metric",
            "acc_en",
            "--maximize-best-checkpoint-metric",
            "--save-dir",
            save_dir,
            "--no-epoch-checkpoints",
            "--log-format",
            "simple",
            "--log-interval",
            "1",
            "--cpu",
            "--num-workers",
            "0",
            "--cpu-precision",
            "bf16",
        ],
        env={**os.environ, CPU_BF16_ENV: "1"},
    )
    return save_dir, result.stdout + result.stderr


def test_a_bf16_run_trains_with_finite_losses_and_saves_float32(trained):
    save_dir, log = trained
    steps = [dict(re.findall(r"(\w+)=([-\w.]+)", line)) for line in log.splitlines() if "| train_inner |" in line]
    assert [int(s["num_updates"]) for s in steps] == list(range(1, 9))
    for step in steps:
        assert np.isfinite(float(step["loss"])) and float(step["r1"]) > 0, step
    state = torch.load(save_dir / "checkpoint_best.pt", map_location="cpu", weights_only=False)
    assert state["cfg"]["task"]["cpu_precision"] == "bf16"
    assert {tensor.dtype for tensor in state["model"].values()} == {torch.float32}
    moments = [v for s in state["last_optimizer_state"]["state"].values() for v in s.values() if torch.is_tensor(v)]
    assert moments and {v.dtype for v in moments} == {torch.float32}


def test_bf16_evaluation_predicts_what_fp32_predicts_but_near_ties(trained, toy_data, tmp_path, capsys, monkeypatch):
    from stabletune_fairseq.cli.evaluate import main

    save_dir, _ = trained
    checkpoint = save_dir / "checkpoint_best.pt"

    def evaluate(out, precision):
        return main(
            [
                "--checkpoint",
                str(checkpoint),
                "--data",
                str(toy_data),
                "--split",
                "valid",
                "--out",
                str(tmp_path / out),
                "--cpu",
                "--precision",
                precision,
            ]
        )

    # a checkpoint trained in bf16 loads and evaluates in fp32 on a CPU without bf16, which refuses bf16 itself
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert evaluate("fp32", "fp32") == 0
    assert evaluate("refused", "bf16") == 2
    assert "stabletune-evaluate: --precision bf16: this CPU has no bf16 instructions" in capsys.readouterr().err
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert evaluate("bf16", "bf16") == 0
    assert json.loads((tmp_path / "bf16" / "results.json").read_text())["precision"] == "bf16"

    model = stabletune_fairseq.load_model(checkpoint, device="cpu", batch_size=64)
    logits = {}
    for precision in ("fp32", "bf16"):
        model.predictor.precision = precision
        rows, _ = model.predictor.outputs(model.task.load_dataset("valid"))
        logits[precision] = torch.stack(rows)
    deviation = (logits["bf16"] - logits["fp32"]).abs().max()
    assert 0 < deviation < NEAR_TIE / 2  # bf16 did run, and it rounds, no more
    top2 = logits["fp32"].topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()

    languages = ["de", "en", "es", "fr", "zh"]  # the rows of "valid": each language's 150 in turn
    files = lambda folder: [tmp_path / folder / "predictions" / f"valid-{lang}.tsv" for lang in languages]
    read = lambda folder: [line for path in files(folder) for line in path.read_text().splitlines()]
    fp32, bf16 = read("fp32"), read("bf16")
    assert len(fp32) == len(bf16) == len(margins) == 750
    assert fp32 == [model.labels[i] for i in logits["fp32"].argmax(-1).tolist()]  # the files are those logits
    disagree = [i for i, (a, b) in enumerate(zip(fp32, bf16, strict=True)) if a != b]
    print(f"bf16 vs fp32: {len(disagree)} of 750 predictions differ, max logit deviation {float(deviation):.2e}")
    assert all(margins[i] < NEAR_TIE for i in disagree), [margins[i] for i in disagree]


def test_embeddings_and_a_teacher_bank_in_bf16(trained, toy_data, tmp_path, bf16_cpu):
    from stabletune_fairseq.cli.teacher_bank import write_bank
    from stabletune_fairseq.embeddings.encoder import EmbeddingSettings, SentenceEmbedder

    save_dir, _ = trained
    checkpoint = save_dir / "checkpoint_best.pt"
    sentences = ["A man is reading a book in the park.", "Eine Frau kocht in der Küche.", "Il pleut."]
    cpu = torch.device("cpu")
    embedded = {
        p: SentenceEmbedder.load(checkpoint, EmbeddingSettings(precision=p), cpu).embed(sentences)
        for p in ("fp32", "bf16")
    }
    banks = {
        p: write_bank(str(checkpoint), str(toy_data), "valid_en", str(tmp_path / p), 64, True, p)
        for p in ("fp32", "bf16")
    }
    assert embedded["bf16"].dtype == np.float32
    cosine = (
        (embedded["fp32"] * embedded["bf16"]).sum(1)
        / np.linalg.norm(embedded["fp32"], axis=1)
        / np.linalg.norm(embedded["bf16"], axis=1)
    )
    assert (cosine > 0.999).all() and not np.array_equal(embedded["fp32"], embedded["bf16"])
    assert json.loads(open(os.path.join(banks["bf16"], "bank.json")).read())["precision"] == "bf16"
    fp32, bf16 = (np.load(os.path.join(banks[p], "logits.npy")) for p in ("fp32", "bf16"))
    assert bf16.dtype == np.float32 and 0 < np.abs(fp32 - bf16).max() < NEAR_TIE / 2
