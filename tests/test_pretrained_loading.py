"""Official-format XLM-R checkpoints load into our encoder, safely, and only when not resuming."""

import argparse
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO

from stabletune_fairseq.data.encoding import load_xlmr_dictionary
from stabletune_fairseq.models.pretrained import load_pretrained_encoder, maybe_load_pretrained
from stabletune_fairseq.models.stabletune_xlmr import EmbeddingNoise, StabletuneXLMRConfig, StabletuneXLMRModel
from stabletune_fairseq.reliability.checkpoint_safety import WrongCheckpoint


def build_e5_model(e5_dir, **overrides):
    cfg = StabletuneXLMRConfig(encoder_embed_dim=384, encoder_ffn_embed_dim=1536, save_dir=None, **overrides)
    task = type("Task", (), {"source_dictionary": load_xlmr_dictionary(str(e5_dir / "dict.txt"))})
    return StabletuneXLMRModel.build_model(cfg, task).eval()


def as_2019_release(state: dict) -> dict:
    """The converted weights in the layout of the 2019 XLM-R release: ``decoder.*`` keys,
    ``emb_layer_norm``, packed attention projections, an LM head, and ``args`` as a Namespace."""
    old = {}
    for key, value in state.items():
        key = key.replace("encoder.sentence_encoder.", "decoder.sentence_encoder.").replace(
            "layernorm_embedding", "emb_layer_norm"
        )
        old[key] = value
    for layer in range(12):
        prefix = f"decoder.sentence_encoder.layers.{layer}.self_attn."
        for kind in ("weight", "bias"):
            parts = [old.pop(f"{prefix}{p}_proj.{kind}") for p in ("q", "k", "v")]
            old[f"{prefix}in_proj_{kind}"] = torch.cat(parts, dim=0)
    old["decoder.lm_head.bias"] = torch.zeros(250002)
    old["decoder.lm_head.dense.weight"] = torch.eye(384)
    args = argparse.Namespace(arch="roberta_base", encoder_layers=12, max_positions=512)
    return {"args": args, "model": old, "extra_state": {"val_loss": np.float64(1.5)}, "optimizer_history": []}


@pytest.fixture(scope="module")
def release_2019(e5_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "model.pt"
    converted = torch.load(e5_dir / "model.pt", map_location="cpu", weights_only=True, mmap=True)
    # written as the 2019 releases were: torch's legacy (pre-1.6, not zip) format, which cannot be memory-mapped
    torch.save(as_2019_release(converted["model"]), path, _use_new_zipfile_serialization=False)
    return path


def test_2019_release_loads_identically(e5_dir, release_2019):
    tokens = torch.tensor([[0, 35378, 8999, 38, 2, 1]])
    reference, old = build_e5_model(e5_dir), build_e5_model(e5_dir)
    load_pretrained_encoder(reference, str(e5_dir / "model.pt"))
    load_pretrained_encoder(old, str(release_2019))
    with torch.no_grad():
        assert torch.equal(reference.extract_features(tokens), old.extract_features(tokens))


def test_release_needs_the_allowlist_not_an_override(release_2019):
    """The plugin's loader allows the release's types for its own load; importing the plugin leaves torch's
    other loads as they were (fairseq-train allows them process-wide: test_train_guard)."""
    check = "import torch, sys; {} torch.load(sys.argv[1], map_location='cpu'); print('loaded')"
    env = {"PATH": "/usr/bin:/bin"}  # no TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
    plain = subprocess.run(
        [sys.executable, "-c", check.format(""), release_2019], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert plain.returncode != 0 and "argparse.Namespace" in plain.stderr
    ours = (
        "import stabletune_fairseq; from stabletune_fairseq.reliability.checkpoint_safety import "
        "load_checkpoint_safely; print(type(load_checkpoint_safely(sys.argv[1])['args']).__name__);"
    )
    ours = subprocess.run(
        [sys.executable, "-c", check.format(ours), release_2019], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert ours.stdout.split() == ["Namespace"] and ours.returncode != 0 and "argparse.Namespace" in ours.stderr


def test_release_script_names_the_architecture_without_importing_fairseq(release_2019, tmp_path):
    # run_xtreme.sh's first step: python stabletune_fairseq/release.py <model.pt> -> architecture, GPU count, layers
    script = [sys.executable, "-X", "importtime", REPO / "stabletune_fairseq" / "release.py"]
    result = subprocess.run([*script, release_2019], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and result.stdout.split() == ["stabletune_xlmr_e5_small", "0", "12"], result.stderr[
        -2000:
    ]
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    ]
    assert "torch" in imported and not [m for m in imported if m.startswith(("fairseq", "stabletune_fairseq"))]
    text = tmp_path / "model.pt"
    text.write_text("not a checkpoint\n")
    result = subprocess.run([*script, text], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and f"error: pretrained model {text}: not a torch checkpoint" in result.stderr


def test_wrong_architecture_is_a_clear_error(e5_dir):
    model = build_e5_model(e5_dir, encoder_layers=2)
    with pytest.raises(ValueError, match="have no place in the model"):
        load_pretrained_encoder(model, str(e5_dir / "model.pt"))
    wider = StabletuneXLMRModel.build_model(
        StabletuneXLMRConfig(encoder_embed_dim=768, save_dir=None),
        type("Task", (), {"source_dictionary": load_xlmr_dictionary(str(e5_dir / "dict.txt"))}),
    )
    with pytest.raises(ValueError, match=r"has shape .*another architecture than --arch"):
        load_pretrained_encoder(wider, str(e5_dir / "model.pt"))


def test_pretrained_is_skipped_when_resuming(e5_dir, tmp_path):
    model = build_e5_model(e5_dir)
    before = model.encoder.sentence_encoder.embed_tokens.weight.clone()
    cfg = argparse.Namespace(pretrained_encoder=str(e5_dir / "model.pt"), save_dir=str(tmp_path))
    torch.save({"model": {}}, tmp_path / "checkpoint_last.pt")  # sound, but holds nothing of this model
    with pytest.raises(
        WrongCheckpoint,
        match=r"has no encoder\.sentence_encoder\.embed_tokens\.weight \(\d+ "
        r"weights of this run's model are missing",
    ):
        maybe_load_pretrained(model, cfg)
    torch.save({"model": model.state_dict()}, tmp_path / "checkpoint_last.pt")  # this model's own
    assert maybe_load_pretrained(model, cfg) is False
    assert torch.equal(before, model.encoder.sentence_encoder.embed_tokens.weight)
    (tmp_path / "checkpoint_last.pt").unlink()
    assert maybe_load_pretrained(model, cfg) is True
    assert not torch.equal(before, model.encoder.sentence_encoder.embed_tokens.weight)


def test_embedding_noise_changes_logits(e5_dir):
    model = build_e5_model(e5_dir)
    model.add_head("sentence", "sentence", 3)
    model.eval()
    tokens = torch.tensor([[0, 35378, 8999, 38, 2]])
    with torch.no_grad():
        clean = model(tokens, head="sentence")
        assert torch.equal(clean, model(tokens, head="sentence"))
        noisy = model(tokens, head="sentence", noise=EmbeddingNoise(0.1))
        uniform = model(tokens, head="sentence", noise=EmbeddingNoise(0.1, "uniform"))
    assert not torch.allclose(clean, noisy)
    assert not torch.allclose(clean, uniform)


def test_uniform_noise_stays_in_its_range_and_detached_noise_trains_no_embedding():
    """R3F's noise: U(-eps, eps) on the embeddings of the noised rows only; detached, those rows send no gradient
    to the embeddings, the other rows still do."""
    embeddings = torch.zeros(2, 3, 4, requires_grad=True)
    rows = torch.tensor([False, True])
    noised = EmbeddingNoise(0.5, "uniform", detached=True).apply(embeddings, rows)
    assert torch.equal(noised[0], torch.zeros(3, 4))
    assert 0 < noised[1].abs().max() <= 0.5
    noised.sum().backward()
    assert torch.equal(embeddings.grad[0], torch.ones(3, 4)) and torch.equal(embeddings.grad[1], torch.zeros(3, 4))
    with pytest.raises(ValueError, match="normal or uniform"):
        EmbeddingNoise(0.5, "laplace").apply(embeddings)


def test_frozen_embeddings_get_no_gradient(e5_dir):
    model = build_e5_model(e5_dir, freeze_embeddings=True)
    model.add_head("sentence", "sentence", 3)
    model(torch.tensor([[0, 35378, 8999, 38, 2]]), head="sentence").sum().backward()
    assert model.encoder.sentence_encoder.embed_tokens.weight.grad is None
    assert model.encoder.sentence_encoder.layers[0].fc1.weight.grad is not None


def test_sentence_head_skips_only_what_it_never_reads(e5_dir):
    """A sentence head reads <s> alone, so the encoder computes the last layer at position 0 only: the logits
    and every gradient must be those of the full forward (padded rows included; dropout off to compare)."""
    model = build_e5_model(e5_dir, dropout=0.0, attention_dropout=0.0, head_dropout=0.0)
    load_pretrained_encoder(model, str(e5_dir / "model.pt"))
    model.add_head("sentence", "sentence", 3)
    model.train()
    tokens = torch.tensor([[0, 35378, 8999, 38, 2, 1, 1], [0, 6, 2665, 903, 83, 2577, 2]])
    parameters = dict(model.named_parameters())

    def logits_and_gradients(first_position_only: bool):
        model.zero_grad()
        features = model.encoder(tokens, first_position_only=first_position_only)
        assert features.size(1) == (1 if first_position_only else tokens.size(1))
        logits = model.heads["sentence"](features)
        (logits * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
        return logits.detach(), {name: p.grad.clone() for name, p in parameters.items() if p.grad is not None}

    full, full_grads = logits_and_gradients(False)
    short, short_grads = logits_and_gradients(True)
    torch.testing.assert_close(short, full, rtol=1e-5, atol=1e-5)
    assert short_grads.keys() == full_grads.keys() and len(full_grads) > 190
    for name, grad in full_grads.items():
        torch.testing.assert_close(short_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # and the model's own forward takes the short path for this head: the last feed-forward sees one position
    positions = []
    hook = model.encoder.sentence_encoder.layers[-1].fc1.register_forward_hook(
        lambda m, i, o: positions.append(i[0].size(0))
    )
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, head="sentence"), full, rtol=1e-5, atol=1e-5)
    hook.remove()
    assert positions == [1]


def test_packed_attention_is_split_as_fairseq_itself_splits_it():
    """Our reading of a release's packed ``in_proj`` against fairseq's own MultiheadAttention upgrade (an
    independent oracle: if the release packed q, k, v in another order, the two would disagree)."""
    from fairseq.modules import MultiheadAttention

    from stabletune_fairseq.release import encoder_state_from_release

    generator = torch.Generator().manual_seed(0)
    prefix = "decoder.sentence_encoder.layers.0.self_attn"
    packed = {
        f"{prefix}.in_proj_weight": torch.randn(3 * 8, 8, generator=generator),
        f"{prefix}.in_proj_bias": torch.randn(3 * 8, generator=generator),
        f"{prefix}.out_proj.weight": torch.randn(8, 8, generator=generator),
    }
    theirs = dict(packed)
    MultiheadAttention(8, 2).upgrade_state_dict_named(theirs, prefix)
    ours = encoder_state_from_release(packed)
    assert sorted(k.split("self_attn.")[1] for k in ours) == sorted(k.split("self_attn.")[1] for k in theirs)
    for key, value in theirs.items():
        assert torch.equal(ours[key.replace("decoder.", "encoder.")], value), key
