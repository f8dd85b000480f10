"""Preprocess an extractive-QA task (XQuAD, MLQA, TyDiQA-GoldP, SQuAD) into a fairseq dataset folder.

Files looked for under the XTREME download folder (the first name found wins):

    training   squad/train-v1.1.json (xquad, mlqa, squad; or train-v2.0.json),
               tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json (or tydiqa.en.train.json)
    dev/test   xquad/xquad.LG.json; mlqa/MLQA_V1/{dev,test}/{dev,test}-context-LG-question-LG.json;
               tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.LG.dev.json (or tydiqa.LG.dev.json); squad/dev-v1.1.json

``layout="squad"`` (``preprocess/squad/process.sh``, AMOS's layout) reads the official SQuAD files directly in the
given folder instead: ``train-v2.0.json`` (or ``train-v1.1.json``) and ``dev-v2.0.json`` (or ``dev-v1.1.json``).

A dev file with answers becomes ``valid_LG``; one without (XTREME ships TyDiQA-GoldP dev, its test set,
with empty answers) becomes ``test_LG``: predictions are written, nothing is scored. MLQA's
cross-language files (context in one language, question in another) are not XTREME's task and are
listed as skipped. Without a training file the task is prepared for evaluation only, with a warning.

Layout written to ``<out>/<task>/``::

    question/<split>, question_words/<split>    the question's pieces (at most --max-query-length) and
                                                the piece count of each of its words
    context/<split>, context_words/<split>      the whole context's pieces, piece count of each word
    char_spans/<split>.npy                      [begin, end) characters of every context piece
    answers/<split>.npy                         first and last context piece of the answer trained on
                                                (-2 -2: unanswerable; -1 -1: unlabelled or not found)
    examples/<split>.jsonl                      id, question, context and gold answers, for scoring
    metadata.json                               per split: source, language, counts (see below)

Counted per split and logged: questions cut to the query length, answers realigned or unmatched
(see ``squad_json.py``), answers beginning or ending inside a piece, words read as ``<unk>``, and
the windows needed at the default length. Windows themselves are planned when the data is loaded.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from ..encoding import PieceEncoder, load_xlmr_dictionary, model_files
from ..errors import InputFormatError
from ..metadata import save_metadata
from ..qa_encoding import answer_pieces, encode_texts, truncate_words
from ..qa_windows import context_budget, plan_windows
from ..readers.squad_json import QAFile, line_of_id, read_squad_file
from .atomic_dir import atomic_output_dir
from .token_files import write_int_array, write_token_dataset

logger = logging.getLogger(__name__)

NO_ANSWER, UNANSWERABLE = -1, -2  # answers.npy: nothing to train on / trained to point at the null position

QA_TASKS = ("xquad", "mlqa", "tydiqa", "squad")
SQUAD_TRAIN = ("squad/train-v1.1.json", "squad/train-v2.0.json")
TRAIN_FILES = {
    "xquad": SQUAD_TRAIN,
    "mlqa": SQUAD_TRAIN,
    "squad": SQUAD_TRAIN,
    "tydiqa": (
        "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json",
        "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.en.train.json",
    ),
}
# (folder, file pattern with the language as group 1, split prefix)
EVAL_FILES = {
    "xquad": [("xquad", r"xquad\.([a-z]{2}(?:-[a-z]+)?)\.json", "valid")],
    "mlqa": [
        ("mlqa/MLQA_V1/dev", r"dev-context-([a-z]{2})-question-([a-z]{2})\.json", "valid"),
        ("mlqa/MLQA_V1/test", r"test-context-([a-z]{2})-question-([a-z]{2})\.json", "test"),
    ],
    "tydiqa": [("tydiqa/tydiqa-goldp-v1.1-dev", r"tydiqa\.(?:goldp\.)?([a-z]{2})\.dev\.json", "valid")],
    "squad": [("squad", r"dev-v(?:1\.1|2\.0)\.json()", "valid")],
}
# AMOS's SQuAD folder: the official files side by side, v2.0 first (of two dev files the later one, v2.0, is kept)
SQUAD_FOLDER_TRAIN = ("train-v2.0.json", "train-v1.1.json")
SQUAD_FOLDER_EVAL = [("", r"dev-v(?:1\.1|2\.0)\.json()", "valid")]
LAYOUTS = ("xtreme", "squad")
TRANSLATION_FOLDERS = {"xquad": "SQuAD", "mlqa": "SQuAD", "squad": "SQuAD", "tydiqa": "TyDiQA"}
DEFAULT_MAX_QUERY, DEFAULT_STRIDE = 64, 128


def qa_file_names(task: str, layout: str = "xtreme") -> tuple[tuple[str, ...], list[tuple[str, str, str]]]:
    """The training file candidates and the (folder, pattern, split prefix) of the dev/test files of a layout."""
    if layout == "squad":
        return SQUAD_FOLDER_TRAIN, SQUAD_FOLDER_EVAL
    return TRAIN_FILES[task], EVAL_FILES[task]


def find_qa_files(task: str, xtreme_dir: Path, layout: str = "xtreme") -> tuple[dict[str, tuple[str, Path]], list[str]]:
    """``{split: (language, path)}`` (``train`` when present) and the files skipped, with why."""
    found, skipped = {}, []
    train_files, eval_files = qa_file_names(task, layout)
    for candidate in train_files:
        if (xtreme_dir / candidate).is_file():
            found["train"] = ("en", xtreme_dir / candidate)
            break
    for folder, pattern, prefix in eval_files:
        if not (xtreme_dir / folder).is_dir():
            continue
        for path in sorted((xtreme_dir / folder).iterdir()):
            match = re.fullmatch(pattern, path.name)
            if not match:
                continue
            languages = [g for g in match.groups()] or ["en"]
            language = languages[0] or "en"
            if len(set(languages)) > 1:
                skipped.append(f"{path} (context and question in different languages)")
                continue
            found[f"{prefix}_{language}"] = (language, path)
    if not any(name != "train" for name in found):
        raise InputFormatError(xtreme_dir / eval_files[0][0], None, f"no {task} dev or test file found")
    return found, skipped


def encode_file(qa: QAFile, encoder: PieceEncoder, max_query: int) -> tuple[dict, dict]:
    """Encoded questions and contexts of one file, and its counts."""
    contexts = sorted({e.context for e in qa.examples})
    encoded_contexts, unk_context = encode_texts(encoder, contexts)
    by_context = dict(zip(contexts, encoded_contexts))
    questions, unk_question = encode_texts(encoder, [e.question for e in qa.examples])
    arrays = {"question": [], "context": [], "answers": []}
    counts = {
        "examples": len(qa.examples),
        "duplicate_ids": len(qa.duplicate_ids),
        "labelled": qa.labelled,
        "answers_realigned": qa.answers_realigned,
        "answers_unmatched": qa.answers_unmatched,
        "answers_inside_pieces": 0,
        "questions_truncated": 0,
        "unanswerable": sum(e.impossible for e in qa.examples),
        "unk_words": unk_context + unk_question,
    }
    for example, question in zip(qa.examples, questions):
        question, cut = truncate_words(question, max_query)
        counts["questions_truncated"] += cut
        context = by_context[example.context]
        answer = (UNANSWERABLE, UNANSWERABLE) if example.impossible else (NO_ANSWER, NO_ANSWER)
        if example.answer_start >= 0:
            s, e, exact = answer_pieces(
                context.char_spans, example.answer_start, example.answer_start + len(example.answer_text)
            )
            counts["answers_inside_pieces"] += not exact
            answer = (s, e)
        arrays["question"].append(question)
        arrays["context"].append(context)
        arrays["answers"].append(answer)
    return arrays, counts


def count_windows(arrays: dict, max_positions: int, stride: int) -> tuple[int, int]:
    """(windows, contexts needing more than one) at ``max_positions``."""
    total = long = 0
    for question, context in zip(arrays["question"], arrays["context"]):
        n = len(plan_windows(len(context.pieces), context_budget(max_positions, len(question.pieces)), stride))
        total += n
        long += n > 1
    return total, long


TOKEN_FOLDERS = ("question", "question_words", "context", "context_words")


def split_columns(qa: QAFile, arrays: dict) -> dict:
    """What a split stores, by folder (``write_split`` writes it; prediction on raw text holds it in memory):
    the token folders' sequences, ``char_spans``, ``answers`` and the ``examples`` records."""
    columns = {}
    for part in ("question", "context"):
        columns[part] = [t.pieces for t in arrays[part]]
        columns[f"{part}_words"] = [t.word_pieces for t in arrays[part]]
    columns["char_spans"] = np.concatenate([c.char_spans for c in arrays["context"]]).reshape(-1, 2).astype(np.int64)
    columns["answers"] = np.asarray(arrays["answers"], dtype=np.int64).reshape(-1, 2)
    columns["examples"] = [
        {"id": e.id, "question": e.question, "context": e.context, "answers": e.answers, "impossible": e.impossible}
        for e in qa.examples
    ]
    return columns


def write_split(out: Path, name: str, qa: QAFile, arrays: dict, vocab: int) -> None:
    columns = split_columns(qa, arrays)
    for folder in TOKEN_FOLDERS:
        write_token_dataset(out / folder / name, columns[folder], vocab)
    (out / "char_spans").mkdir(parents=True, exist_ok=True)
    np.save(out / "char_spans" / f"{name}.npy", columns["char_spans"])
    write_int_array(out / "answers" / f"{name}.npy", columns["answers"])
    (out / "examples").mkdir(parents=True, exist_ok=True)
    with open(out / "examples" / f"{name}.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in columns["examples"])


def prepare_qa_task(
    task: str,
    xtreme_dir: str | Path,
    dict_dir: str | Path,
    out_root: str | Path,
    max_positions: int,
    translations_dir: str | Path | None = None,
    max_query: int = DEFAULT_MAX_QUERY,
    stride: int = DEFAULT_STRIDE,
    layout: str = "xtreme",
) -> Path:
    dict_path, sentencepiece_path = model_files(dict_dir)
    dictionary = load_xlmr_dictionary(str(dict_path))
    encoder = PieceEncoder(str(sentencepiece_path), dictionary)
    files, skipped = find_qa_files(task, Path(xtreme_dir), layout)
    for reason in skipped:
        logger.info("skipped %s", reason)
    if "train" not in files:
        logger.warning(
            "%s: no training file (%s) under %s: prepared for evaluation only",
            task,
            " or ".join(qa_file_names(task, layout)[0]),
            xtreme_dir,
        )
    sources = {name: (language, path, read_squad_file(path)) for name, (language, path) in files.items()}
    if translations_dir is not None:
        for language, path in qa_translation_files(translations_dir, task).items():
            sources[f"translation_{language}"] = (language, path, read_squad_file(path))
    final = Path(out_root) / task
    splits, translations = {}, {}
    with atomic_output_dir(final) as out:
        for name, (language, path, qa) in sources.items():
            if qa.duplicate_ids and name != "train" and not name.startswith("translation_"):
                qid = qa.duplicate_ids[0]
                raise InputFormatError(
                    path,
                    line_of_id(path, qid, occurrence=2),
                    f"question id {qid!r} occurs twice (predictions are keyed by id)",
                )
            if name.startswith("valid_") and not qa.labelled:
                name = "test_" + language  # dev without answers: predictions only
            arrays, counts = encode_file(qa, encoder, max_query)
            counts["windows"], counts["long_contexts"] = count_windows(arrays, max_positions, stride)
            folder, stored = (
                (out / "translation", f"train_{language}") if name.startswith("translation_") else (out, name)
            )
            write_split(folder, stored, qa, arrays, len(dictionary))
            report = {"language": language, "source": str(Path(path).resolve()), **counts}
            (translations if folder != out else splits)[language if folder != out else name] = report
            _log_split(path, name, report, max_positions)
        shutil.copy(dict_path, out / "dict.txt")
        shutil.copy(sentencepiece_path, out / "sentencepiece.bpe.model")  # also when the model folder calls it sp.model
        save_metadata(
            out,
            {
                "task": task,
                "kind": "qa",
                "labels": ["start", "end"],
                "max_positions": max_positions,
                "max_query_length": max_query,
                "doc_stride": stride,
                "splits": splits,
                "skipped_files": skipped,
                "translations": translations,
            },
        )
    return final


def qa_translation_files(translations_dir: str | Path, task: str) -> dict[str, Path]:
    """``<translations>/{SQuAD|TyDiQA}/translate-train/*en-LG.json``: translated training questions."""
    folder = Path(translations_dir) / TRANSLATION_FOLDERS[task] / "translate-train"
    if not folder.is_dir():
        raise InputFormatError(folder, None, "translate-train folder not found")
    files = {
        m.group(1): p for p in sorted(folder.iterdir()) if (m := re.search(r"en-([a-z]{2}(?:-[a-z]+)?)\.json$", p.name))
    }
    if not files:
        raise InputFormatError(folder, None, "no *en-<lang>.json translate-train file")
    return files


def _log_split(path, name: str, c: dict, max_positions: int) -> None:
    logger.info(
        "%s -> %s: %d questions (%s), %d windows of %d tokens, %d contexts need several",
        path,
        name,
        c["examples"],
        "with answers" if c["labelled"] else "no answers",
        c["windows"],
        max_positions,
        c["long_contexts"],
    )
    for key, what in (
        ("answers_unmatched", "answers whose text is not in the context (scored, not trained on)"),
        ("answers_realigned", "answers found near, not at, their offset"),
        ("answers_inside_pieces", "answers beginning or ending inside a piece"),
        ("questions_truncated", "questions cut to the maximum query length"),
        ("unk_words", "words read as <unk>"),
    ):
        if c[key]:
            logger.warning("%s: %d %s", path, c[key], what)
