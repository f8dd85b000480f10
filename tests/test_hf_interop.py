"""Hugging Face round trips on the real e5-small weights: our release exported and read by transformers, and
HF folders written by transformers converted back (stabletune-export hf, stabletune-convert hf)."""

import json
import shutil
import sys

import pytest
import torch
from conftest import BIN, run, transformers_or_skip
from test_convert import TEXTS

transformers = transformers_or_skip(allow_module_level=True)  # bash install.sh --hf; a plain install skips this file

from stabletune_fairseq.convert.fairseq_to_hf import export_hf  # noqa: E402
from stabletune_fairseq.convert.hf_to_fairseq import convert_hf  # noqa: E402
from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary  # noqa: E402
from stabletune_fairseq.models.pretrained import load_pretrained_encoder  # noqa: E402
from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig, StabletuneXLMRModel, e5_small  # noqa: E402

ALL_TEXTS = [t for texts in TEXTS.values() for t in texts]
POSITIONS = "encoder.sentence_encoder.embed_positions.weight"


def our_model(release_dir):
    dictionary = load_xlmr_dictionary(str(release_dir / "dict.txt"))
    cfg = StabletuneXLMRConfig()
    e5_small(cfg)
    cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim, cfg.save_dir = 384, 1536, None
    model = StabletuneXLMRModel.build_model(cfg, type("Task", (), {"source_dictionary": dictionary}))
    load_pretrained_encoder(model, str(release_dir / "model.pt"))
    return PieceEncoder(str(release_dir / "sentencepiece.bpe.model"), dictionary), model.eval()


def weights(release_dir):
    return torch.load(release_dir / "model.pt", map_location="cpu", weights_only=False)["model"]


@pytest.fixture(scope="module")
def exported(e5_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "e5-small-hf"
    export_hf(e5_dir / "model.pt", out)
    return out


def test_exported_release_reads_back_in_transformers_with_our_ids_and_states(exported, e5_dir):
    encoder, ours = our_model(e5_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
    hf = transformers.AutoModel.from_pretrained(exported).eval()
    assert json.loads((exported / "config.json").read_text())["architectures"] == ["XLMRobertaModel"]
    for text in ALL_TEXTS:  # eleven scripts, full-width forms, double spaces, emoji: the same pieces
        assert tokenizer(text)["input_ids"] == [0] + encoder.encode([text])[0].tolist() + [2], text
    batch = tokenizer(ALL_TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        difference = (ours.extract_features(batch["input_ids"]) - hf(**batch).last_hidden_state).abs()
    assert float(difference[batch["attention_mask"].bool()].max()) <= 1e-5  # measured: 0.0


def test_a_folder_transformers_wrote_converts_back_to_the_same_release(exported, e5_dir, tmp_path):
    back = convert_hf(exported, tmp_path / "back")
    original, converted = weights(e5_dir), weights(back)
    assert set(original) == set(converted)
    for name in original:
        rows = slice(2, None) if name == POSITIONS else slice(None)  # rows 0-1 are never looked up
        assert torch.equal(original[name][rows], converted[name][rows]), name
    assert (back / "dict.txt").read_bytes() == (e5_dir / "dict.txt").read_bytes()
    assert (back / "sentencepiece.bpe.model").read_bytes() == (e5_dir / "sentencepiece.bpe.model").read_bytes()


def test_a_bert_layout_folder_with_a_type_embedding_gives_hf_outputs(exported, e5_dir, tmp_path):
    """multilingual-e5 on the hub is a BertModel: positions from 0, a trained type-0 vector, the vocabulary in
    tokenizer.json only. Our conversion of such a folder must compute what transformers computes."""
    torch.manual_seed(0)
    state = weights(e5_dir)
    config = transformers.BertConfig(
        vocab_size=250002,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-5,
        pad_token_id=1,
    )
    bert = transformers.BertModel(config).eval()
    hf_names = {
        k.replace("roberta.", "", 1): v
        for k, v in transformers.AutoModel.from_pretrained(exported).state_dict().items()
    }
    types = torch.randn(2, 384) * 0.02
    with torch.no_grad():
        for name, tensor in bert.state_dict().items():
            if name in hf_names and "position_embeddings" not in name and "token_type" not in name:
                tensor.copy_(hf_names[name])
        bert.embeddings.token_type_embeddings.weight.copy_(types)
        bert.embeddings.position_embeddings.weight.copy_(state[POSITIONS][2:] - types[0])
    folder = tmp_path / "bert"
    bert.save_pretrained(folder)
    shutil.copy(exported / "tokenizer.json", folder)  # no sentencepiece.bpe.model: the vocabulary from here
    converted = convert_hf(folder, tmp_path / "release")
    record = json.loads((converted / "conversion.json").read_text())
    assert record["model_type"] == "bert" and record["dropped_weights"] == ["pooler.dense.bias", "pooler.dense.weight"]
    encoder, ours = our_model(converted)
    ids = [[0] + encoder.encode([t])[0].tolist() + [2] for t in TEXTS["en"] + TEXTS["zh"]]
    width = max(map(len, ids))
    tokens = torch.tensor([row + [1] * (width - len(row)) for row in ids])
    with torch.no_grad():
        difference = (
            ours.extract_features(tokens) - bert(input_ids=tokens, attention_mask=tokens.ne(1).long()).last_hidden_state
        ).abs()
    assert float(difference[tokens.ne(1)].max()) < 1e-4
    assert (converted / "dict.txt").read_bytes() == (e5_dir / "dict.txt").read_bytes()


def test_the_command_refuses_to_replace_a_folder_of_other_files(exported, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    refused = run([BIN / "stabletune-convert", "hf", exported, tmp_path], check=False)  # the installed entry point
    assert refused.returncode == 2 and "is not an earlier output of this command (no conversion.json)" in refused.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt"
    ]


def _folder(exported, tmp_path, config=None, tokenizer=None, weights="link"):
    """An HF folder of the exported files (linked), with config.json, tokenizer.json or the weights changed."""
    folder = tmp_path / "hf"
    folder.mkdir()
    config = config if config is not None else json.loads((exported / "config.json").read_text())
    if config != "absent":
        (folder / "config.json").write_text(json.dumps(config))
    if tokenizer is not None:
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    else:
        (folder / "sentencepiece.bpe.model").symlink_to(exported / "sentencepiece.bpe.model")
    if weights == "link":
        (folder / "model.safetensors").symlink_to(exported / "model.safetensors")
    elif weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    return folder


def _cut_vocabulary(exported):
    spec = json.loads((exported / "tokenizer.json").read_text())
    spec["model"]["vocab"] = spec["model"]["vocab"][:1000] + spec["model"]["vocab"][-1:]  # ... and <mask>
    return spec


HF_PROBLEMS = {  # what is wrong with the folder -> what the one-line error says
    "no config": (lambda e: {"config": "absent"}, "no config.json"),
    "no weights": (lambda e: {"weights": None}, "no weights (model.safetensors"),
    "another architecture": (
        lambda e: {"config": {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}},
        "model_type 'gpt2' (GPT2LMHeadModel) is not an XLM-R/RoBERTa encoder",
    ),
    "another vocabulary": (
        lambda e: {"tokenizer": _cut_vocabulary(e)},
        "the vocabulary has 1001 pieces in XLM-R's layout (with <pad> and <mask>), but the word embeddings have "
        "250002 rows",
    ),
    "corrupt safetensors": (
        lambda e: {"weights": (e / "model.safetensors").read_bytes()[:100_000]},
        "model.safetensors: not a readable safetensors file",
    ),
}


@pytest.mark.parametrize("problem", sorted(HF_PROBLEMS))
def test_a_folder_that_cannot_be_converted_is_one_line_and_writes_nothing(problem, exported, tmp_path, capsys):
    from stabletune_fairseq.cli.convert import main

    change, message = HF_PROBLEMS[problem]
    folder = _folder(exported, tmp_path, **change(exported))
    assert main(["hf", str(folder), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and error.startswith("stabletune-convert: ") and "\n" not in error
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))  # nothing written, no partial folder


def test_export_refuses_a_dictionary_out_of_sentencepiece_order(e5_dir, tmp_path, capsys):
    from stabletune_fairseq.cli.export import main

    release = tmp_path / "release"
    release.mkdir()
    for name in ("model.pt", "sentencepiece.bpe.model"):
        (release / name).symlink_to(e5_dir / name)
    lines = (e5_dir / "dict.txt").read_text(encoding="utf-8").split("\n")
    lines[10], lines[11] = lines[11], lines[10]  # fairseq reads it; HF's tokenizer would give other ids
    (release / "dict.txt").write_text("\n".join(lines), encoding="utf-8")
    assert main(["hf", str(release / "model.pt"), str(tmp_path / "out")]) == 2
    assert (
        "dict.txt is not the sentencepiece model's pieces in order (first difference at line 11"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_classifier_without_a_label_record(e5_dir, tmp_path, capsys):
    """A checkpoint with a sentence head but no run record (plain fairseq, an older version): the outputs cannot be
    named, so config.json's id2label cannot be written; refused, nothing written (docs/hf-interop.md)."""
    from stabletune_fairseq.cli.export import main

    state = torch.load(e5_dir / "model.pt", map_location="cpu", weights_only=True)
    head = {
        "dense.weight": torch.zeros(384, 384),
        "dense.bias": torch.zeros(384),
        "out_proj.weight": torch.zeros(3, 384),
        "out_proj.bias": torch.zeros(3),
    }
    state["model"].update({f"heads.sentence.{name}": value for name, value in head.items()})
    assert "stabletune_run" not in state.get("extra_state", {})
    release = tmp_path / "release"
    release.mkdir()
    torch.save(state, release / "classifier.pt")
    for name in ("dict.txt", "sentencepiece.bpe.model"):
        (release / name).symlink_to(e5_dir / name)
    assert main(["hf", str(release / "classifier.pt"), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"{release / 'classifier.pt'}: records no label list" in error and "\n" not in error.strip()
    assert not (tmp_path / "out").exists()


def test_transformers_pipeline_imports_in_a_fresh_process_of_this_environment():
    """``from transformers import pipeline`` in a new interpreter of this environment, as a user's own script runs it
    (without import_transformers' guard): it fails where the environment holds a torchaudio built for another torch
    (fairseq-fixed pulls one in; install.sh removes it, see there)."""
    result = run([sys.executable, "-c", "from transformers import pipeline; print(pipeline.__name__)"], check=False)
    assert result.returncode == 0 and result.stdout.strip() == "pipeline", result.stderr[-3000:]
