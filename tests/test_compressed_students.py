"""Compressed students (docs/compressed-students.md): the bottleneck embedding and layer recurrence of
``stabletune_xlmr`` against their plain equivalents, ``stabletune-convert compress`` on the real e5-small (SVD of the
table, layers, repeat), the options read back by every reader (release, shrink, extend-positions, a fairseq-train
checkpoint), and HF export refusing them."""

import json
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import needs_shared, run
from fairseq.data import Dictionary
from test_sentence_distillation import PREFIX, built, pairs, parallel_data, parallel_folder, student  # noqa: F401

from stabletune_fairseq.models.stabletune_xlmr import FactorisedEmbedding, StabletuneXLMRConfig, StabletuneXLMRModel

TOY = dict(encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_attention_heads=2, save_dir="")


def toy_model(**options):
    dictionary = Dictionary()
    for i in range(20):
        dictionary.add_symbol(f"w{i}")
    torch.manual_seed(0)
    cfg = StabletuneXLMRConfig(**TOY, **options)
    return StabletuneXLMRModel.build_model(cfg, SimpleNamespace(source_dictionary=dictionary)).eval()


TOKENS = torch.tensor([[0, 5, 9, 12, 2, 1, 1], [0, 7, 7, 4, 19, 8, 2]])


def test_recurrence_is_the_same_layers_run_again_and_trains_them():
    """One layer run 3 times computes what a plain 3-layer model with three copies of that layer computes; the
    gradient of the shared layer is the sum over its three uses (so it is nonzero and the model has one copy)."""
    recurrent = toy_model(encoder_layers=1, layer_repeat=3)
    plain = toy_model(encoder_layers=3)
    state = recurrent.state_dict()
    copied = {k: v for k, v in state.items() if ".layers." not in k}
    for i in range(3):
        copied |= {k.replace(".layers.0.", f".layers.{i}."): v for k, v in state.items() if ".layers.0." in k}
    plain.load_state_dict(copied)
    states = []
    out = recurrent.encoder(TOKENS, layer_states=states)
    assert len(states) == 3 and torch.allclose(out, plain.encoder(TOKENS), atol=1e-6)
    assert not torch.allclose(out, recurrent.encoder(TOKENS, num_layers=1), atol=1e-3)  # the repeats do something
    recurrent.train()
    recurrent.encoder(TOKENS)[:, 0].sum().backward()
    assert recurrent.encoder.sentence_encoder.layers[0].fc1.weight.grad.abs().sum() > 0
    assert sum(p.numel() for p in recurrent.parameters()) < sum(p.numel() for p in plain.parameters())


def test_the_bottleneck_table_is_the_product_table_and_both_factors_train():
    factorised = toy_model(encoder_layers=2, embedding_bottleneck=4)
    plain = toy_model(encoder_layers=2)
    embed = factorised.encoder.sentence_encoder.embed_tokens
    assert isinstance(embed, FactorisedEmbedding) and tuple(embed.weight.shape) == (24, 4)
    assert embed.embedding_dim == 16 and float(embed.weight[1].detach().abs().sum()) == 0.0  # padding row
    state = {k: v for k, v in factorised.state_dict().items() if "embed_tokens" not in k}
    state["encoder.sentence_encoder.embed_tokens.weight"] = embed.weight @ embed.projection.weight.t()
    plain.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(factorised.encoder(TOKENS), plain.encoder(TOKENS), atol=1e-5)
    factorised.train()
    factorised.encoder(TOKENS).sum().backward()
    assert embed.weight.grad[5].abs().sum() > 0 and embed.projection.weight.grad.abs().sum() > 0
    assert embed.weight.grad[3].abs().sum() == 0  # a token not in the batch


@pytest.fixture(scope="module")
def compressed(e5_dir, tmp_path_factory):
    """e5-small's layers 0 and 6 run 3 times over a 64-wide factorised table (SVD)."""
    out = tmp_path_factory.mktemp("compressed") / "c"
    model = e5_dir / "model.pt"
    command = [sys.executable, "-m", "stabletune_fairseq.cli.convert", "compress", model, out]
    run(command + ["--layers", "0,6", "--repeat", "3", "--bottleneck", "64"])
    return out


def test_compress_writes_the_svd_factors_layers_and_settings(compressed, e5_dir):
    from stabletune_fairseq.release import encoder_shape, read_release, stored_settings
    from stabletune_fairseq.reliability.checkpoint_safety import open_checkpoint

    source = read_release(str(e5_dir / "model.pt"))
    ours = read_release(str(compressed / "model.pt"))
    shape = encoder_shape(ours, stored_settings(open_checkpoint(str(compressed / "model.pt"), "model")))
    assert (shape.layers, shape.hidden, shape.bottleneck, shape.repeat) == (2, 384, 64, 3)
    prefix = "encoder.sentence_encoder."
    assert torch.equal(ours[prefix + "layers.1.fc1.weight"], source[prefix + "layers.6.fc1.weight"])
    # the best rank-64 approximation: what it misses is the table's squared norm outside the top 64 directions
    table = source[prefix + "embed_tokens.weight"].double()
    product = (
        ours[prefix + "embed_tokens.weight"].double() @ ours[prefix + "embed_tokens.projection.weight"].double().t()
    )
    residual = float((table - product).pow(2).sum() / table.pow(2).sum())
    recorded = json.loads((compressed / "conversion.json").read_text())["embedding"]
    assert recorded["init"] == "svd" and residual == pytest.approx(1 - recorded["squared_norm_kept"], abs=1e-4)
    projection = ours[prefix + "embed_tokens.projection.weight"].double()
    assert torch.allclose(projection.t() @ projection, torch.eye(64, dtype=torch.float64), atol=1e-5)  # orthonormal
    assert 0.3 < recorded["squared_norm_kept"] < 1


def test_every_reader_keeps_the_options_and_export_refuses_them(compressed, e5_dir, tmp_path):
    from stabletune_fairseq.embeddings.encoder import load_encoder
    from stabletune_fairseq.release import encoder_shape, read_release, stored_settings
    from stabletune_fairseq.reliability.checkpoint_safety import open_checkpoint

    longer, shrunk = tmp_path / "long", tmp_path / "shrunk"
    convert = [sys.executable, "-m", "stabletune_fairseq.cli.convert"]
    run(convert + ["extend-positions", compressed / "model.pt", longer, "--max-positions", "600"])
    run(convert + ["shrink", compressed / "model.pt", shrunk, "--layers", "1"])
    for folder, layers, positions in ((longer, 2, 600), (shrunk, 1, 512)):
        path = str(folder / "model.pt")
        shape = encoder_shape(read_release(path), stored_settings(open_checkpoint(path, "model")))
        assert (shape.layers, shape.bottleneck, shape.repeat, shape.positions) == (layers, 64, 3, positions)
    loaded = load_encoder(compressed / "model.pt", torch.device("cpu"))
    assert loaded.encoder.layer_repeat == 3 and isinstance(
        loaded.encoder.sentence_encoder.embed_tokens, FactorisedEmbedding
    )
    result = run(
        convert[:2] + ["stabletune_fairseq.cli.export", "hf", compressed / "model.pt", tmp_path / "hf"], check=False
    )
    assert result.returncode != 0 and "--embedding-bottleneck" in result.stderr and "Hugging Face" in result.stderr
    assert not (tmp_path / "hf").exists()


def test_mcl_is_the_frameworks_formula_written_out():
    """MSE(cos(T(s_i), T(s_j)), cos(S(s_i), S(t_j))) over all i, j, written with loops in numpy."""
    import numpy as np

    from stabletune_fairseq.criterions.mcl_terms import mcl_loss

    rng = np.random.default_rng(3)
    s_src, s_tgt, t_src = (rng.normal(size=(5, 8)) for _ in range(3))
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    expected = np.mean([(cos(t_src[i], t_src[j]) - cos(s_src[i], s_tgt[j])) ** 2 for i in range(5) for j in range(5)])
    got = mcl_loss(*(torch.tensor(x, dtype=torch.float32) for x in (s_src, s_tgt, t_src)))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(mcl_loss(torch.tensor(t_src), torch.tensor(t_src), torch.tensor(t_src))) == pytest.approx(0, abs=1e-7)


@needs_shared
def test_the_criterion_adds_mcl_and_aligns_translations_with_the_teacher_of_themselves(built, student):  # noqa: F811
    """The framework's stage-4 loss (1:1:1) and stage-3 target (the assistant's embedding of the translation), on a
    real batch, against stabletune-embed-eval's embedder of the raw sentences; then the stage-2 teacher (its embedding
    layer): the teacher's embeddings pooled from ``encoder(num_layers=0)``'s states."""
    import numpy as np

    from stabletune_fairseq.embeddings.encoder import EmbeddingSettings, LoadedEncoder, SentenceEmbedder
    from stabletune_fairseq.models.pretrained import load_pretrained_encoder

    task, model, criterion = built
    load_pretrained_encoder(model, str(student))
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(8, 16)])
    sources = pairs("de", slice(116, 120)) + pairs("zh", slice(180, 184))
    embedder = lambda encoder, layer=None: SentenceEmbedder(
        LoadedEncoder(encoder, task.pieces, 512, "test", task.cfg.data),
        EmbeddingSettings(prefix=PREFIX, pooling="mean", layer=layer),
        torch.device("cpu"),
    )
    src, tgt = [s for s, _ in sources], [t for _, t in sources]
    s_src, s_tgt = (embedder(model.encoder).embed(x).astype(np.float64) for x in (src, tgt))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    try:
        criterion.mcl_weight, criterion.target_teacher = 1.0, "self"
        with torch.no_grad():
            loss, rows, log = criterion(model, sample)
        t_src, t_tgt = (embedder(criterion.teacher).embed(x).astype(np.float64) for x in (src, tgt))
        mcl = ((unit(t_src) @ unit(t_src).T - unit(s_src) @ unit(s_tgt).T) ** 2).mean()
        mse_src, mse_tgt = ((s_src - t_src) ** 2).mean(1), ((s_tgt - t_tgt) ** 2).mean(1)
        assert float(log["mcl"]) / 8 == pytest.approx(mcl, rel=1e-4)
        assert float(log["mse_tgt"]) == pytest.approx(mse_tgt.sum(), rel=1e-4)
        assert float(loss) / rows == pytest.approx(mse_src.mean() + mse_tgt.mean() + mcl, rel=1e-4)
        criterion.mcl_weight, criterion.teacher_layers = 0.0, 0
        with torch.no_grad():
            _, _, log = criterion(model, sample)
        t0_src, t0_tgt = (embedder(criterion.teacher, layer=0).embed(x).astype(np.float64) for x in (src, tgt))
        assert float(log["mse_src"]) == pytest.approx(((s_src - t0_src) ** 2).mean(1).sum(), rel=1e-4)
        assert float(log["mse_tgt"]) == pytest.approx(((s_tgt - t0_tgt) ** 2).mean(1).sum(), rel=1e-4)
        assert not np.allclose(t0_src, t_src, atol=1e-3)
    finally:
        criterion.mcl_weight, criterion.target_teacher, criterion.teacher_layers = 0.0, "source", None


@needs_shared
def test_stages_2_to_4_run_resume_and_the_checkpoint_loads_back_compressed(parallel_data, e5_dir, tmp_path):  # noqa: F811
    """run_compress_embeddings.sh with e5-small as the assistant (stage 1 skipped), one update a stage: each stage's
    student is the previous one's, the stage-4 checkpoint (written by fairseq-train) loads back through fairseq's
    own loader with its bottleneck and repeat, computing what the saved weights compute; a second run skips all."""
    from stabletune_fairseq.embeddings.encoder import load_encoder

    out, model = tmp_path / "runs", e5_dir / "model.pt"
    command = ["bash", "run_scripts/run_compress_embeddings.sh", model, parallel_data, out, f"TEACHER={model}"]
    command += [f"ASSISTANT={model}", "BOTTLENECK=32", "LAYERS=1", "REPEAT=2", "STAGES=2,3,4", "MAX_UPDATE=1", "BSZ=8"]
    command += ["FREEZE_EMBEDDINGS=1", "VALIDATE_INTERVAL_UPDATES=0", "--", "--no-last-checkpoints"]
    first = run(command)
    assert "--encoder-layers 0 --embedding-bottleneck 32" in first.stdout and "--teacher-layers 0" in first.stdout
    assert "--layer-repeat 2" in first.stdout and "--mcl-weight 1" in first.stdout
    stage2 = torch.load(out / "stage2/run/checkpoint_best.pt", map_location="cpu", weights_only=False)["model"]
    stage3 = torch.load(out / "stage3/init/model.pt", map_location="cpu", weights_only=False)["model"]
    projection = "encoder.sentence_encoder.embed_tokens.projection.weight"
    assert torch.equal(stage2[projection], stage3[projection])  # stage 3 sits on stage 2's embedding layer
    saved = torch.load(out / "stage4/run/checkpoint_best.pt", map_location="cpu", weights_only=False)
    assert (saved["cfg"]["model"]["embedding_bottleneck"], saved["cfg"]["model"]["layer_repeat"]) == (32, 2)
    start = torch.load(out / "stage4/init/model.pt", map_location="cpu", weights_only=False)["model"]
    assert not torch.equal(start[projection], saved["model"][projection])  # stage 4 trained it
    loaded = load_encoder(out / "stage4/run/checkpoint_best.pt", torch.device("cpu"))
    assert loaded.encoder.layer_repeat == 2 and len(loaded.encoder.sentence_encoder.layers) == 1
    rebuilt = toy_like(loaded.encoder.dictionary, saved["model"])
    tokens = torch.tensor([[0, 35378, 8999, 38, 2], [0, 581, 2, 1, 1]])
    with torch.no_grad():
        assert torch.allclose(loaded.encoder(tokens), rebuilt.encoder(tokens), atol=1e-5)
    second = run(command)
    assert second.stdout.count("done before") == 3 and "fairseq-train " not in second.stdout


def toy_like(dictionary, state):
    cfg = StabletuneXLMRConfig(
        encoder_layers=1,
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
        embedding_bottleneck=32,
        layer_repeat=2,
        save_dir="",
    )
    model = StabletuneXLMRModel.build_model(cfg, SimpleNamespace(source_dictionary=dictionary)).eval()
    model.load_state_dict({k: v for k, v in state.items() if k.startswith("encoder.")}, strict=False)
    missing = set(model.state_dict()) - set(state)
    assert not {k for k in missing if not k.endswith("version")}
    return model


@needs_shared
def test_a_signal_stops_the_running_stage_with_75_and_a_rerun_resumes_it(parallel_data, e5_dir, tmp_path):  # noqa: F811
    """SIGTERM to run_compress_embeddings.sh during stage 2: passed on to the stage's fairseq-train, which saves
    checkpoint_last.pt and exits with 75, and so does the recipe (the stage not marked done); the same command again
    resumes that checkpoint and finishes the stage."""
    import re
    import signal
    import subprocess
    import time

    from conftest import REPO

    out, model = tmp_path / "runs", e5_dir / "model.pt"
    command = ["bash", "run_scripts/run_compress_embeddings.sh", model, parallel_data, out, f"TEACHER={model}"]
    command += [f"ASSISTANT={model}", "BOTTLENECK=32", "STAGES=2", "MAX_UPDATE=200", "BSZ=8", "FREEZE_EMBEDDINGS=1"]
    command += ["VALIDATE_INTERVAL_UPDATES=0", "--", "--log-interval", "1"]
    started = subprocess.Popen([str(c) for c in command], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = out / "stage2" / "run" / "train.log"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and "num_updates=2," in log.read_text(encoding="utf-8")):
        time.sleep(0.5)
    started.send_signal(signal.SIGTERM)
    _, stderr = started.communicate(timeout=300)
    assert started.returncode == 75, stderr.decode()[-2000:]
    assert "stage 2 preempted (exit 75)" in stderr.decode()
    assert (out / "stage2" / "run" / "checkpoint_last.pt").is_file() and not (out / "stage2" / "done").exists()
    stopped = torch.load(out / "stage2" / "run" / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    updates = stopped["optimizer_history"][-1]["num_updates"]
    assert 2 <= updates < 200
    run(command)
    resumed = log.read_text(encoding="utf-8")
    assert re.search(rf"Loaded checkpoint \S+checkpoint_last\.pt \(epoch \d+ @ {updates} updates\)", resumed)
    assert (out / "stage2" / "done").is_file() and "num_updates 200" in resumed
