"""Multilingual distillation of sentence embeddings (docs/embeddings.md, "Training"): parallel pairs made of the XNLI
sample's dev files (line i of dev-en.tsv and dev-<lg>.tsv are translations), binarised by process.sh; the real
e5-small as teacher, a 2-layer shrink of it as student; the loss against a hand computation with the evaluation's
own embedder; a tiny real fairseq-train run that lowers the held-out MSE; bad input refused with a clear error."""

import json
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, SHARED_SAMPLE, needs_shared, run

SHARED_DATA = REPO.parent / "shared" / "data"
STS = SHARED_DATA / "sts-sample"
PREFIX = "query: "
# small and fast: 4 updates of 8 rows, the word embeddings (most of the student's weights) frozen, one checkpoint
TRAIN_SETTINGS = [
    "MAX_UPDATE=4",
    "BSZ=8",
    "LR=3e-4",
    "FREEZE_EMBEDDINGS=1",
    "VALIDATE_INTERVAL_UPDATES=0",
    "--",
    "--no-last-checkpoints",
]
pytestmark = needs_shared


def xnli_column(language: str, column: int, rows: slice) -> list[str]:
    lines = (SHARED_SAMPLE / "xnli" / f"dev-{language}.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    return [line.split("\t")[column] for line in lines[rows]]


def pairs(language: str, rows: slice) -> list[tuple[str, str]]:
    """English hypotheses and their translations (hypotheses are unique per line; premises repeat 3 times)."""
    return list(zip(xnli_column("en", 1, rows), xnli_column(language, 1, rows)))


def write_tsv(path, rows) -> None:
    path.write_text("".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def parallel_folder(tmp_path_factory):
    """en-de.tsv (120 pairs: the last 12 held out), en-zh.train.tsv + en-zh.dev.tsv (60 + 20), 20 English premises
    as source-only sentences."""
    folder = tmp_path_factory.mktemp("parallel")
    write_tsv(folder / "en-de.tsv", pairs("de", slice(0, 120)))
    write_tsv(folder / "en-zh.train.tsv", pairs("zh", slice(120, 180)))
    write_tsv(folder / "en-zh.dev.tsv", pairs("zh", slice(180, 200)))
    premises = list(dict.fromkeys(xnli_column("en", 0, slice(200, 260))))[:20]
    (folder / "en.sentences.txt").write_text("".join(p + "\n" for p in premises), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def parallel_data(parallel_folder, e5_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel-data")
    run(["bash", "preprocess/xtreme/process.sh", parallel_folder, "parallel", e5_dir, out])
    return out / "parallel"


@pytest.fixture(scope="module")
def student(e5_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "s2"
    run([sys.executable, "-m", "stabletune_fairseq.cli.convert", "shrink", e5_dir / "model.pt", out, "--layers", "0,6"])
    return out / "model.pt"


@pytest.fixture(scope="module")
def sts_slice(tmp_path_factory):
    """The first 40 pairs of STS2017 track 5 (en-en) with their gold scores."""
    if not STS.is_dir():
        pytest.skip("../shared/data/sts-sample is absent")
    out = tmp_path_factory.mktemp("sts")
    for name in ("STS2017.eval.v1.1/STS.input.track5.en-en.txt", "STS2017.gs/STS.gs.track5.en-en.txt"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(
            "".join((STS / name).read_text(encoding="utf-8").splitlines(True)[:40]), encoding="utf-8"
        )
    return out


@pytest.fixture(scope="module")
def built(parallel_data, student, e5_dir):
    """The task, the student (pretrained weights loaded) and the criterion with the e5-small teacher, as
    fairseq-train builds them (built once: loading the teacher is the slow part)."""
    return setup(parallel_data, student, e5_dir / "model.pt")


def setup(data, student_model, teacher, contrastive_weight=0.0):
    from omegaconf import OmegaConf

    from stabletune_fairseq.criterions.sentence_distillation import SentenceDistillationCriterion
    from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig

    task = distillation_task(data)
    cfg = StabletuneXLMRConfig(
        _name="stabletune_xlmr",
        encoder_layers=2,
        encoder_embed_dim=384,
        encoder_ffn_embed_dim=1536,
        pretrained_encoder=str(student_model),
        save_dir="",
    )
    model = task.build_model(OmegaConf.structured(cfg))
    criterion = SentenceDistillationCriterion(task, teacher=str(teacher), contrastive_weight=contrastive_weight)
    return task, model.eval(), criterion


def distillation_task(data, prefix=PREFIX):
    import stabletune_fairseq  # noqa: F401
    from stabletune_fairseq.tasks.sentence_distillation import SentenceDistillationConfig, SentenceDistillationTask

    return SentenceDistillationTask.setup_task(SentenceDistillationConfig(data=str(data), prefix=prefix, seed=1))


def validation_mse(task, model, criterion) -> dict:
    """mse_src, mse_tgt over the whole valid split, as fairseq's validation aggregates them."""
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    totals = {"mse_src": 0.0, "mse_tgt": 0.0, "rows": 0, "pairs": 0}
    with torch.no_grad():
        for start in range(0, len(dataset), 16):
            sample = dataset.collater([dataset[i] for i in range(start, min(start + 16, len(dataset)))])
            _, _, log = criterion(model, sample)
            for key in totals:
                totals[key] += float(log[key])
    return {"mse_src": totals["mse_src"] / totals["rows"], "mse_tgt": totals["mse_tgt"] / totals["pairs"]}


# --- data ---------------------------------------------------------------------------------------------------
def test_process_sh_binarises_pairs_holds_out_validation_and_counts(parallel_data, parallel_folder, e5_dir):
    from fairseq.data import data_utils

    from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary

    meta = json.loads((parallel_data / "metadata.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "parallel_sentences" and meta["max_positions"] == 128
    assert meta["splits"]["train"] == {"examples": 108 + 60 + 20, "pairs": 108 + 60, "source_only": 20}
    assert meta["splits"]["valid"] == {"examples": 12 + 20, "pairs": 12 + 20, "source_only": 0}
    de, zh = meta["files"]["pairs"]["en-de"], meta["files"]["pairs"]["en-zh"]
    assert de["rows"] == 120 and de["train"]["pairs"] == 108 and de["valid"]["from"] == "last 12 rows (lines 109-120)"
    assert zh["valid"]["from"] == "dev file" and zh["valid"]["pairs"] == 20
    assert de["train"]["longer_than_max_positions"] == {"source": 0, "target": 0}
    assert meta["files"]["sentences"]["en.sentences.txt"]["sentences"] == 20
    # stored: the pieces of the sentences themselves (no prefix, no <s>/</s>); the first held-out pair of en-de
    dictionary = load_xlmr_dictionary(str(parallel_data / "dict.txt"))
    encoder = PieceEncoder(str(e5_dir / "sentencepiece.bpe.model"), dictionary)
    en, german = pairs("de", slice(108, 109))[0]
    source = data_utils.load_indexed_dataset(str(parallel_data / "source" / "valid"), dictionary)
    target = data_utils.load_indexed_dataset(str(parallel_data / "target" / "valid"), dictionary)
    assert source[0].tolist() == encoder.encode([en])[0].tolist()
    assert target[0].tolist() == encoder.encode([german])[0].tolist()
    assert len(source) == len(target) == 32


@pytest.mark.parametrize(
    "row, reason",
    [
        ("{a}\t{b}\t{a}", "3 tab-separated columns, expected 2 (source<TAB>target)"),
        ("{a}", "1 tab-separated columns, expected 2 (source<TAB>target)"),
        ("{a}\t ", "empty target sentence"),
    ],
)
def test_a_malformed_row_names_file_line_and_reason(row, reason, e5_dir, tmp_path, capsys):
    """What process.sh runs (stabletune_fairseq.cli.preprocess), in this process: every file is read before
    anything is written."""
    from stabletune_fairseq.cli.preprocess import main

    ((en, de),) = pairs("de", slice(0, 1))
    rows = [f"{a}\t{b}" for a, b in pairs("de", slice(1, 30))]
    rows.insert(6, row.format(a=en, b=de))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "en-de.tsv").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    assert main([str(folder), "parallel", str(e5_dir), str(tmp_path / "out")]) == 2
    assert f"error: {folder / 'en-de.tsv'}:7: {reason}" in capsys.readouterr().err
    assert not (tmp_path / "out" / "parallel").exists()


# --- the loss ------------------------------------------------------------------------------------------------
def test_the_loss_is_the_hand_computation_with_the_evaluation_embedder(built, student):
    """Teacher and student embeddings from stabletune-embed-eval's embedder (``prefix + sentence`` tokenised, its
    pooling), the MSE terms and the InfoNCE written out in numpy: the criterion's on a real batch."""
    from stabletune_fairseq.embeddings.encoder import EmbeddingSettings, LoadedEncoder, SentenceEmbedder
    from stabletune_fairseq.models.pretrained import load_pretrained_encoder

    task, model, criterion = built
    load_pretrained_encoder(model, str(student))
    weight, tau = 0.5, 0.05
    criterion.contrastive_weight, criterion.contrastive_temperature = weight, tau
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    rows = list(range(8, 16))  # en-de held-out rows 9-12 and en-zh dev rows 1-4
    sample = dataset.collater([dataset[i] for i in rows])
    try:
        with torch.no_grad():
            loss, sample_size, log = criterion(model.eval(), sample)
    finally:
        criterion.contrastive_weight = 0.0
    sources = pairs("de", slice(116, 120)) + pairs("zh", slice(180, 184))
    settings = EmbeddingSettings(prefix=PREFIX, pooling="mean")
    embedder = lambda encoder: SentenceEmbedder(
        LoadedEncoder(encoder, task.pieces, 512, "test", task.cfg.data), settings, torch.device("cpu")
    )
    teacher, shrunk = embedder(criterion.teacher), embedder(model.encoder)
    tokens = sample["net_input"]["src_tokens"]
    assert [t.tolist() for t in teacher.tokens([s for s, _ in sources])] == [row[row.ne(1)].tolist() for row in tokens]
    t_src = teacher.embed([s for s, _ in sources]).astype(np.float64)
    s_src = shrunk.embed([s for s, _ in sources]).astype(np.float64)
    s_tgt = shrunk.embed([t for _, t in sources]).astype(np.float64)
    mse_src = ((s_src - t_src) ** 2).mean(1)
    mse_tgt = ((s_tgt - t_src) ** 2).mean(1)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    logits = unit(s_src) @ unit(s_tgt).T / tau
    log_softmax = lambda z: (
        z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    )
    infonce = (-np.diag(log_softmax(logits)) - np.diag(log_softmax(logits.T))) / 2
    assert sample_size == 8 and log["pairs"] == 8
    assert float(log["mse_src"]) == pytest.approx(mse_src.sum(), rel=1e-4)
    assert float(log["mse_tgt"]) == pytest.approx(mse_tgt.sum(), rel=1e-4)
    assert float(log["contrastive"]) / 8 == pytest.approx(infonce.mean(), rel=1e-4)
    expected = (mse_src + mse_tgt).mean() + weight * infonce.mean()
    assert float(loss) / sample_size == pytest.approx(expected, rel=1e-4)
    assert mse_tgt.mean() > mse_src.mean() > 0  # a 2-layer student: further from the teacher on the translations
    # gradients reach the student, never the teacher
    model.train()
    loss, _, _ = criterion(model, sample)
    loss.backward()
    model.eval()
    assert model.encoder.sentence_encoder.layers[0].fc1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in criterion.teacher.parameters())
    assert not [name for name, _ in criterion.named_parameters()]  # same width: no projection
    model.zero_grad()


def test_a_source_only_row_has_the_source_term_only(built, parallel_folder, student):
    """Two pairs and a source-only sentence: the loss is the three rows' source MSE and the two pairs' target MSE,
    from stabletune-embed-eval's embedder of the raw sentences (as in the hand computation above)."""
    from stabletune_fairseq.embeddings.encoder import EmbeddingSettings, LoadedEncoder, SentenceEmbedder
    from stabletune_fairseq.models.pretrained import load_pretrained_encoder

    task, model, criterion = built
    load_pretrained_encoder(model, str(student))
    task.load_dataset("train")
    dataset = task.dataset("train")
    rows = [0, 1, len(dataset) - 1]  # two pairs and the last source-only sentence
    sample = dataset.collater([dataset[i] for i in rows])
    assert sample["target_rows"].tolist() == [True, True, False] and sample["target_tokens"].size(0) == 2
    with torch.no_grad():
        loss, sample_size, log = criterion(model.eval(), sample)
    assert sample_size == 3 and log["pairs"] == 2
    alone = (parallel_folder / "en.sentences.txt").read_text(encoding="utf-8").splitlines()[-1]
    sources = [s for s, _ in pairs("de", slice(0, 2))] + [alone]
    targets = [t for _, t in pairs("de", slice(0, 2))]
    settings = EmbeddingSettings(prefix=PREFIX, pooling="mean")
    embedder = lambda encoder: SentenceEmbedder(
        LoadedEncoder(encoder, task.pieces, 512, "test", task.cfg.data), settings, torch.device("cpu")
    )
    teacher, shrunk = embedder(criterion.teacher), embedder(model.encoder)
    tokens = sample["net_input"]["src_tokens"]
    assert [t.tolist() for t in teacher.tokens(sources)] == [row[row.ne(1)].tolist() for row in tokens]
    t_src = teacher.embed(sources).astype(np.float64)
    mse_src = ((shrunk.embed(sources).astype(np.float64) - t_src) ** 2).mean(1)  # every row
    mse_tgt = ((shrunk.embed(targets).astype(np.float64) - t_src[:2]) ** 2).mean(1)  # the pairs only
    assert float(log["mse_src"]) == pytest.approx(mse_src.sum(), rel=1e-4)
    assert float(log["mse_tgt"]) == pytest.approx(mse_tgt.sum(), rel=1e-4)
    assert float(loss) == pytest.approx(mse_src.sum() + mse_tgt.sum(), rel=1e-4)
    assert mse_src[2] > 1e-3 * mse_src.sum()  # the source-only row's term is in it, and not negligible


# --- training -------------------------------------------------------------------------------------------------
def test_training_lowers_the_held_out_mse_and_scores_sts(built, parallel_data, student, e5_dir, sts_slice, tmp_path):
    from stabletune_fairseq.models.pretrained import load_pretrained_encoder

    save = tmp_path / "run"
    result = run(
        [
            "bash",
            "run_scripts/run_distill_embeddings.sh",
            student,
            parallel_data,
            save,
            f"TEACHER={e5_dir / 'model.pt'}",
            f"EVAL_STS={sts_slice}",
            *TRAIN_SETTINGS,
        ]
    )
    command = next(line for line in result.stdout.splitlines() if "fairseq-train " in line)
    for option in (
        "--task sentence_distillation",
        "--criterion sentence_distillation",
        "--prefix query:\\ ",
        "--arch stabletune_xlmr_e5_small --encoder-layers 2",
        "--best-checkpoint-metric sts_spearman --maximize-best-checkpoint-metric",
        "--warmup-updates 0 ",
    ):
        assert option in command, option
    valid = [line for line in result.stdout.splitlines() if "| valid on 'valid' subset |" in line]
    assert len(valid) == 1 and valid[0].endswith("| num_updates 4")
    logged = {key: float(value) for key, value in re.findall(r"\| (mse_src|mse_tgt|sts_spearman) ([-\d.]+)", valid[0])}
    assert set(logged) == {"mse_src", "mse_tgt", "sts_spearman"}

    task, model, criterion = built
    load_pretrained_encoder(model, str(student))
    before = validation_mse(task, model, criterion)
    state = torch.load(save / "checkpoint_best.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    after = validation_mse(task, model, criterion)
    assert after["mse_tgt"] < before["mse_tgt"] and after["mse_src"] < before["mse_src"]
    assert after["mse_tgt"] == pytest.approx(logged["mse_tgt"], abs=2e-6)  # fairseq's validation is this one
    print(
        f"held-out MSE before/after 4 updates: src {before['mse_src']:.6f} -> {after['mse_src']:.6f}, "
        f"tgt {before['mse_tgt']:.6f} -> {after['mse_tgt']:.6f}; STS slice Spearman {logged['sts_spearman']}"
    )

    # stabletune-embed-eval (its main, in this process) reads the trained student and scores what validation logged
    from stabletune_fairseq.cli.embed_eval import main

    out = tmp_path / "eval"
    assert (
        main(
            [
                "--checkpoint",
                str(save / "checkpoint_best.pt"),
                "--task",
                "sts",
                "--data",
                str(sts_slice),
                "--prefix",
                PREFIX,
                "--out",
                str(out),
                "--cpu",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["average"]["spearman"] == pytest.approx(logged["sts_spearman"], abs=0.01)


# --- bad input ------------------------------------------------------------------------------------------------
def test_a_student_or_teacher_of_another_vocabulary_is_refused(parallel_data, student, e5_dir, tmp_path):
    from stabletune_fairseq.criterions.sentence_distillation import load_embedding_teacher
    from stabletune_fairseq.reliability.checkpoint_safety import WrongCheckpoint

    data = tmp_path / "parallel"
    shutil.copytree(parallel_data, data)
    with open(data / "dict.txt", "a", encoding="utf-8") as handle:
        handle.write("extra-token 1\n")  # as if preprocessed with another model's dictionary
    result = run(
        [
            "bash",
            "run_scripts/run_distill_embeddings.sh",
            student,
            data,
            tmp_path / "run",
            f"TEACHER={e5_dir / 'model.pt'}",
        ],
        check=False,
    )
    assert result.returncode == 2
    assert (
        f"error: pretrained model {student}: a vocabulary of 250002 tokens, but the data was preprocessed with "
        f"another dictionary ({data / 'dict.txt'}: 250003 tokens)"
    ) in result.stderr
    assert not (tmp_path / "run").exists()

    task = distillation_task(data)
    with pytest.raises(WrongCheckpoint, match=r"teacher .*model.pt: its vocabulary .* is not the data's"):
        load_embedding_teacher(str(e5_dir / "model.pt"), task)


def test_the_recipe_refuses_a_missing_teacher_and_a_selection_without_its_data(parallel_data, student, tmp_path):
    result = run(
        ["bash", "run_scripts/run_distill_embeddings.sh", student, parallel_data, tmp_path / "run"], check=False
    )
    assert result.returncode == 2 and "TEACHER=<sentence encoder model.pt> is required" in result.stderr
    result = run(
        [
            "bash",
            "run_scripts/run_distill_embeddings.sh",
            student,
            parallel_data,
            tmp_path / "run",
            f"TEACHER={student}",
            "SELECT=tatoeba_en_to_x",
        ],
        check=False,
    )
    assert result.returncode == 2 and "SELECT=tatoeba_en_to_x needs EVAL_TATOEBA=<folder>" in result.stderr
    # the old name is refused with the two directions it could mean
    result = run(
        [
            "bash",
            "run_scripts/run_distill_embeddings.sh",
            student,
            parallel_data,
            tmp_path / "run",
            f"TEACHER={student}",
            "SELECT=tatoeba_acc",
        ],
        check=False,
    )
    assert result.returncode == 2 and "tatoeba_x_to_en" in result.stderr and "tatoeba_en_to_x" in result.stderr


def test_a_prefix_must_end_with_a_space(parallel_data):
    with pytest.raises(ValueError, match="must end with a space"):
        distillation_task(parallel_data, prefix="query:")
