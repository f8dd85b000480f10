"""A corpus of broken and awkward inputs, each run through the command a user types (preprocessing, training,
evaluation): every case ends either in a correct output (checked) or in exit status 2 and an error that names
the file, the line where there is one, and the reason, and a failed run leaves no output behind. Files given where
a checkpoint is expected are here too: another kind of file, another task's, labels' or vocabulary's checkpoint."""

import json
import re
import shutil
import sys
import zipfile

import numpy as np
import pytest
import torch
from conftest import read_metadata, run, shrink_filesystem, small_filesystem, tree_digest

from stabletune_fairseq.cli.preprocess import main as preprocess_command
from stabletune_fairseq.data.augment.code_switch import read_muse_dictionary
from stabletune_fairseq.data.errors import InputFormatError

LONG = " ".join(["word"] * 10_000)  # a 10,000-word sentence
EMOJI_RTL_ZWJ = "The 😀 said مرحبا بالعالم to क\u200dष"

XNLI = {
    "xnli/train-en.tsv": "A man sleeps.\tA person rests.\tentailment\nA dog runs.\tA cat sleeps.\tcontradiction\n"
    "Kids play.\tThey are outside.\tneutral\n",
    "xnli/dev-de.tsv": "Ein Mann schläft.\tEine Person ruht.\tentailment\n"
    "Ein Hund rennt.\tEine Katze schläft.\tcontradiction\n",
    "xnli/test-de.tsv": "Ein Mann schläft.\tEine Person ruht.\nKinder spielen.\tSie sind draußen.\n",
}
PANX = {
    "panx/train-en.tsv": "John\tB-PER\nlives\tO\nin\tO\nParis\tB-LOC\n\nBMW\tB-ORG\nwins\tO\n",
    "panx/dev-de.tsv": "Anna\tB-PER\nwohnt\tO\nin\tO\nBerlin\tB-LOC\n\nBMW\tB-ORG\ngewinnt\tO\n",
    "panx/test-de.tsv": "Anna\nwohnt\nin\nBerlin\n",
}


def squad(questions, context="Paris is the capital of France. It lies on the Seine.", version="1.1"):
    """A SQuAD-format file of one paragraph; ``questions``: (id, question, answer text, answer_start), a
    question None leaves its key out."""
    qas = [
        {"id": qid, "question": q, "answers": [{"text": text, "answer_start": start}]}
        for qid, q, text, start in questions
    ]
    for qa in qas:
        if qa["question"] is None:
            del qa["question"]
    return json.dumps(
        {"version": version, "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]},
        ensure_ascii=False,
        indent=1,
    )


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    position = -1
    for _ in range(occurrence):
        position = text.index(needle, position + 1)
    return text.count("\n", 0, position) + 1


QUESTION_MISSING = squad([("t1", "Q?", "Paris", 0), ("t2", None, "Seine", 47)])
OFFSET_OUTSIDE = squad([("t1", "Q?", "Paris", 500)])
DUPLICATE_ID = squad([("d1", "A?", "Paris", 0), ("d1", "B?", "Paris", 0)])
UNANSWERABLE = json.dumps(
    {
        "version": "v2.0",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "Paris is the capital of France.",
                        "qas": [
                            {
                                "id": "a",
                                "question": "Capital?",
                                "answers": [{"text": "Paris", "answer_start": 0}],
                                "is_impossible": False,
                            },
                            {"id": "b", "question": "Moon?", "answers": [], "is_impossible": True},
                        ],
                    }
                ],
            }
        ],
    }
)
XQUAD = {
    "squad/train-v1.1.json": squad(
        [("t1", "What is the capital of France?", "Paris", 0), ("t2", "On which river does it lie?", "Seine", 47)]
    ),
    "xquad/xquad.de.json": squad(
        [("d1", "Was ist die Hauptstadt?", "Paris", 0)], context="Paris ist die Hauptstadt von Frankreich."
    ),
}


def with_change(base, path, text=None, raw=None):
    files = {k: v.encode("utf-8") if isinstance(v, str) else v for k, v in base.items()}
    if text is None and raw is None:
        files.pop(path)
    else:
        files[path] = raw if raw is not None else text.encode("utf-8")
    return files


# name -> (files, task, ("error", file, line, reason))

CASES = {
    "xnli wrong column count": (
        with_change(XNLI, "xnli/train-en.tsv", XNLI["xnli/train-en.tsv"] + "Only two\tcolumns\n"),
        "xnli",
        ("error", "xnli/train-en.tsv", 4, "2 tab-separated columns"),
    ),
    "xnli unknown label": (
        with_change(XNLI, "xnli/dev-de.tsv", "Ein Satz.\tNoch einer.\tmaybe\n"),
        "xnli",
        ("error", "xnli/dev-de.tsv", 1, "unknown label 'maybe'"),
    ),
    "xnli empty text": (
        with_change(XNLI, "xnli/dev-de.tsv", "Ein Satz.\t\tentailment\n"),
        "xnli",
        ("error", "xnli/dev-de.tsv", 1, "empty text_b"),
    ),
    "xnli whitespace-only text": (
        with_change(XNLI, "xnli/dev-de.tsv", "   \tNoch einer.\tentailment\n"),
        "xnli",
        ("error", "xnli/dev-de.tsv", 1, "empty text_a"),
    ),
    "xnli empty line": (
        with_change(XNLI, "xnli/dev-de.tsv", "Ein Satz.\tNoch einer.\tentailment\n\nA\tB\tneutral\n"),
        "xnli",
        ("error", "xnli/dev-de.tsv", 2, "empty line"),
    ),
    "xnli non-UTF-8 bytes": (
        with_change(XNLI, "xnli/dev-de.tsv", raw=b"Ein Satz.\tNoch einer.\tentailment\nM\xfcll.\tA\tneutral\n"),
        "xnli",
        ("error", "xnli/dev-de.tsv", 2, "not valid UTF-8"),
    ),
    "xnli missing training file": (
        with_change(XNLI, "xnli/train-en.tsv"),
        "xnli",
        ("error", "xnli/train-en.tsv", None, "file not found"),
    ),
    "xnli missing dev files": (
        with_change(with_change(XNLI, "xnli/dev-de.tsv"), "xnli/test-de.tsv"),
        "xnli",
        ("error", "xnli", None, "no dev-<lang>.tsv file"),
    ),
    "xnli empty file": (
        with_change(XNLI, "xnli/dev-de.tsv", ""),
        "xnli",
        ("error", "xnli/dev-de.tsv", None, "empty file"),
    ),
    "panx tag line missing": (
        with_change(PANX, "panx/dev-de.tsv", "Anna\tB-PER\nwohnt\nin\tO\n"),
        "panx",
        ("error", "panx/dev-de.tsv", 2, "missing tag column"),
    ),
    "panx empty tag": (
        with_change(PANX, "panx/train-en.tsv", "John\tB-PER\nlives\t\n"),
        "panx",
        ("error", "panx/train-en.tsv", 2, "empty tag"),
    ),
    "panx non-UTF-8": (
        with_change(PANX, "panx/test-de.tsv", raw=b"Anna\nw\xc3\n"),
        "panx",
        ("error", "panx/test-de.tsv", 2, "not valid UTF-8"),
    ),
    "squad invalid JSON": (
        with_change(XQUAD, "squad/train-v1.1.json", '{"data": [\n {"paragraphs": [}\n]}'),
        "xquad",
        ("error", "squad/train-v1.1.json", 2, "invalid JSON"),
    ),
    "squad not SQuAD format": (
        with_change(XQUAD, "squad/train-v1.1.json", "[1, 2]"),
        "xquad",
        ("error", "squad/train-v1.1.json", None, "not SQuAD format"),
    ),
    "squad question missing": (
        with_change(XQUAD, "squad/train-v1.1.json", squad([("t1", "Q?", "Paris", 0), ("t2", None, "Seine", 47)])),
        "xquad",
        ("error", "squad/train-v1.1.json", line_of(QUESTION_MISSING, '"t2"'), 'missing "question"'),
    ),
    "squad answer offset outside the context": (
        with_change(XQUAD, "squad/train-v1.1.json", OFFSET_OUTSIDE),
        "xquad",
        ("error", "squad/train-v1.1.json", line_of(OFFSET_OUTSIDE, '"t1"'), "outside the context"),
    ),
    "xquad duplicate id": (
        with_change(XQUAD, "xquad/xquad.de.json", DUPLICATE_ID),
        "xquad",  # the second use is named
        ("error", "xquad/xquad.de.json", line_of(DUPLICATE_ID, '"d1"', 2), "occurs twice"),
    ),
    "xquad non-UTF-8": (
        with_change(XQUAD, "xquad/xquad.de.json", raw=b'{"data": "M\xfcll"}'),
        "xquad",
        ("error", "xquad/xquad.de.json", None, "not UTF-8"),
    ),
    "xquad no dev file": (
        with_change(XQUAD, "xquad/xquad.de.json"),
        "xquad",
        ("error", "xquad", None, "no xquad dev or test file"),
    ),
}


def check_bom_crlf(out, meta):
    words = [json.loads(line) for line in (out / "words" / "valid_de.jsonl").read_text(encoding="utf-8").splitlines()]
    assert words[0][0] == "Anna" and not any("\r" in w or "\ufeff" in w for s in words for w in s)


def check_long_xnli(out, meta):
    assert meta["splits"]["valid_de"]["truncated"] == 1  # cut to the model's length, and counted


def check_long_tagging(out, meta):
    assert meta["splits"]["valid_de"]["words"] == 10_000 + 2 and meta["splits"]["valid_de"]["long_sentences"] == 1


def check_unseen_tag(out, meta):
    assert meta["splits"]["valid_de"]["unseen_tags"] == {"B-MISC": 1} and meta["unseen_labels"] == ["B-MISC"]


def stored_text(out, field: str, split: str, row: int) -> str:
    """Row ``row`` of a stored sentence split, decoded from its pieces (the dictionary's piece strings)."""
    from fairseq.data import data_utils

    from stabletune_fairseq.data.encoding import load_xlmr_dictionary

    dictionary = load_xlmr_dictionary(str(out / "dict.txt"))
    ids = data_utils.load_indexed_dataset(str(out / field / split), dictionary)[row].tolist()
    return "".join(dictionary[i] for i in ids if i != dictionary.eos()).replace("\u2581", " ").strip()


def check_scripts(out, meta):
    assert meta["splits"]["valid_de"]["examples"] == 2
    assert meta["splits"]["valid_de"]["unk_pieces"] >= 1  # the ZWJ has no piece of its own: counted as <unk>
    # every other character survives: emoji, Arabic in reading order, Devanagari around the joiner
    assert stored_text(out, "input0", "valid_de", 0) == EMOJI_RTL_ZWJ.replace("\u200d", "<unk>")
    assert stored_text(out, "input1", "valid_de", 0) == "مرحبا"


def check_xnli_bom_crlf(out, meta):
    assert meta["splits"]["train"]["examples"] == 3 and meta["splits"]["valid_de"]["examples"] == 2
    first_premise, first_hypothesis = XNLI["xnli/train-en.tsv"].splitlines()[0].split("\t")[:2]
    assert stored_text(out, "input0", "train", 0) == first_premise  # no BOM left in front of the first word
    assert stored_text(out, "input1", "train", 0) == first_hypothesis  # no \r left at the end of the line
    assert stored_text(out, "input1", "train", 2) == XNLI["xnli/train-en.tsv"].splitlines()[2].split("\t")[1]


def check_realigned_and_unmatched(out, meta):
    train = meta["splits"]["train"]
    assert train["examples"] == 2 and train["answers_realigned"] == 1 and train["answers_unmatched"] == 1
    answers = np.load(out / "answers" / "train.npy").tolist()
    assert answers[1] == [-1, -1]  # unmatched: kept for scoring, not trained on
    # realigned: the first and last answer pieces cut "Paris" out of the context (question 1 comes first)
    context = json.loads((out / "examples" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])["context"]
    spans = np.load(out / "char_spans" / "train.npy")
    start, end = answers[0]
    assert context[spans[start][0] : spans[end][1]] == "Paris"


def check_unanswerable(out, meta):
    assert meta["splits"]["train"]["unanswerable"] == 1
    assert np.load(out / "answers" / "train.npy").tolist() == [[0, 0], [-2, -2]]  # trained to point at <s>


def check_evaluation_only(out, meta):
    assert sorted(meta["splits"]) == ["valid_de"] and meta["splits"]["valid_de"]["examples"] == 1


OK_CASES = {
    "squad answer offsets off or wrong": (
        with_change(
            XQUAD, "squad/train-v1.1.json", squad([("t1", "Capital?", "Paris", 2), ("t2", "River?", "Danube", 47)])
        ),
        "xquad",
        check_realigned_and_unmatched,
    ),
    "xquad without a training file": (with_change(XQUAD, "squad/train-v1.1.json"), "xquad", check_evaluation_only),
    "squad v2.0 unanswerable question": (
        with_change(XQUAD, "squad/train-v1.1.json", UNANSWERABLE),
        "xquad",
        check_unanswerable,
    ),
    "panx BOM and CRLF": (
        with_change(PANX, "panx/dev-de.tsv", raw=b"\xef\xbb\xbfAnna\tB-PER\r\nwohnt\tO\r\n\r\n"),
        "panx",
        check_bom_crlf,
    ),
    "xnli BOM and CRLF": (
        with_change(
            XNLI, "xnli/train-en.tsv", raw=b"\xef\xbb\xbf" + XNLI["xnli/train-en.tsv"].replace("\n", "\r\n").encode()
        ),
        "xnli",
        check_xnli_bom_crlf,
    ),
    "xnli 10,000-word sentence": (
        with_change(XNLI, "xnli/dev-de.tsv", f"{LONG}\tkurz.\tentailment\nA\tB\tneutral\n"),
        "xnli",
        check_long_xnli,
    ),
    "panx 10,000-word sentence": (
        with_change(PANX, "panx/dev-de.tsv", "".join(w + "\tO\n" for w in LONG.split()) + "\nA\tO\nB\tO\n"),
        "panx",
        check_long_tagging,
    ),
    "panx unseen dev tag": (
        with_change(PANX, "panx/dev-de.tsv", "Anna\tB-PER\nEM\tB-MISC\n"),
        "panx",
        check_unseen_tag,
    ),
    "xnli emoji, right-to-left, zero-width joiner": (
        with_change(XNLI, "xnli/dev-de.tsv", f"{EMOJI_RTL_ZWJ}\tمرحبا\tentailment\nA\tB\tneutral\n"),
        "xnli",
        check_scripts,
    ),
}


def build(tmp_path, files):
    root = tmp_path / "download"
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for folder in ("xnli", "panx", "xquad"):
        (root / folder).mkdir(exist_ok=True)
    return root


def preprocess(root, task, e5_dir, out, capsys) -> tuple[int, str]:
    """The preprocessing command process.sh execs (``stabletune_fairseq.cli.preprocess``), run in this
    process: a fresh Python with fairseq per case was most of these tests' time. process.sh itself runs in
    the two tests below and in every fixture; the exit status and the error line are the command's own."""
    capsys.readouterr()
    status = preprocess_command([str(root), task, str(e5_dir), str(out)])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_input_fails_with_file_line_and_reason(name, e5_dir, tmp_path, capsys):
    files, task, (_, where, line, reason) = CASES[name]
    root = build(tmp_path, files)
    status, stderr = preprocess(root, task, e5_dir, tmp_path / "out", capsys)
    assert status == 2
    location = f"{root / where}:{line}:" if line is not None else f"{root / where}:"
    assert location in stderr and reason in stderr, stderr[-2000:]
    assert not (tmp_path / "out" / task).exists()
    assert not list((tmp_path / "out").glob(".*partial*"))  # nothing half-written left behind


@pytest.mark.parametrize("name", sorted(OK_CASES))
def test_awkward_input_gives_a_correct_output(name, e5_dir, tmp_path, capsys):
    files, task, check = OK_CASES[name]
    root = build(tmp_path, files)
    status, stderr = preprocess(root, task, e5_dir, tmp_path / "out", capsys)
    assert status == 0, stderr[-2000:]
    check(tmp_path / "out" / task, read_metadata(tmp_path / "out" / task))


def test_a_failed_rerun_never_touches_a_completed_output(e5_dir, tmp_path):
    good = build(tmp_path / "good", {k: v.encode() for k, v in PANX.items()})
    run(["bash", "preprocess/xtreme/process.sh", good, "panx", e5_dir, tmp_path / "out"])
    before = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    bad = build(tmp_path / "bad", CASES["panx tag line missing"][0])
    assert (
        run(["bash", "preprocess/xtreme/process.sh", bad, "panx", e5_dir, tmp_path / "out"], check=False).returncode
        == 2
    )
    after = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before


def test_translations_matching_no_training_row_are_reported(e5_dir, tmp_path):
    root = build(tmp_path, {k: v.encode() for k, v in XNLI.items()})
    folder = root / "translations" / "XNLI" / "translate-train"
    folder.mkdir(parents=True)
    folder.joinpath("en-de-translated.tsv").write_text(
        "A man sleeps.\tA person rests.\tEin Mann schläft.\tEine Person ruht.\tentailment\n"
        "Not in training.\tNowhere.\tNicht im Training.\tNirgends.\tneutral\n",
        encoding="utf-8",
    )
    run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            root,
            "xnli",
            e5_dir,
            tmp_path / "out",
            f"TRANSLATIONS={root / 'translations'}",
        ]
    )
    meta = read_metadata(tmp_path / "out" / "xnli")
    assert meta["translations"]["de"]["pairs"] == 1 and meta["translations"]["de"]["unmatched"] == 1
    report = (tmp_path / "out" / "xnli" / "translation" / "unmatched_de.tsv").read_text(encoding="utf-8")
    assert f"{folder / 'en-de-translated.tsv'}:2" in report


def test_a_dictionary_line_without_a_translation_names_its_line(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("house\tHaus\nlonely\n", encoding="utf-8")
    with pytest.raises(InputFormatError) as err:
        read_muse_dictionary(path, one_word_only=True)
    assert err.value.line == 2 and str(path) in str(err.value)


@pytest.mark.parametrize("content", [b"garbage\n", b"PK\x03\x04 a zip cut short", b"\x80\x02 a pickle cut short"])
def test_a_file_that_is_no_checkpoint_is_one_clear_line(content, e5_dir, toy_data, tmp_path):
    """Given as the pretrained model to the recipe, or to the evaluation: exit status 2 and the file named."""
    bad = tmp_path / "model.pt"
    bad.write_bytes(content)
    recipe = run(["bash", "run_scripts/run_xtreme.sh", "XNLI", bad, toy_data, tmp_path / "run"], check=False)
    assert (
        recipe.returncode == 2
        and f"error: pretrained model {bad}: not a" in recipe.stderr
        and "Traceback" not in recipe.stderr
    )
    evaluation = run(
        [
            sys.executable,
            "-m",
            "stabletune_fairseq.cli.evaluate",
            "--checkpoint",
            bad,
            "--data",
            toy_data,
            "--split",
            "valid",
            "--out",
            tmp_path / "eval",
        ],
        check=False,
    )
    assert evaluation.returncode == 2 and f"{bad}: not a" in evaluation.stderr and "Traceback" not in evaluation.stderr


def test_a_full_disk_while_preprocessing_keeps_the_previous_output(toy_xtreme, e5_dir, tmp_path):
    process = ["bash", "preprocess/xtreme/process.sh", toy_xtreme, "xnli", e5_dir]
    with small_filesystem(tmp_path / "disk", 64) as disk:
        run([*process, disk / "out"])
        before = tree_digest(disk / "out" / "xnli")
        shrink_filesystem(disk, 512)  # half a MB left: the new copy cannot be written
        result = run([*process, disk / "out"], check=False)
        assert result.returncode == 1, result.stderr[-2000:]
        assert re.search(
            rf"error: no space left on the device of {disk / 'out'} while writing xnli \(\d+ MB free\): "
            rf"the previous {disk / 'out' / 'xnli'} is intact",
            result.stderr,
        ), result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert tree_digest(disk / "out" / "xnli") == before
        assert [p.name for p in (disk / "out").iterdir()] == ["xnli"]  # the partial copy is gone
        assert (disk / "out" / "xnli").stat().st_mode & 0o055 == 0o055  # readable by the machine's other users


# --- files given where a checkpoint is expected ---------------------------------------------------------------


def hf_folder(path):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))
    torch.save({"roberta.embeddings.word_embeddings.weight": torch.zeros(4, 2)}, path / "pytorch_model.bin")
    return path


def hf_state_dict(path):
    torch.save({"roberta.embeddings.word_embeddings.weight": torch.zeros(4, 2)}, path)
    return path


def zip_of_other_files(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not weights")
    return path


def folder_of_checkpoints(path):
    """A save dir given where a checkpoint file is expected (docs/reliability.md: "name one")."""
    path.mkdir()
    for name in ("checkpoint_1_2.pt", "checkpoint_best.pt", "checkpoint_last.pt"):
        torch.save({"model": {}}, path / name)
    return path


def torch_file_without_model(path):
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, path)
    return path


NOT_FAIRSEQ = {  # maker -> what the message must say the file is ({path}: the path given)
    "hf_folder": (hf_folder, "a Hugging Face model folder, not a fairseq checkpoint file"),
    "hf_state_dict": (
        hf_state_dict,
        "a Hugging Face state dict (keys like 'roberta.embeddings.word_embeddings.weight')",
    ),
    "zip_of_other_files": (zip_of_other_files, "not a torch checkpoint: a zip archive of other files (e.g. notes.txt)"),
    "folder_of_checkpoints": (
        folder_of_checkpoints,
        "a folder of checkpoints, not a checkpoint file: name one, e.g. {path}/checkpoint_best.pt",
    ),
    "torch_file_without_model": (
        torch_file_without_model,
        "a torch file, but not a fairseq checkpoint (no 'model' entry; it holds epoch, state_dict)",
    ),
    "missing": (lambda path: path, "no such file"),
}


@pytest.mark.parametrize("kind", sorted(NOT_FAIRSEQ))
def test_a_path_that_is_no_fairseq_checkpoint_says_what_it_is(kind, e5_dir, toy_data, tmp_path, capsys):
    """Given as the pretrained model to the recipe, or to the evaluation command (in-process: the subprocess start
    with fairseq's import costs seconds per case; the test above runs the console command)."""
    from stabletune_fairseq.cli.evaluate import main as evaluate_command

    make, said = NOT_FAIRSEQ[kind]
    path = make(tmp_path / "model.pt")
    said = said.format(path=path)
    recipe = run(["bash", "run_scripts/run_xtreme.sh", "XNLI", path, toy_data, tmp_path / "run"], check=False)
    if kind == "missing":  # the recipe checks that one itself
        assert recipe.returncode == 2 and f"pretrained model '{path}' not found" in recipe.stderr
    else:
        assert recipe.returncode == 2 and f"error: pretrained model {path}: {said}" in recipe.stderr, recipe.stderr
    capsys.readouterr()
    status = evaluate_command(
        ["--checkpoint", str(path), "--data", str(toy_data), "--split", "valid", "--out", str(tmp_path / "eval")]
    )
    evaluation = capsys.readouterr().err
    assert status == 2 and f"stabletune-evaluate: checkpoint {path}: {said}" in evaluation
    assert "Traceback" not in recipe.stderr + evaluation


def test_a_pretrained_model_of_another_vocabulary_is_refused(e5_dir, toy_data, tmp_path):
    data = tmp_path / "xnli"
    shutil.copytree(toy_data, data)
    with open(data / "dict.txt", "a", encoding="utf-8") as handle:
        handle.write("extra-token 1\n")  # as if preprocessed with another model's dictionary
    recipe = run(
        ["bash", "run_scripts/run_xtreme.sh", "XNLI", e5_dir / "model.pt", data, tmp_path / "run"], check=False
    )
    assert recipe.returncode == 2
    assert (
        f"error: pretrained model {e5_dir / 'model.pt'}: a vocabulary of 250002 tokens, but the data was "
        f"preprocessed with another dictionary ({data / 'dict.txt'}: 250003 tokens)"
    ) in recipe.stderr


@pytest.fixture(scope="module")
def xnli_checkpoint(e5_dir, toy_data, tmp_path_factory):
    """A real fine-tuned XNLI checkpoint (two updates)."""
    save_dir = tmp_path_factory.mktemp("xnli-run")
    run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            save_dir,
            "MAX_UPDATE=2",
            "BSZ=8",
            "FREEZE_EMBEDDINGS=1",
            "VALID_LANGS=de",
        ]
    )
    return save_dir / "checkpoint_last.pt"


def evaluate(checkpoint, data, out):
    return run(
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
        ],
        check=False,
    )


def test_checkpoints_record_what_they_were_trained_on(xnli_checkpoint, toy_data):
    record = torch.load(xnli_checkpoint, map_location="cpu", weights_only=True, mmap=True)["extra_state"][
        "stabletune_run"
    ]
    assert record["task"] == "xnli" and record["labels"] == read_metadata(toy_data)["labels"]
    assert record["data"] == str(toy_data) and len(record["fingerprint"]) == len(record["vocabulary"]) == 16


def test_evaluating_another_tasks_data_is_refused(xnli_checkpoint, toy_panx, tmp_path):
    result = evaluate(xnli_checkpoint, toy_panx, tmp_path / "eval")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        f"checkpoint {xnli_checkpoint}: fine-tuned on xnli (3 labels: contradiction, entailment, neutral), but "
        f"{toy_panx} holds panx (7 labels: "
    ) in result.stderr


def test_the_same_task_with_other_labels_is_refused(xnli_checkpoint, toy_data, tmp_path):
    """Same task, same number of labels, another order: the shapes agree, the scores would be garbage."""
    data = tmp_path / "xnli"
    shutil.copytree(toy_data, data)
    meta = read_metadata(data)
    meta["labels"] = list(reversed(meta["labels"]))
    (data / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    result = evaluate(xnli_checkpoint, data, tmp_path / "eval")
    assert result.returncode == 2 and "its outputs would be read as other labels" in result.stderr
    assert "3 labels: neutral, entailment, contradiction" in result.stderr


def test_other_data_of_the_same_task_is_scored_with_a_warning(xnli_checkpoint, toy_data, tmp_path):
    """(The same data gives "same data": test_train_xnli's evaluation test.)"""
    data = tmp_path / "xnli"
    shutil.copytree(toy_data, data)
    meta = read_metadata(data)
    meta["splits"] = {name: split for name, split in meta["splits"].items() if name in ("train", "valid_de")}
    (data / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")  # other splits: other data
    result = evaluate(xnli_checkpoint, data, tmp_path / "eval")
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert f"was trained on {toy_data}" in results["data_check"]
    assert "other data of the same task and labels" in results["data_check"] and list(results["per_language"]) == ["de"]


def test_a_checkpoint_without_a_record_is_checked_by_its_head(xnli_checkpoint, toy_panx, tmp_path):
    """Written by an older version or plain fairseq: no record, but the head must fit the data."""
    state = torch.load(xnli_checkpoint, map_location="cpu", weights_only=True, mmap=True)
    del state["extra_state"]["stabletune_run"]
    state.pop("last_optimizer_state", None)
    old = tmp_path / "old.pt"
    torch.save(state, old)
    result = evaluate(old, toy_panx, tmp_path / "eval")
    assert result.returncode == 2
    assert (
        f"checkpoint {old}: has no 'tags' head (heads: sentence): a checkpoint of another task family" in result.stderr
    )


def test_resuming_or_teaching_from_another_tasks_checkpoint_is_refused(
    xnli_checkpoint, e5_dir, toy_data, toy_panx, tmp_path
):
    save_dir = tmp_path / "panx"
    save_dir.mkdir()
    (save_dir / "checkpoint_last.pt").symlink_to(xnli_checkpoint)  # an XNLI run's save dir, reused by mistake
    resume = run(
        ["bash", "run_scripts/run_xtreme.sh", "PANX", e5_dir / "model.pt", toy_panx, save_dir, "MAX_UPDATE=1"],
        check=False,
    )
    output = resume.stdout + resume.stderr
    assert resume.returncode == 2, output[-3000:]
    assert f"fairseq-train: checkpoint to resume from {save_dir / 'checkpoint_last.pt'}: fine-tuned on xnli" in output
    assert "Traceback" not in output
    same_task = tmp_path / "xnli"
    same_task.mkdir()
    (same_task / "checkpoint_last.pt").symlink_to(xnli_checkpoint)  # the same task, resumed with another model shape
    other_shape = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            same_task,
            "MAX_UPDATE=1",
            "--",
            "--encoder-layers",
            "2",
        ],
        check=False,
    )
    output = other_shape.stdout + other_shape.stderr
    assert other_shape.returncode == 2, output[-3000:]
    assert re.search(
        rf"fairseq-train: checkpoint to resume from {same_task / 'checkpoint_last.pt'}: \d+ weights have no "
        r"place in this run's model, e.g. encoder\.sentence_encoder\.layers\.\d+\.\S+ \(trained as "
        r"stabletune_xlmr_e5_small; another --arch, model option or save dir\?\)",
        output,
    )
    teacher = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "PANX",
            e5_dir / "model.pt",
            toy_panx,
            tmp_path / "stage",
            "STAGE=2",
            f"TEACHER={xnli_checkpoint}",
            "MAX_UPDATE=1",
        ],
        check=False,
    )
    output = teacher.stdout + teacher.stderr
    assert teacher.returncode == 2, output[-3000:]
    assert (
        f"fairseq-train: teacher {xnli_checkpoint}: fine-tuned on xnli (3 labels" in output
        and "Traceback" not in output
    )


# --- GLUE preprocessing (preprocess/glue/process.sh) -----------------------------------------------------------

GLUE_RTE = {
    "RTE/train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA man sleeps.\tA person rests.\tentailment\n"
    "1\tA dog runs.\tA cat sleeps.\tnot_entailment\n",
    "RTE/dev.tsv": 'index\tsentence1\tsentence2\tlabel\n0\tKids play.\tThey are "outside".\tentailment\n',
}
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"


def stsb_row(score: str) -> str:
    return (
        f"0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tA plane takes off.\t{score}\n"
    )


GLUE_CASES = {  # name -> (files, TASK, (file or folder, line, reason))
    "glue wrong column count": (
        with_change(GLUE_RTE, "RTE/train.tsv", GLUE_RTE["RTE/train.tsv"] + "2\tOnly\tthree\n"),
        "RTE",
        ("RTE/train.tsv", 4, "3 tab-separated columns, the header has 4"),
    ),
    "glue unknown label": (
        with_change(GLUE_RTE, "RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tmaybe\n"),
        "rte",
        ("RTE/dev.tsv", 2, "unknown label 'maybe'"),
    ),
    "glue empty text": (
        with_change(GLUE_RTE, "RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\t \tentailment\n"),
        "RTE",
        ("RTE/dev.tsv", 2, "empty sentence2"),
    ),
    "glue STS-B score not a number": (
        {"STS-B/train.tsv": STSB_HEADER + stsb_row("5.000") + stsb_row("high")},
        "sts-b",
        ("STS-B/train.tsv", 3, "score 'high' is not a number in 0..5"),
    ),
    "glue STS-B score outside 0..5": (
        {"STS-B/dev.tsv": STSB_HEADER + stsb_row("7.5")},
        "STS-B",
        ("STS-B/dev.tsv", 2, "score '7.5' is not a number in 0..5"),
    ),
    "glue dev file without labels": (
        with_change(GLUE_RTE, "RTE/dev.tsv", "index\tsentence1\tsentence2\n0\tA.\tB.\n"),
        "RTE",
        ("RTE/dev.tsv", 1, "no 'label' column: a train or dev file needs its labels"),
    ),
    "glue XTREME folder given as GLUE data (ALL)": (XNLI, "ALL", (".", None, "no GLUE task folder")),
    "glue XTREME folder given as GLUE data (one task)": (XNLI, "MNLI", ("MNLI", None, "folder not found (")),
    "glue task folder without a GLUE file": (
        {"RTE/train-en.tsv": "A.\tB.\tentailment\n"},
        "RTE",
        ("RTE", None, "no RTE file here (looked for train.tsv, dev.tsv, test.tsv)"),
    ),
}


def glue_folder(tmp_path, files):
    root = tmp_path / "glue_data"
    root.mkdir()
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return root


def preprocess_glue(root, task, dict_dir, out, capsys) -> tuple[int, str]:
    """What preprocess/glue/process.sh execs, in this process (as ``preprocess`` above)."""
    from stabletune_fairseq.cli.preprocess_glue import main

    capsys.readouterr()
    status = main([str(root), task, str(dict_dir), str(out)])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(GLUE_CASES))
def test_broken_glue_input_fails_with_file_line_and_reason(name, e5_dir, tmp_path, capsys):
    files, task, (where, line, reason) = GLUE_CASES[name]
    root = glue_folder(tmp_path, files)
    status, stderr = preprocess_glue(root, task, e5_dir, tmp_path / "out", capsys)
    assert status == 2, stderr[-2000:]
    place = root if where == "." else root / where
    errors = [text for text in stderr.splitlines() if text.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert errors[0].startswith(f"error: {place}:{line}: " if line is not None else f"error: {place}: "), errors[0]
    assert reason in errors[0], errors[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing, not even partly, written


def test_glue_model_folder_without_a_sentencepiece_model(e5_dir, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "dict.txt").symlink_to(e5_dir / "dict.txt")
    root = glue_folder(tmp_path, GLUE_RTE)
    status, stderr = preprocess_glue(root, "RTE", model, tmp_path / "out", capsys)
    assert status == 2
    assert stderr.strip() == f"error: {model}: no sentencepiece model: neither sentencepiece.bpe.model nor sp.model"
    assert not (tmp_path / "out" / "RTE").exists()
