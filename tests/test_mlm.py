"""Continued masked-LM training and long-document QA (docs/long-context.md), on real text: the paragraphs of the
shared XQuAD/TyDiQA files. Binarisation counts, masking rates, the tied LM head, a tiny real fairseq-train run of a
2-layer e5-small that lowers the held-out masked-LM loss, stabletune-mlm-eval's repeatability, bad input (through
preprocess's main, which process.sh runs), and QA
windows at 1024 positions (a model made longer by stabletune-convert extend-positions) against 384."""

import json
import math
import re
import sys

import numpy as np
import pytest
import torch
from conftest import SHARED_SAMPLE, needs_shared, read_metadata, run

pytestmark = needs_shared
MAX_LEN, MIN_TOKENS, VALID_EVERY = 64, 16, 120  # short blocks, few held out: the 250k-row output is the cost
TRAIN = [
    "MAX_UPDATE=8",
    "WARMUP=1",
    "LR=1e-3",
    "BSZ=4",
    "UPDATE_FREQ=1",
    "VALIDATE_INTERVAL_UPDATES=8",
    "FREEZE_EMBEDDINGS=1",
]


def text_folder(out, *sources):
    run([sys.executable, "-m", "stabletune_fairseq.cli.extract_text", *sources, out])
    return out


def paragraphs(folder):
    """The documents of a text folder as the rule in docs/long-context.md reads them (independently written)."""
    docs = []
    for path in sorted(folder.glob("*.txt")):
        docs += [
            " ".join(line.strip() for line in block.splitlines() if line.strip())
            for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))
            if block.strip()
        ]
    return docs


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return text_folder(
        tmp_path_factory.mktemp("text"),
        SHARED_SAMPLE / "xquad" / "xquad.de.json",
        SHARED_SAMPLE / "xquad" / "xquad.en.json",
    )


@pytest.fixture(scope="module")
def mlm_data(text, e5_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mlm")
    run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            text,
            "mlm",
            e5_dir,
            out,
            f"MAX_LEN={MAX_LEN}",
            f"MIN_TOKENS={MIN_TOKENS}",
            f"VALID_EVERY={VALID_EVERY}",
        ]
    )
    return out / "mlm"


@pytest.fixture(scope="module")
def student(e5_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    run([sys.executable, "-m", "stabletune_fairseq.cli.convert", "shrink", e5_dir / "model.pt", out, "--layers", "0,6"])
    return out


@pytest.fixture(scope="module")
def long_student(student, tmp_path_factory):
    """The 2-layer student with 1024 positions (the 512 trained rows repeated: stabletune-convert extend-positions)."""
    out = tmp_path_factory.mktemp("student-1024")
    run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.convert",
            "extend-positions",
            student / "model.pt",
            out,
            "--max-positions",
            "1024",
        ]
    )
    return out


@pytest.fixture(scope="module")
def trained(long_student, mlm_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("mlm-run")
    result = run(["bash", "run_scripts/run_mlm.sh", long_student / "model.pt", mlm_data, save, *TRAIN])
    return save, result.stdout


def mlm_eval_cli(checkpoint, data):
    result = run(
        [sys.executable, "-m", "stabletune_fairseq.cli.mlm_eval", "--checkpoint", checkpoint, "--data", data, "--cpu"]
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- binarisation -----------------------------------------------------------------------------------------------
def test_extracted_text_is_every_distinct_paragraph(text):
    for language in ("de", "en"):
        data = json.loads((SHARED_SAMPLE / "xquad" / f"xquad.{language}.json").read_text(encoding="utf-8"))
        contexts = list(dict.fromkeys(p["context"] for a in data["data"] for p in a["paragraphs"]))
        blocks = (text / f"xquad.{language}.txt").read_text(encoding="utf-8").split("\n\n")
        assert len(blocks) == len(contexts) == 240  # XQuAD's 240 paragraphs (its 1,190 questions: the data README)
        assert blocks[0] == " ".join(contexts[0].split("\n")).strip()


def test_blocks_hold_every_piece_and_count_the_dropped_tails(mlm_data, text):
    from fairseq.data import data_utils

    from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary

    meta = read_metadata(mlm_data)
    dictionary = load_xlmr_dictionary(str(mlm_data / "dict.txt"))
    encoder = PieceEncoder(str(mlm_data / "sentencepiece.bpe.model"), dictionary)
    docs = paragraphs(text)
    held = [d for i, d in enumerate(docs) if i % VALID_EVERY == VALID_EVERY - 1]
    kept = [d for i, d in enumerate(docs) if i % VALID_EVERY != VALID_EVERY - 1]
    assert meta["valid_rule"].startswith(f"every {VALID_EVERY}th document") and meta["max_positions"] == MAX_LEN
    for split, documents in (("train", kept), ("valid", held)):
        pieces = encoder.encode(documents)
        width = MAX_LEN - 2
        expected = []
        for p in pieces:
            expected += [p[s : s + width] for s in range(0, len(p), width) if len(p[s : s + width]) >= MIN_TOKENS]
        dropped = [len(p) % width for p in pieces if 0 < len(p) % width < MIN_TOKENS]
        counts = meta["splits"][split]
        assert counts["documents"] == len(documents) and counts["pieces"] == sum(map(len, pieces))
        assert counts["blocks"] == len(expected) and counts["full_blocks"] == sum(len(p) // width for p in pieces)
        assert counts["tails_dropped"] == len(dropped) > 0 and counts["tail_tokens_dropped"] == sum(dropped)
        assert counts["pieces"] == counts["tokens_in_blocks"] + counts["tail_tokens_dropped"]
        stored = data_utils.load_indexed_dataset(str(mlm_data / "blocks" / split), dictionary)
        assert len(stored) == len(expected)
        assert all(np.array_equal(stored[i].numpy(), block) for i, block in enumerate(expected))


def test_stream_packing_fills_every_block_but_the_last(text, e5_dir, tmp_path):
    from stabletune_fairseq.data.binarize.mlm_text import prepare_mlm_task

    out = prepare_mlm_task(text, e5_dir, tmp_path, 256, valid_every=0, min_tokens=MIN_TOKENS, packing="stream")
    meta = read_metadata(out)
    train = meta["splits"]["train"]
    assert list(meta["splits"]) == ["train"] and meta["valid_rule"].startswith("none held out")
    assert train["separators"] == train["documents"] == 2 * 240  # XQuAD's 240 paragraphs in de and in en
    total = train["pieces"] + train["separators"]
    assert train["full_blocks"] == total // 254 and train["blocks"] - train["full_blocks"] == (
        total % 254 >= MIN_TOKENS
    )
    # the stored blocks: every document's pieces then </s>, one stream, cut every 254 pieces (documents cross blocks)
    from fairseq.data import data_utils

    from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary

    dictionary = load_xlmr_dictionary(str(out / "dict.txt"))
    encoder = PieceEncoder(str(out / "sentencepiece.bpe.model"), dictionary)
    stream = np.concatenate([np.append(p, dictionary.eos()) for p in encoder.encode(paragraphs(text))])
    expected = [stream[s : s + 254] for s in range(0, len(stream), 254) if len(stream[s : s + 254]) >= MIN_TOKENS]
    stored = data_utils.load_indexed_dataset(str(out / "blocks" / "train"), dictionary)
    assert len(stored) == len(expected) == train["blocks"] and len(stream) == total
    assert all(np.array_equal(stored[i].numpy(), block) for i, block in enumerate(expected))
    assert sum(int((stored[i] == dictionary.eos()).sum()) for i in range(len(stored))) == 480  # one per document


def test_run_mlm_refuses_data_longer_than_the_model(text, student, long_student, e5_dir, tmp_path):
    """Blocks of 600 tokens: refused for the 512-position student before anything runs, taken by its 1024 version."""
    from stabletune_fairseq.data.binarize.mlm_text import prepare_mlm_task

    data = prepare_mlm_task(text, e5_dir, tmp_path, 600, valid_every=0, min_tokens=MIN_TOKENS)
    model = student / "model.pt"
    result = run(["bash", "run_scripts/run_mlm.sh", model, data, tmp_path / "run", "DRY_RUN=1"], check=False)
    assert result.returncode == 2
    assert f"run_mlm.sh: {data} holds blocks of 600 tokens, more than the 512 positions of {model}" in result.stderr
    assert not (tmp_path / "run").exists()
    longer = run(["bash", "run_scripts/run_mlm.sh", long_student / "model.pt", data, tmp_path / "run", "DRY_RUN=1"])
    assert "--max-positions 1024" in longer.stdout


# --- masking -----------------------------------------------------------------------------------------------------
def test_masking_rates_and_fixed_validation_masks(mlm_data):
    from stabletune_fairseq.tasks.masked_lm import StabletuneMLMConfig, StabletuneMLMTask

    task = StabletuneMLMTask.setup_task(StabletuneMLMConfig(data=str(mlm_data), seed=3))
    train = task.load_dataset("train")
    train.set_epoch(1)
    batch = train.collater([train[i] for i in range(len(train))])
    source, target = batch["net_input"]["src_tokens"], batch["target"]
    pad, mask = task.dictionary.pad(), task.dictionary.index("<mask>")
    pieces = source.ne(pad) & source.ne(task.dictionary.bos()) & source.ne(task.dictionary.eos())
    chosen = target.ne(pad)
    assert not (chosen & ~pieces).any()  # <s>, </s> and padding are never predicted
    assert abs(chosen.sum() / pieces.sum() - 0.15) < 0.005
    as_mask = (source[chosen] == mask).float().mean()
    unchanged = (source[chosen] == target[chosen]).float().mean()
    assert abs(as_mask - 0.8) < 0.03 and abs(unchanged - 0.1) < 0.03 and abs(1 - as_mask - unchanged - 0.1) < 0.03
    train.set_epoch(2)
    assert not torch.equal(train[0]["target"], batch["target"][0][: len(train[0]["target"])])  # new masks each epoch

    valid = task.load_dataset("valid")
    first = [valid[i]["target"] for i in range(5)]
    valid.set_epoch(7)
    again = StabletuneMLMTask.setup_task(StabletuneMLMConfig(data=str(mlm_data), seed=99)).load_dataset("valid")
    assert all(torch.equal(a, valid[i]["target"]) and torch.equal(a, again[i]["target"]) for i, a in enumerate(first))


# --- the LM head -------------------------------------------------------------------------------------------------
def test_e5_small_gets_a_new_lm_head_tied_to_its_embeddings(mlm_data, e5_dir):
    from stabletune_fairseq.evaluation.masked_lm import load_for_mlm
    from stabletune_fairseq.tasks.masked_lm import StabletuneMLMConfig, StabletuneMLMTask

    task = StabletuneMLMTask.setup_task(StabletuneMLMConfig(data=str(mlm_data), seed=1))
    model, head = load_for_mlm(str(e5_dir / "model.pt"), task)
    embeddings = model.encoder.sentence_encoder.embed_tokens.weight
    assert head.startswith("initialised") and model.heads["lm"].out_proj.weight is embeddings
    assert dict(model.named_parameters())["heads.lm.bias"].shape == (embeddings.shape[0],)
    with torch.no_grad():
        embeddings[5, 0] += 1.0  # one tensor: a change of the embeddings is a change of the output projection
    assert model.heads["lm"].out_proj.weight[5, 0] == embeddings[5, 0]


# --- training and evaluation -------------------------------------------------------------------------------------
def test_training_lowers_the_held_out_loss_and_mlm_eval_repeats_it(trained, long_student, mlm_data):
    from stabletune_fairseq.evaluation.masked_lm import evaluate_mlm

    save, stdout = trained
    assert "fairseq-train" in stdout and "--task stabletune_mlm" in stdout and "--max-positions 1024" in stdout
    before = evaluate_mlm(str(long_student / "model.pt"), str(mlm_data), cpu=True)
    after = mlm_eval_cli(save / "checkpoint_last.pt", mlm_data)
    assert before["lm_head"].startswith("initialised") and after["lm_head"] == "loaded"
    assert (
        after["masked_tokens"] == before["masked_tokens"] > 100
        and after["blocks"] == read_metadata(mlm_data)["splits"]["valid"]["blocks"]
    )
    assert after["bits_per_masked_token"] < before["bits_per_masked_token"] - 1.0
    assert math.isclose(after["perplexity"], math.exp(after["nats_per_masked_token"]))
    assert math.isclose(after["bits_per_masked_token"], after["nats_per_masked_token"] / math.log(2))
    repeat = evaluate_mlm(str(save / "checkpoint_last.pt"), str(mlm_data), cpu=True)
    assert repeat == after  # the same number, exactly (fixed masks, dropout off)
    # fairseq's own validation of that checkpoint saw the same masked tokens and gives the same loss (4 decimals)
    logged = re.findall(r"\| valid \| .*?\| loss ([0-9.]+) .*?\| masked_tokens (\d+)", (save / "train.log").read_text())
    assert logged and int(logged[-1][1]) == after["masked_tokens"]
    assert abs(float(logged[-1][0]) - after["bits_per_masked_token"]) < 1e-3


def test_mlm_eval_in_bf16_measures_close_to_fp32_and_is_refused_without_bf16(trained, mlm_data, monkeypatch):
    """The same masked tokens; bf16 matrix products move the loss by rounding only (bf16 keeps 8 bits of mantissa:
    the bound is loose on purpose, an order of magnitude under the fall training brings in the test above)."""
    from stabletune_fairseq.evaluation.masked_lm import evaluate_mlm
    from stabletune_fairseq.models.precision import CPU_BF16_ENV, PrecisionUnsupported

    save, _ = trained
    fp32 = evaluate_mlm(str(save / "checkpoint_last.pt"), str(mlm_data), cpu=True)
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    bf16 = evaluate_mlm(str(save / "checkpoint_last.pt"), str(mlm_data), cpu=True, precision="bf16")
    assert bf16["precision"] == "bf16" and fp32["precision"] == "fp32"
    assert bf16["masked_tokens"] == fp32["masked_tokens"]
    assert bf16["loss_nats"] != fp32["loss_nats"]  # bf16 did run
    assert abs(bf16["bits_per_masked_token"] - fp32["bits_per_masked_token"]) < 0.1
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    with pytest.raises(PrecisionUnsupported, match="no bf16 instructions"):
        evaluate_mlm(str(save / "checkpoint_last.pt"), str(mlm_data), cpu=True, precision="bf16")


def test_continued_mlm_with_a_sliding_window_and_no_global_token(student, mlm_data, tmp_path):
    """run_mlm.sh ATTENTION_WINDOW=W: fairseq-train's model has Longformer's window (smaller than the 64-token blocks),
    trains to a finite loss, and stabletune-mlm-eval measures with the checkpoint's window or --attention-window."""
    from stabletune_fairseq.evaluation.masked_lm import evaluate_mlm

    model = student / "model.pt"
    dry = run(["bash", "run_scripts/run_mlm.sh", model, mlm_data, tmp_path / "dry", "DRY_RUN=1"]).stdout
    assert "--attention-window" not in dry and "sliding-window" not in dry  # default: full attention, as before
    bad = run(
        ["bash", "run_scripts/run_mlm.sh", model, mlm_data, tmp_path / "dry", "DRY_RUN=1", "ATTENTION_WINDOW=7"],
        check=False,
    )
    assert bad.returncode == 2 and "run_mlm.sh: ATTENTION_WINDOW must be even" in bad.stderr
    save = tmp_path / "run"
    settings = [t for t in TRAIN if not t.startswith(("MAX_UPDATE", "VALIDATE"))]
    out = run(
        [
            "bash",
            "run_scripts/run_mlm.sh",
            model,
            mlm_data,
            save,
            *settings,
            "MAX_UPDATE=2",
            "VALIDATE_INTERVAL_UPDATES=2",
            "ATTENTION_WINDOW=16",
            "--",
            "--log-interval",
            "1",
        ]
    ).stdout
    assert "--attention-window 16" in out and "sliding-window attention of 16 tokens" in out
    checkpoint = torch.load(save / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert checkpoint["cfg"]["model"]["attention_window"] == 16
    losses = [float(v) for v in re.findall(r"\| train_inner \|.*?\bloss=([^,]+),", (save / "train.log").read_text())]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    windowed = evaluate_mlm(str(save / "checkpoint_last.pt"), str(mlm_data), cpu=True)  # the checkpoint's window
    assert windowed["attention_window"] == 16 and math.isfinite(windowed["bits_per_masked_token"])
    full = evaluate_mlm(str(save / "checkpoint_last.pt"), str(mlm_data), cpu=True, attention_window=0)
    assert full["attention_window"] == 0 and full["bits_per_masked_token"] != windowed["bits_per_masked_token"]
    cli = json.loads(
        run(
            [
                sys.executable,
                "-m",
                "stabletune_fairseq.cli.mlm_eval",
                "--checkpoint",
                model,
                "--data",
                mlm_data,
                "--cpu",
                "--attention-window",
                "16",
            ]
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert cli["attention_window"] == 16 and math.isfinite(cli["bits_per_masked_token"])
    assert cli == evaluate_mlm(str(model), str(mlm_data), cpu=True, attention_window=16)


def test_an_official_style_lm_head_is_loaded(trained, mlm_data, tmp_path):
    from stabletune_fairseq.convert.release_files import write_checkpoint
    from stabletune_fairseq.evaluation.masked_lm import load_for_mlm
    from stabletune_fairseq.release import read_release
    from stabletune_fairseq.reliability.checkpoint_safety import open_checkpoint
    from stabletune_fairseq.tasks.masked_lm import StabletuneMLMConfig, StabletuneMLMTask

    save, _ = trained
    state = open_checkpoint(str(save / "checkpoint_last.pt"))["model"]
    release = dict(read_release(str(save / "checkpoint_last.pt")))  # XLM-R's names: encoder.lm_head.*
    release.update(
        {
            k.replace("heads.lm.", "encoder.lm_head."): v
            for k, v in state.items()
            if k.startswith("heads.lm.") and "out_proj" not in k
        }
    )
    release["encoder.lm_head.weight"] = release["encoder.sentence_encoder.embed_tokens.weight"]
    write_checkpoint(tmp_path, release, {"encoder_layers": 2, "encoder_attention_heads": 12}, {})
    task = StabletuneMLMTask.setup_task(StabletuneMLMConfig(data=str(mlm_data), seed=1))
    model, head = load_for_mlm(str(tmp_path / "model.pt"), task)
    assert head == "loaded" and torch.equal(model.heads["lm"].dense.weight, state["heads.lm.dense.weight"])


# --- bad input ---------------------------------------------------------------------------------------------------
def test_bad_text_folders_stop_with_the_file_named(e5_dir, tmp_path, capsys):
    from stabletune_fairseq.cli.preprocess import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "mlm", str(e5_dir), str(tmp_path / "out")]) == 2
    assert f"{empty}: no *.txt file" in capsys.readouterr().err
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "a.txt").write_text("Ein Absatz.\n\nNoch einer.\n", encoding="utf-8")
    (binary / "b.txt").write_bytes((e5_dir / "sentencepiece.bpe.model").read_bytes()[:4000])
    assert main([str(binary), "mlm", str(e5_dir), str(tmp_path / "out")]) == 2
    assert re.search(rf"{binary / 'b.txt'}:\d+: (holds a NUL byte|not valid UTF-8)", capsys.readouterr().err)
    assert not (tmp_path / "out" / "mlm").exists()


# --- long-document QA --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tydiqa_download(tmp_path_factory):
    """A real TyDiQA-GoldP download folder: the first 150 English training questions and 100 English dev questions."""
    out = tmp_path_factory.mktemp("tydiqa-download")
    source = json.loads(
        (SHARED_SAMPLE / "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json").read_text("utf-8")
    )
    train = out / "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json"
    train.parent.mkdir(parents=True)
    train.write_text(json.dumps({**source, "data": source["data"][:150]}), encoding="utf-8")
    dev = json.loads((SHARED_SAMPLE / "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.en.dev.json").read_text("utf-8"))
    (out / "tydiqa/tydiqa-goldp-v1.1-dev").mkdir(parents=True)
    (out / "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.en.dev.json").write_text(
        json.dumps({**dev, "data": dev["data"][:100]}), encoding="utf-8"
    )
    return out


def test_qa_at_1024_positions_needs_fewer_windows(tydiqa_download, e5_dir, long_student, tmp_path, capsys):
    from stabletune_fairseq.cli.preprocess import main

    assert main([str(tydiqa_download), "tydiqa", str(e5_dir), str(tmp_path / "x"), "--max-positions", "1024"]) == 2
    assert "MAX_LEN=1024 exceeds the 512 positions of the model" in capsys.readouterr().err
    long_model = long_student  # dict.txt, the sentencepiece model and a model.pt of 1024 positions
    windows = {}
    for length in (384, 1024):
        assert (
            main(
                [
                    str(tydiqa_download),
                    "tydiqa",
                    str(long_model),
                    str(tmp_path / str(length)),
                    "--max-positions",
                    str(length),
                ]
            )
            == 0
        )
        log = capsys.readouterr().err
        meta = read_metadata(tmp_path / str(length) / "tydiqa")
        assert meta["max_positions"] == length
        windows[length] = {
            name: (s["windows"], s["long_contexts"], s["examples"]) for name, s in meta["splits"].items()
        }
        for name, (count, _, _) in windows[length].items():
            assert re.search(rf"-> {name}: \d+ questions .*, {count} windows of {length} tokens", log)
    for name in ("train", "test_en"):
        (short, long_short, n), (long, long_long, _) = windows[384][name], windows[1024][name]
        assert n <= long < short and long_long < long_short  # at least one window a question, fewer in all


def test_the_vocabulary_projection_stays_float32_under_bf16_autocast():
    """bf16 training (CPU autocast) must not round the LM head's logits: the projection onto the tied embeddings
    is the float32 product, exactly (without the guard autocast returns bfloat16 logits)."""
    import torch.nn.functional as F

    from stabletune_fairseq.models.heads import TiedOutput

    torch.manual_seed(0)
    weight, x = torch.nn.Parameter(torch.randn(50, 16)), torch.randn(4, 16)
    out = TiedOutput(50)
    out.tie(weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = out(x)
        rounded = F.linear(x, weight)  # what autocast makes of the same product
    assert rounded.dtype == torch.bfloat16  # the guard is needed
    assert logits.dtype == torch.float32 and torch.equal(logits, F.linear(x, weight))
