"""XLM-R past 512 positions (issue 19): the position-table extension of the real e5-small, and the encoder's
attention through torch's scaled_dot_product_attention, full and sliding-window with global tokens."""

import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from fairseq.data import Dictionary

from stabletune_fairseq.cli.convert import main as convert_main
from stabletune_fairseq.data.encoding import load_xlmr_dictionary
from stabletune_fairseq.models.attention import AttentionPattern, self_attention
from stabletune_fairseq.models.pretrained import load_pretrained_encoder
from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig, StabletuneXLMRModel
from stabletune_fairseq.reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint

EXTENDED = 1024
POSITIONS = "encoder.sentence_encoder.embed_positions.weight"


def build(dictionary, max_positions=512, **overrides):
    cfg = StabletuneXLMRConfig(
        encoder_embed_dim=384, encoder_ffn_embed_dim=1536, max_positions=max_positions, save_dir=None, **overrides
    )
    return StabletuneXLMRModel.build_model(cfg, type("Task", (), {"source_dictionary": dictionary})).eval()


@pytest.fixture(scope="module")
def extended_dir(e5_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("e5-1024")
    assert convert_main(["extend-positions", str(e5_dir / "model.pt"), str(out), "--max-positions", str(EXTENDED)]) == 0
    return out


@pytest.fixture(scope="module")
def models(e5_dir, extended_dir):
    dictionary = load_xlmr_dictionary(str(e5_dir / "dict.txt"))
    original, extended = build(dictionary), build(dictionary, EXTENDED)
    load_pretrained_encoder(original, str(e5_dir / "model.pt"))
    load_pretrained_encoder(extended, str(extended_dir / "model.pt"))
    return original, extended


def tokens(length: int, seed: int = 0) -> torch.Tensor:
    """``<s>`` + ``length - 2`` random ordinary pieces + ``</s>``."""
    body = torch.randint(5, 250000, (length - 2,), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.tensor([0]), body, torch.tensor([2])])


def padded_batch(*lengths: int) -> torch.Tensor:
    batch = torch.ones(len(lengths), max(lengths), dtype=torch.long)  # 1 = <pad>
    for row, length in enumerate(lengths):
        batch[row, :length] = tokens(length, seed=row)
    return batch


def test_extended_release(e5_dir, extended_dir):
    old, new = open_checkpoint(str(e5_dir / "model.pt")), open_checkpoint(str(extended_dir / "model.pt"))
    table, longer = old["model"][POSITIONS], new["model"][POSITIONS]
    assert longer.shape == (EXTENDED + 2, table.size(1)) and table.size(0) == 512 + 2
    assert torch.equal(longer[:2], table[:2])  # the offset rows stay in front
    assert torch.equal(longer[2:514], table[2:]) and torch.equal(longer[514:1026], table[2:])  # new[2+k] = old[2+k%512]
    assert not torch.equal(longer[2], longer[3])
    assert new["model"].keys() == old["model"].keys()
    assert all(torch.equal(new["model"][k], v) for k, v in old["model"].items() if k != POSITIONS)
    assert new["cfg"]["model"]["max_positions"] == EXTENDED
    assert (extended_dir / "dict.txt").read_bytes() == (e5_dir / "dict.txt").read_bytes()
    assert (extended_dir / "sentencepiece.bpe.model").read_bytes() == (e5_dir / "sentencepiece.bpe.model").read_bytes()
    # run_xtreme.sh's reading of the model: the fourth word is the length it passes as --max-positions
    script = [sys.executable, REPO / "stabletune_fairseq" / "release.py"]
    out = subprocess.run([*script, extended_dir / "model.pt"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.split() == ["stabletune_xlmr_e5_small", "0", "12", str(EXTENDED)]


def test_extended_model_gives_the_original_outputs_up_to_512(models):
    original, extended = models
    batch = padded_batch(512, 40)
    with torch.no_grad():
        assert torch.equal(original.extract_features(batch), extended.extract_features(batch))


def test_positions_repeat_past_512(models):
    _, extended = models
    batch = tokens(EXTENDED)[None]
    embed = extended.encoder.sentence_encoder.embed_positions
    with torch.no_grad():
        rows = embed(batch)[0]
        assert torch.equal(rows[:512], rows[512:]) and not torch.equal(rows[0], rows[1])
        assert extended.extract_features(batch[:, :700]).shape == (1, 700, 384)  # past the original table
    assert extended.max_positions() == EXTENDED


def test_load_needs_the_longer_table_and_refuses_bad_input(models, e5_dir, extended_dir, tmp_path, capsys):
    with pytest.raises(
        WrongCheckpoint,
        match=r"embed_positions.weight has shape \(1026, 384\), the model needs "
        r"\(514, 384\)",
    ):
        load_pretrained_encoder(models[0], str(extended_dir / "model.pt"))  # refused before anything is loaded
    source = e5_dir / "model.pt"
    assert convert_main(["extend-positions", str(source), str(tmp_path / "a"), "--max-positions", "256"]) == 2
    assert f"{source}: --max-positions 256 is not longer than the model's 512" in capsys.readouterr().err
    text = tmp_path / "model.pt"
    text.write_text("not a checkpoint\n")
    assert convert_main(["extend-positions", str(text), str(tmp_path / "b"), "--max-positions", "1024"]) == 2
    assert f"model to extend {text}: not a torch checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # the source's own folder as the output (spelled another way): refused before anything is written
    files = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in extended_dir.iterdir()}
    same = extended_dir / ".." / extended_dir.name
    assert convert_main(["extend-positions", str(extended_dir / "model.pt"), str(same), "--max-positions", "2048"]) == 2
    assert f"{same}: the folder of {extended_dir / 'model.pt'} itself" in capsys.readouterr().err
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in extended_dir.iterdir()} == files


def test_sdpa_equals_fairseq_attention(models):
    """Our forward (SDPA) against fairseq's own encoder forward (its MultiheadAttention), padding included."""
    original, _ = models
    batch = padded_batch(160, 9)
    with torch.no_grad():
        ours = original.extract_features(batch)
        fairseq = original.encoder.sentence_encoder(batch)["encoder_out"][0].transpose(0, 1)
    torch.testing.assert_close(ours, fairseq, rtol=1e-5, atol=1e-5)


def attention_inputs(e5_model, length=300, seed=0):
    mha = e5_model.encoder.sentence_encoder.layers[3].self_attn
    x = torch.randn(2, length, 384, generator=torch.Generator().manual_seed(seed))
    padding = torch.zeros(2, length, dtype=torch.bool)
    padding[1, length - 40 :] = True
    question = torch.zeros(2, length, dtype=torch.bool)
    question[1, 1:12] = True  # a QA question's tokens, global in row 1 only
    return mha, x, padding, question


def attend(mha, x, pattern):
    """``self_attention`` (time first, as fairseq) of batch-first ``x``, batch first."""
    return self_attention(mha, x.transpose(0, 1), pattern).transpose(0, 1)


def windowed(x, padding, question, window, implementation):
    tokens = torch.where(padding, 1, 5)
    return AttentionPattern.build(tokens, padding, window, question, implementation)


@torch.no_grad()
def test_blocked_and_dense_windows_agree_and_cover_full_attention(models):
    mha, x, padding, question = attention_inputs(models[0])
    full = attend(mha, x, AttentionPattern(padding))
    for window in (2 * 300, 64, 30):
        dense = attend(mha, x, windowed(x, padding, question, window, "dense"))
        blocked = attend(mha, x, windowed(x, padding, question, window, "blocked"))
        torch.testing.assert_close(blocked, dense, rtol=1e-5, atol=1e-5)
        if window >= 2 * 300:  # W/2 on each side covers the whole input: full attention
            torch.testing.assert_close(dense, full, rtol=1e-5, atol=1e-5)
        else:  # global tokens (<s>, the question of row 1) attend to everything; the others do not
            torch.testing.assert_close(dense[:, 0], full[:, 0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(dense[1, 1:12], full[1, 1:12], rtol=1e-5, atol=1e-5)
            assert (dense[0, 1:12] - full[0, 1:12]).abs().max() > 1e-3
            assert (dense[:, 100:] - full[:, 100:]).abs().max() > 1e-3


@torch.no_grad()
def test_a_token_does_not_see_outside_its_window(models):
    mha, x, padding, question = attention_inputs(models[0])
    window = 64
    changed = x.clone()
    changed[:, 150] += 1.0
    for implementation in ("dense", "blocked"):
        pattern = windowed(x, padding, question, window, implementation)
        before, after = attend(mha, x, pattern), attend(mha, changed, pattern)
        moved = (after - before).abs().amax(-1) > 1e-6  # batch x time: outputs that changed
        near = (torch.arange(300) - 150).abs() <= window // 2
        assert moved[:, near].all()  # within W/2 of position 150: changed
        assert moved[:, 0].all() and moved[1, 1:12].all()  # global tokens see everything
        assert not moved[0, ~near & (torch.arange(300) > 0)].any()  # row 0: only <s> is global
        assert not moved[1, ~near & (torch.arange(300) >= 12)].any()


def banded_reference(mha, x, padding, window):
    """Attention written out (batch-first ``x``): each query over the non-padding keys at most W/2 away, no global
    token; fairseq's q/k/v/out projections (queries scaled by head_dim ** -0.5)."""
    b, t, _ = x.shape
    heads, dim = mha.num_heads, mha.head_dim
    q, k, v = (proj(x).view(b, t, heads, dim).transpose(1, 2) for proj in (mha.q_proj, mha.k_proj, mha.v_proj))
    scores = (q @ k.transpose(-1, -2)) * dim**-0.5
    allowed = torch.tensor([[abs(i - j) <= window // 2 for j in range(t)] for i in range(t)])
    scores = scores.masked_fill(~(allowed[None, None] & ~padding[:, None, None, :]), float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, heads * dim)
    return mha.out_proj(out)


@torch.no_grad()
def test_mlm_window_without_global_tokens_is_banded_attention(models):
    """Masked LM under a window (``first_global=False``): no token is global, <s> included; both implementations equal
    the banded attention written out, and the padding queries (no key but themselves) stay finite."""
    mha, x, padding, _ = attention_inputs(models[0])
    tokens = torch.where(padding, 1, 5)
    reference = banded_reference(mha, x, padding, 64)
    real = ~padding
    for implementation in ("dense", "blocked"):
        pattern = AttentionPattern.build(tokens, padding, 64, None, implementation, first_global=False)
        assert not pattern.global_mask.any()
        out = attend(mha, x, pattern)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out[real], reference[real], rtol=1e-5, atol=1e-5)
    with_first = attend(mha, x, AttentionPattern.build(tokens, padding, 64, None, "dense"))
    assert (with_first[:, 0] - reference[:, 0]).abs().max() > 1e-3  # by default <s> is global: it sees everything


@torch.no_grad()
def test_mlm_forward_under_a_window_equals_fairseq_layers_with_a_band_mask(models, e5_dir):
    """The model's ``lm`` head under --attention-window: the whole encoder against fairseq's own layers given the
    band as their attention mask (no global token), on a short input."""
    from stabletune_fairseq.models.lm_head import add_lm_head

    original, _ = models
    add_lm_head(original)
    batch = tokens(40, seed=3)[None]
    masked = torch.zeros_like(batch, dtype=torch.bool)
    masked[0, [0, 5, 20, 39]] = True
    encoder = original.encoder.sentence_encoder
    outside = torch.tensor([[abs(i - j) > 4 for j in range(40)] for i in range(40)])  # window 8: 4 on each side
    x, _ = encoder.forward_embedding(batch)
    x = x.transpose(0, 1)
    for layer in encoder.layers:
        x = layer(x, encoder_padding_mask=None, attn_mask=outside)
    expected = original.heads["lm"](x.transpose(0, 1), masked_tokens=masked)
    original.encoder.attention_window = 8
    try:
        logits = original(batch, head="lm", masked_tokens=masked)
    finally:
        original.encoder.attention_window = 0
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert (logits - original(batch, head="lm", masked_tokens=masked)).abs().max() > 1e-2  # the window matters


@torch.no_grad()
def test_windowed_model_keeps_the_first_position_and_layer_states_paths(models):
    _, extended = models
    batch = padded_batch(700, 500)
    question = torch.zeros_like(batch, dtype=torch.bool)
    question[:, 1:9] = True
    extended.encoder.attention_window = 128
    layers = extended.encoder.sentence_encoder.layers
    extended.encoder.sentence_encoder.layers = layers[:3]  # three real layers are enough, and quick
    try:
        states, short_states = [], []
        full = extended.encoder(batch, layer_states=states, global_positions=question)
        first = extended.encoder(batch, first_position_only=True, layer_states=short_states, global_positions=question)
        without_question = extended.encoder(batch)
    finally:
        extended.encoder.attention_window = 0
        extended.encoder.sentence_encoder.layers = layers
    assert first.shape == (2, 1, 384) and len(states) == len(short_states) == 3
    torch.testing.assert_close(first[:, 0], full[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(short_states[-1], states[-1], rtol=1e-5, atol=1e-5)
    assert torch.equal(states[-1], full[:, 0])
    assert (without_question[:, 300] - full[:, 300]).abs().max() > 1e-4  # global_positions reach the attention
    with pytest.raises(ValueError, match="attention-window 7: an even number"):
        build(Dictionary(), attention_window=7)


@torch.no_grad()
def test_attention_dropout_is_applied_in_training(models):
    """SDPA's dropout_p is the layer's attention dropout in training, 0 in evaluation (every other dropout off)."""
    model = models[0]
    batch = padded_batch(150, 90)
    layers = model.encoder.sentence_encoder.layers
    model.encoder.sentence_encoder.layers = layers[:2]
    model.encoder.attention_window = 32
    dropouts = [m for m in model.modules() if type(m).__name__ == "FairseqDropout"]
    probability = {m: m.p for m in dropouts}
    attention = [m for m in dropouts if m.module_name == "MultiheadAttention"]
    assert len(attention) == 2
    for m in dropouts:
        m.p = 0.5 if m in attention else 0.0
    try:
        reference = model.extract_features(batch)
        assert torch.equal(reference, model.extract_features(batch))  # eval: no dropout
        model.train()
        torch.manual_seed(0)
        one = model.extract_features(batch)
        torch.manual_seed(1)
        assert not torch.allclose(one, model.extract_features(batch))
        torch.manual_seed(0)
        assert torch.equal(one, model.extract_features(batch))
        for m in attention:
            m.p = 0.0
        torch.testing.assert_close(
            model.extract_features(batch), reference
        )  # the attention's dropout made the difference
    finally:
        for m, p in probability.items():
            m.p = p
        model.eval()
        model.encoder.attention_window = 0
        model.encoder.sentence_encoder.layers = layers


@torch.no_grad()
def test_the_span_head_makes_the_question_global_under_a_window(models):
    """QA under --attention-window: the question (tokens before the first </s>) is global without the caller's help."""
    from stabletune_fairseq.models.stabletune_xlmr import first_segment

    _, extended = models
    batch = padded_batch(700, 600)
    batch[:, 12] = 2  # <s> + 11 question pieces + </s> ...
    question = first_segment(batch, eos=2)
    assert question[:, :12].all() and not question[:, 12:].any()
    extended.add_head("span", "span", 2)
    extended.heads["span"].eval()  # a new module trains: its dropout would differ between calls
    span_mask = torch.ones_like(batch, dtype=torch.bool)
    layers = extended.encoder.sentence_encoder.layers
    extended.encoder.sentence_encoder.layers = layers[:2]
    extended.encoder.attention_window = 128
    try:
        automatic = extended(batch, head="span", span_mask=span_mask)
        explicit = extended(batch, head="span", span_mask=span_mask, global_positions=question)
        only_first = extended(batch, head="span", span_mask=span_mask, global_positions=torch.zeros_like(question))
        extended.encoder.attention_window = 0
        full = extended(batch, head="span", span_mask=span_mask)
    finally:
        extended.encoder.attention_window = 0
        extended.encoder.sentence_encoder.layers = layers
        del extended.heads["span"]
    assert torch.equal(automatic, explicit)
    assert (automatic[:, 400] - only_first[:, 400]).abs().max() > 1e-4  # position 400 sees the question only globally
    assert (automatic[:, 400] - full[:, 400]).abs().max() > 1e-4  # and still only a window of the context


def long_training_contexts(toy_qa_xtreme, out, filler_sentences=60):
    """The toy QA download with every English training context behind ``filler_sentences`` sentences of filler
    (the toy's own filler, about 11 pieces each): contexts of ~700 pieces, answers past position 512."""
    import json
    import shutil

    shutil.copytree(toy_qa_xtreme / "xquad", out / "xquad")
    squad = json.loads((toy_qa_xtreme / "squad" / "train-v1.1.json").read_text(encoding="utf-8"))
    prefix = " ".join(["The weather there is mild and the people are friendly."] * filler_sentences) + " "
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["context"] = prefix + paragraph["context"]
            for qa in paragraph["qas"]:
                for answer in qa["answers"]:
                    answer["answer_start"] += len(prefix)
                    assert paragraph["context"][answer["answer_start"] :].startswith(answer["text"])
    (out / "squad").mkdir(parents=True)
    (out / "squad" / "train-v1.1.json").write_text(json.dumps(squad), encoding="utf-8")
    return out


def test_qa_past_512_tokens_trains_with_a_window_through_the_recipe(extended_dir, toy_qa_xtreme, tmp_path):
    """process.sh MAX_LEN=1024 with the extended model on contexts of ~700 pieces, run_xtreme.sh (its
    --max-positions read from model.pt) with --attention-window, then stabletune-evaluate: the real fairseq-train
    path of a long model. Training windows are longer than 512 tokens, their answers past position 512, and the
    position rows past 512 (copies before training) are trained."""
    import json

    from conftest import preprocess_into, run

    from stabletune_fairseq.tasks.xtreme_qa import XtremeQAConfig, XtremeQATask

    student = tmp_path / "long-2-layers"
    assert convert_main(["shrink", str(extended_dir / "model.pt"), str(student), "--layers", "0,11"]) == 0
    download = long_training_contexts(toy_qa_xtreme, tmp_path / "download")
    data = preprocess_into(tmp_path / "data", download, "xquad", student, "MAX_LEN=1024")
    assert json.loads((data / "metadata.json").read_text(encoding="utf-8"))["max_positions"] == 1024
    train = XtremeQATask.setup_task(XtremeQAConfig(data=str(data), seed=1)).load_dataset("train")
    answers = [train[i]["target"] for i in range(8)]
    assert min(train.sizes) > 600 and all(int(a.min()) > 512 for a in answers)  # whole contexts, one window each
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XQUAD",
            student / "model.pt",
            data,
            tmp_path / "run",
            "MAX_UPDATE=2",
            "BSZ=4",
            "FREEZE_EMBEDDINGS=1",
            "--",
            "--attention-window",
            "64",
            "--log-interval",
            "1",
        ]
    )
    log = result.stdout + result.stderr
    assert "--max-positions 1024" in log and "--attention-window 64" in log
    assert [float(v) for v in re.findall(r"\| train_inner \|.*?\bwpb=([\d.]+)", log)] and all(
        float(v) > 4 * 600 for v in re.findall(r"\| train_inner \|.*?\bwpb=([\d.]+)", log)
    )  # 4 long windows
    checkpoint = torch.load(tmp_path / "run" / "checkpoint_last.pt", weights_only=False)
    assert checkpoint["cfg"]["model"]["attention_window"] == 64 and checkpoint["cfg"]["model"]["max_positions"] == 1024
    before = open_checkpoint(str(student / "model.pt"))["model"][POSITIONS]
    after = checkpoint["model"][POSITIONS]
    longest = max(train.sizes)
    moved = (after - before).abs().amax(1)  # per table row (position p is row p + 2)
    assert (moved[2 + 513 : 2 + 600] > 0).all()  # positions past 512 were in the trained windows: they moved
    assert (moved[2 + longest :] == 0).all()  # past the longest window: no gradient (and XQuAD's optimiser no decay)
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.evaluate",
            "--checkpoint",
            tmp_path / "run" / "checkpoint_last.pt",
            "--data",
            data,
            "--split",
            "valid",
            "--out",
            tmp_path / "eval",
        ]
    )
    results = json.loads((tmp_path / "eval" / "results.json").read_text(encoding="utf-8"))
    assert set(results["per_language"]) and all(0 <= row["f1"] <= 100 for row in results["per_language"].values())
