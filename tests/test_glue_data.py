"""GLUE preprocessing on the real GLUE sample (../shared/data/glue-sample): every reader on every file, then
preprocess/glue/process.sh's command on the whole folder (in this process; process.sh itself runs once)."""

import math
from collections import Counter

import numpy as np
import pytest
from conftest import GLUE_SAMPLE, needs_glue, read_metadata, run
from fairseq.data.indexed_dataset import MMapIndexedDataset

from stabletune_fairseq.cli.preprocess_glue import main as preprocess_glue
from stabletune_fairseq.data.binarize.glue import load_encoder
from stabletune_fairseq.data.readers.glue_tsv import find_glue_files, glue_task, read_glue_file

pytestmark = needs_glue

COUNTS = {  # rows of each file, as the data README gives them (header excluded)
    "CoLA": {"train.tsv": 8551, "dev.tsv": 1043, "test.tsv": 1063},
    "SST-2": {"train.tsv": 67349, "dev.tsv": 872, "test.tsv": 1821},
    "MRPC": {"train.tsv": 3668, "dev.tsv": 408, "test.tsv": 1725},
    "STS-B": {"train.tsv": 5749, "dev.tsv": 1500, "test.tsv": 1379},
    "RTE": {"train.tsv": 2490, "dev.tsv": 277, "test.tsv": 3000},
    "WNLI": {"train.tsv": 635, "dev.tsv": 71, "test.tsv": 146},
    "QNLI": {"dev.tsv": 5463, "test.tsv": 5463},
    "MNLI": {"train.tsv": 48, "dev_matched.tsv": 48},
}
SPLITS = {"MNLI": {"train.tsv": "train", "dev_matched.tsv": "valid_m"}}
DEFAULT_SPLITS = {"train.tsv": "train", "dev.tsv": "valid_en", "test.tsv": "test_en"}
LABEL_COUNTS = {  # every labelled classification file, counted with cut -f<label column> | sort | uniq -c
    ("CoLA", "train.tsv"): {"0": 2528, "1": 6023},
    ("CoLA", "dev.tsv"): {"0": 322, "1": 721},
    ("SST-2", "train.tsv"): {"0": 29780, "1": 37569},
    ("SST-2", "dev.tsv"): {"0": 428, "1": 444},
    ("MRPC", "train.tsv"): {"0": 1194, "1": 2474},
    ("MRPC", "dev.tsv"): {"0": 129, "1": 279},
    ("RTE", "train.tsv"): {"entailment": 1249, "not_entailment": 1241},
    ("RTE", "dev.tsv"): {"entailment": 146, "not_entailment": 131},
    ("WNLI", "train.tsv"): {"0": 323, "1": 312},
    ("WNLI", "dev.tsv"): {"0": 40, "1": 31},
    ("QNLI", "dev.tsv"): {"entailment": 2702, "not_entailment": 2761},
    ("MNLI", "train.tsv"): {"contradiction": 16, "entailment": 16, "neutral": 16},
    ("MNLI", "dev_matched.tsv"): {"contradiction": 16, "entailment": 16, "neutral": 16},
}
FILES = [(folder, file) for folder, files in COUNTS.items() for file in files]


def split_name(folder, file):
    return SPLITS.get(folder, DEFAULT_SPLITS)[file]


@pytest.mark.parametrize("folder,file", FILES, ids=[f"{f}/{n}" for f, n in FILES])
def test_every_sample_file_is_read_whole(folder, file):
    task = glue_task(folder)
    test = file.startswith("test")
    rows = read_glue_file(GLUE_SAMPLE / folder / file, task, labels_required=not test)
    assert len(rows) == COUNTS[folder][file]
    assert len(rows.texts) == (1 if folder in ("CoLA", "SST-2") else 2)
    assert all(len(texts) == len(rows) and all(t and t == t.strip() for t in texts) for texts in rows.texts)
    assert rows.labelled == (not test)
    if test:
        assert all(math.isnan(x) for x in rows.labels) if task.regression else set(rows.labels) == {-1}
    elif task.regression:
        assert all(0 <= x <= 5 for x in rows.labels)
    else:
        # a class index outside the label list (a stray label read as -1 would name the last label) fails here
        assert all(0 <= i < len(task.labels) for i in rows.labels)
        assert Counter(task.labels[i] for i in rows.labels) == LABEL_COUNTS[(folder, file)]
    if test or folder in ("RTE", "WNLI", "QNLI", "STS-B", "MNLI"):  # files with an index column
        assert rows.index[0] == int((GLUE_SAMPLE / folder / file).read_text("utf-8").splitlines()[1].split("\t")[0])
    else:
        assert rows.index == list(range(len(rows)))  # no index column: the row number


def test_exact_fields():
    mrpc = glue_task("mrpc")
    train = read_glue_file(GLUE_SAMPLE / "MRPC" / "train.tsv", mrpc, labels_required=True)
    assert (
        train.texts[0][0]
        == 'Amrozi accused his brother , whom he called " the witness " , of deliberately distorting his evidence .'
    )
    assert (
        train.texts[1][0]
        == 'Referring to him as only " the witness " , Amrozi accused his brother of deliberately distorting his '
        "evidence ."
    )
    assert train.labels[0] == 1 and train.line_numbers[0] == 2  # after the header (with its BOM)
    dev = read_glue_file(GLUE_SAMPLE / "MRPC" / "dev.tsv", mrpc, labels_required=True)
    assert (
        dev.texts[1][0] == '" The foodservice pie business does not fit our long-term growth strategy .'
    )  # an opening quote
    assert not any("\ufeff" in t for texts in train.texts + dev.texts for t in texts)
    cola = glue_task("CoLA")
    cola_train = read_glue_file(GLUE_SAMPLE / "CoLA" / "train.tsv", cola, labels_required=True)
    assert cola_train.texts[0][0] == "Our friends won't buy this analysis, let alone the next one we propose."
    assert cola_train.line_numbers[0] == 1  # no header
    cola_dev = read_glue_file(GLUE_SAMPLE / "CoLA" / "dev.tsv", cola, labels_required=True)
    assert (
        cola_dev.texts[0][-1] == "John talked to Bill about himself." and cola_dev.line_numbers[-1] == 1043
    )  # no final newline
    cola_test = read_glue_file(GLUE_SAMPLE / "CoLA" / "test.tsv", cola, labels_required=False)
    assert cola_test.texts[0][0] == "Bill whistled past the house." and cola_test.index[-1] == 1062
    sst = read_glue_file(GLUE_SAMPLE / "SST-2" / "train.tsv", glue_task("SST-2"), labels_required=True)
    assert sst.texts[0][0] == "hide new secretions from the parental units"  # GLUE's trailing space dropped
    stsb = read_glue_file(GLUE_SAMPLE / "STS-B" / "train.tsv", glue_task("STS-B"), labels_required=True)
    assert stsb.texts[0][0] == "A plane is taking off." and stsb.texts[1][0] == "An air plane is taking off."
    assert stsb.labels[:3] == [5.0, 3.8, 3.8]
    rte_test = read_glue_file(GLUE_SAMPLE / "RTE" / "test.tsv", glue_task("RTE"), labels_required=False)
    assert rte_test.index == list(range(COUNTS["RTE"]["test.tsv"]))


@pytest.mark.parametrize(
    "name,folder",
    [
        ("QQP", "QQP"),
        ("mnli", "MNLI"),
        ("STS-B", "STS-B"),
        ("sts-b", "STS-B"),
        ("stsb", "STS-B"),
        ("SST-2", "SST-2"),
        ("sst2", "SST-2"),
        ("cola", "CoLA"),
        ("COLA", "CoLA"),
        ("Mrpc", "MRPC"),
        ("qnli", "QNLI"),
        ("rte", "RTE"),
        ("WNLI", "WNLI"),
    ],
)
def test_task_names_in_any_spelling(name, folder):
    assert glue_task(name).folder == folder


def test_layouts_not_in_the_sample(tmp_path):
    """MNLI's real dev (16 columns, five annotator labels) and QQP (``id`` column) are read by their column names."""
    mnli = tmp_path / "dev_mismatched.tsv"
    names = [
        "index",
        "promptID",
        "pairID",
        "genre",
        "sentence1_binary_parse",
        "sentence2_binary_parse",
        "sentence1_parse",
        "sentence2_parse",
        "sentence1",
        "sentence2",
        "label1",
        "label2",
        "label3",
        "label4",
        "label5",
        "gold_label",
    ]
    row = [
        "7",
        "1",
        "1e",
        "letters",
        "( a )",
        "( b )",
        "(ROOT a)",
        "(ROOT b)",
        'He said "yes".',
        "He agreed.",
        "entailment",
        "entailment",
        "neutral",
        "entailment",
        "entailment",
        "entailment",
    ]
    mnli.write_text("\t".join(names) + "\n" + "\t".join(row) + "\n", encoding="utf-8")
    rows = read_glue_file(mnli, glue_task("MNLI"), labels_required=True)
    assert (rows.texts[0], rows.texts[1], rows.labels, rows.index) == (['He said "yes".'], ["He agreed."], [1], [7])
    qqp = tmp_path / "test.tsv"
    qqp.write_text("id\tquestion1\tquestion2\n42\tHow?\tWhy?\n", encoding="utf-8")
    rows = read_glue_file(qqp, glue_task("QQP"), labels_required=False)
    assert (rows.texts, rows.labels, rows.index, rows.labelled) == ((["How?"], ["Why?"]), [-1], [42], False)


def test_mnli_files_and_split_names():
    files = find_glue_files(GLUE_SAMPLE / "MNLI", glue_task("MNLI"))
    assert {name: (language, path.name) for name, (language, path) in files.items()} == {
        "train": ("en", "train.tsv"),
        "valid_m": ("m", "dev_matched.tsv"),
    }


# --- the stored folders ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def glue_out(e5_dir, tmp_path_factory):
    """process.sh's command on the whole sample (ALL), in this process; returns <out>."""
    out = tmp_path_factory.mktemp("glue")
    assert preprocess_glue([str(GLUE_SAMPLE), "ALL", str(e5_dir), str(out)]) == 0
    return out


def stored(data_dir, field, split):
    return MMapIndexedDataset(str(data_dir / field / split))


def stored_sizes(data_dir, field, split):
    """Token counts of a stored split (copied: the dataset's own array lives in a file mapping closed with it)."""
    dataset = stored(data_dir, field, split)
    return np.array(dataset.sizes)


def test_all_writes_every_task_present(glue_out, e5_dir):
    assert sorted(p.name for p in glue_out.iterdir()) == sorted(COUNTS)  # QQP is absent from the sample
    for folder, files in COUNTS.items():
        meta = read_metadata(glue_out / folder)
        task = glue_task(folder)
        assert set(meta) == {
            "format_version",
            "task",
            "glue_task",
            "kind",
            "labels",
            "regression",
            "pair",
            "max_positions",
            "splits",
        }
        assert (meta["task"], meta["glue_task"], meta["kind"]) == (task.name, folder, "glue")
        assert meta["labels"] == list(task.labels) and meta["max_positions"] == 512
        assert {name: s["examples"] for name, s in meta["splits"].items()} == {
            split_name(folder, file): n for file, n in files.items()
        }
        for name, split in meta["splits"].items():
            assert set(split) == {"language", "source", "examples", "labelled", "truncated", "unk_pieces"}
            assert split["labelled"] == (not name.startswith("test_")) and split["truncated"] == 0
            assert len(np.load(glue_out / folder / "index" / f"{name}.npy")) == split["examples"]
            assert len(stored(glue_out / folder, "input0", name)) == split["examples"]
        for name in ("dict.txt", "sentencepiece.bpe.model"):
            assert (glue_out / folder / name).read_bytes() == (e5_dir / name).read_bytes()


def test_rte_pairs_labels_and_index(glue_out, e5_dir):
    data = glue_out / "RTE"
    meta = read_metadata(data)
    assert meta["pair"] and not meta["regression"] and meta["labels"] == ["entailment", "not_entailment"]
    assert [meta["splits"][s]["language"] for s in ("train", "valid_en", "test_en")] == ["en"] * 3
    train = np.load(data / "label" / "train.npy")
    assert train.dtype == np.int64
    counts = LABEL_COUNTS[("RTE", "train.tsv")]
    assert Counter(train.tolist()) == {i: counts[name] for i, name in enumerate(meta["labels"])}
    test = np.load(data / "label" / "test_en.npy")
    assert test.dtype == np.int64 and (test == -1).all()
    assert np.load(data / "index" / "test_en.npy").tolist() == list(range(COUNTS["RTE"]["test.tsv"]))
    encoder = load_encoder(e5_dir / "dict.txt", e5_dir / "sentencepiece.bpe.model")  # the one the command used
    rows = read_glue_file(GLUE_SAMPLE / "RTE" / "dev.tsv", glue_task("RTE"), labels_required=True)
    for field, texts in zip(("input0", "input1"), rows.texts):
        ids = stored(data, field, "valid_en")
        assert [ids[i].tolist() for i in (0, len(rows) - 1)] == [
            e.tolist() for e in encoder.encode([texts[0], texts[-1]])
        ]


def test_stsb_is_stored_as_regression(glue_out):
    data = glue_out / "STS-B"
    meta = read_metadata(data)
    assert meta["regression"] and meta["labels"] == [] and meta["pair"]
    rows = read_glue_file(GLUE_SAMPLE / "STS-B" / "dev.tsv", glue_task("STS-B"), labels_required=True)
    dev = np.load(data / "label" / "valid_en.npy")
    assert dev.dtype == np.float32 and np.allclose(dev, rows.labels) and dev.min() >= 0 and dev.max() <= 5
    test = np.load(data / "label" / "test_en.npy")
    assert test.dtype == np.float32 and np.isnan(test).all() and not meta["splits"]["test_en"]["labelled"]
    assert np.load(data / "index" / "test_en.npy").tolist() == list(range(COUNTS["STS-B"]["test.tsv"]))


def test_single_sentence_tasks_have_no_second_input(glue_out):
    for folder in ("CoLA", "SST-2"):
        meta = read_metadata(glue_out / folder)
        assert not meta["pair"] and not (glue_out / folder / "input1").exists()
    assert np.load(glue_out / "CoLA" / "index" / "test_en.npy").tolist() == list(range(COUNTS["CoLA"]["test.tsv"]))
    rows = COUNTS["CoLA"]["train.tsv"]
    assert np.load(glue_out / "CoLA" / "index" / "train.npy").tolist() == list(range(rows))  # row numbers


def test_mnli_and_evaluation_only_qnli(glue_out):
    mnli = read_metadata(glue_out / "MNLI")
    assert sorted(mnli["splits"]) == ["train", "valid_m"] and mnli["splits"]["valid_m"]["language"] == "m"
    assert mnli["labels"] == ["contradiction", "entailment", "neutral"]
    assert Counter(np.load(glue_out / "MNLI" / "label" / "valid_m.npy").tolist()) == {
        i: LABEL_COUNTS[("MNLI", "dev_matched.tsv")][name] for i, name in enumerate(mnli["labels"])
    }
    qnli = read_metadata(glue_out / "QNLI")
    assert sorted(qnli["splits"]) == ["test_en", "valid_en"]  # no train.tsv: evaluation only
    assert np.load(glue_out / "QNLI" / "index" / "test_en.npy").tolist() == list(range(COUNTS["QNLI"]["test.tsv"]))


def test_truncation_is_counted(glue_out, e5_dir, tmp_path):
    max_len = 24
    for folder, special in (("RTE", 4), ("CoLA", 2)):
        assert (
            preprocess_glue(
                [str(GLUE_SAMPLE), folder.lower(), str(e5_dir), str(tmp_path), "--max-positions", str(max_len)]
            )
            == 0
        )
        meta = read_metadata(tmp_path / folder)
        assert meta["max_positions"] == max_len
        for name, split in meta["splits"].items():
            fields = ("input0", "input1") if special == 4 else ("input0",)
            full = sum(stored_sizes(glue_out / folder, f, name) for f in fields) + special
            cut = sum(stored_sizes(tmp_path / folder, f, name) for f in fields) + special
            assert (cut == np.minimum(full, max_len)).all()
            assert split["truncated"] == int((full > max_len).sum()) > 0  # counted, nothing dropped
            assert split["examples"] == len(full)


def test_process_sh_with_an_amos_model_folder(glue_out, e5_dir, tmp_path):
    """process.sh itself, with AMOS's spelling of the task and a model folder whose sentencepiece model is sp.model."""
    model = tmp_path / "amos-model"
    model.mkdir()
    (model / "dict.txt").symlink_to(e5_dir / "dict.txt")
    (model / "sp.model").symlink_to(e5_dir / "sentencepiece.bpe.model")
    result = run(["bash", "preprocess/glue/process.sh", GLUE_SAMPLE, "wnli", model, tmp_path / "out", "MAX_LEN=512"])
    assert f"wrote {tmp_path / 'out' / 'WNLI'}" in result.stdout
    out = tmp_path / "out" / "WNLI"
    assert (out / "sentencepiece.bpe.model").read_bytes() == (e5_dir / "sentencepiece.bpe.model").read_bytes()
    ours, reference = read_metadata(out), read_metadata(glue_out / "WNLI")
    assert ours == reference
    for name in ours["splits"]:
        for part in ("input0/{}.bin", "input1/{}.bin", "label/{}.npy", "index/{}.npy"):
            assert (out / part.format(name)).read_bytes() == (glue_out / "WNLI" / part.format(name)).read_bytes()


def qqp_download(folder, malformed: bool):
    """A QQP folder in QQP's layout (``id qid1 qid2 question1 question2 is_duplicate``) made of real MRPC training
    pairs (the sample has no QQP); ``malformed``: train row 5's first text holds a line break, which splits the row
    in two lines of 4 and 3 columns (as in QQP's own train.tsv), and row 9's second text is empty."""
    pairs = read_glue_file(GLUE_SAMPLE / "MRPC" / "train.tsv", glue_task("MRPC"), labels_required=True)
    (folder / "QQP").mkdir(parents=True)

    def rows(begin, end):
        return [
            [str(i), str(2 * i + 1), str(2 * i + 2), pairs.texts[0][i], pairs.texts[1][i], str(pairs.labels[i])]
            for i in range(begin, end)
        ]

    train, dev = rows(0, 20), rows(20, 30)
    lines = ["\t".join(row) for row in train]
    if malformed:
        words = train[5][3].split(" ")
        cut = len(words) // 2
        lines[5] = (
            "\t".join(train[5][:3] + [" ".join(words[:cut])]) + "\n" + "\t".join([" ".join(words[cut:])] + train[5][4:])
        )
        lines[9] = "\t".join(train[9][:4] + ["", train[9][5]])
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    (folder / "QQP" / "train.tsv").write_text(header + "".join(line + "\n" for line in lines), encoding="utf-8")
    (folder / "QQP" / "dev.tsv").write_text(header + "".join("\t".join(row) + "\n" for row in dev), encoding="utf-8")
    test = [[str(i), pairs.texts[0][i], pairs.texts[1][i]] for i in range(30, 36)]
    (folder / "QQP" / "test.tsv").write_text(
        "id\tquestion1\tquestion2\n" + "".join("\t".join(r) + "\n" for r in test), encoding="utf-8"
    )
    return folder


def test_malformed_qqp_lines_are_refused_or_dropped_and_counted(e5_dir, tmp_path):
    download = qqp_download(tmp_path / "glue", malformed=True)
    train = download / "QQP" / "train.tsv"
    refused = run(["bash", "preprocess/glue/process.sh", download, "QQP", e5_dir, tmp_path / "out"], check=False)
    assert refused.returncode == 2 and f"{train}:7: 4 tab-separated columns, the header has 6" in refused.stderr
    assert not (tmp_path / "out" / "QQP").exists()
    result = run(["bash", "preprocess/glue/process.sh", download, "QQP", e5_dir, tmp_path / "out", "DROP_MALFORMED=1"])
    # lines 7 and 8 (the split row 5) and 12 (row 9, an empty question2): header first, row i on line i + 2
    assert f"{train}: 3 malformed lines dropped (DROP_MALFORMED=1): lines 7, 8, 12" in result.stderr
    meta = read_metadata(tmp_path / "out" / "QQP")
    assert {name: (s["examples"], s.get("malformed_dropped")) for name, s in meta["splits"].items()} == {
        "train": (18, 3),
        "valid_en": (10, 0),
        "test_en": (6, None),
    }  # test files are never dropped from
    kept = [i for i in range(20) if i not in (5, 9)]
    assert np.load(tmp_path / "out" / "QQP" / "index" / "train.npy").tolist() == kept  # QQP's id column
    pairs = read_glue_file(GLUE_SAMPLE / "MRPC" / "train.tsv", glue_task("MRPC"), labels_required=True)
    assert np.load(tmp_path / "out" / "QQP" / "label" / "train.npy").tolist() == [pairs.labels[i] for i in kept]
    # the same folder without malformed lines: the same stored rows as the folder whose bad lines were dropped,
    # and without the setting no malformed_dropped key (the fingerprint of existing folders is unchanged)
    clean = qqp_download(tmp_path / "clean", malformed=False)
    run(["bash", "preprocess/glue/process.sh", clean, "QQP", e5_dir, tmp_path / "clean-out"])
    assert "malformed_dropped" not in read_metadata(tmp_path / "clean-out" / "QQP")["splits"]["train"]
    dropped = stored(tmp_path / "out" / "QQP", "input0", "train")
    whole = stored(tmp_path / "clean-out" / "QQP", "input0", "train")
    assert [dropped[k].tolist() for k in range(18)] == [whole[i].tolist() for i in kept]
