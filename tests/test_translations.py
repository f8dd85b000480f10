"""Translate-train-all: translations paired with their English rows, reported when they do not pair,
and used as views; a tiny real two-stage run in that setting."""

import re
import shutil

import numpy as np
from conftest import read_metadata, run

from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary
from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask


def test_every_translation_pairs_with_its_english_row(toy_data_tta):
    meta = read_metadata(toy_data_tta)
    assert sorted(meta["translations"]) == ["de", "es", "fr", "zh"]
    for lang, info in meta["translations"].items():
        assert info["pairs"] == 1200 and info["unmatched"] == 0
        sources = np.load(toy_data_tta / "translation" / "source" / f"train_{lang}.npy")
        assert (sources == np.arange(1200)).all()  # duplicates of an English pair are paired in turn


def test_unpaired_rows_are_reported_with_their_line(toy_xtreme, e5_dir, tmp_path):
    xtreme = tmp_path / "xtreme"
    shutil.copytree(toy_xtreme, xtreme)
    path = xtreme / "xtreme_translations" / "XNLI" / "translate-train" / "en-de-translated.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    fields = lines[4].split("\t")
    lines[4] = "\t".join(["A premise nobody wrote.", *fields[1:]])
    other = next(label for label in ("contradiction", "entailment", "neutral") if label != lines[9].split("\t")[4])
    lines[9] = "\t".join(lines[9].split("\t")[:4] + [other])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            xtreme,
            "xnli",
            e5_dir,
            tmp_path / "out",
            f"TRANSLATIONS={xtreme / 'xtreme_translations'}",
        ]
    )
    meta = read_metadata(tmp_path / "out" / "xnli")
    assert meta["translations"]["de"] | {"source": None} == {
        "source": None,
        "pairs": 1198,
        "unmatched": 2,
        "truncated": 0,
    }
    report = (tmp_path / "out" / "xnli" / "translation" / "unmatched_de.tsv").read_text().splitlines()
    assert report[0] == f"{path}:5\tsource pair not found in the English training set"
    assert report[1].startswith(f"{path}:10\tlabel '{other}' differs")


def test_malformed_translation_row_fails_with_file_and_line(toy_xtreme, e5_dir, tmp_path):
    xtreme = tmp_path / "xtreme"
    shutil.copytree(toy_xtreme, xtreme)
    path = xtreme / "xtreme_translations" / "XNLI" / "translate-train" / "en-fr-translated.tsv"
    with open(path, "a", encoding="utf-8") as f:
        f.write("only\tfour\tcolumns\there\n")
    result = run(
        [
            "bash",
            "preprocess/xtreme/process.sh",
            xtreme,
            "xnli",
            e5_dir,
            tmp_path / "out",
            f"TRANSLATIONS={xtreme / 'xtreme_translations'}",
        ],
        check=False,
    )
    assert result.returncode != 0 and f"{path}:1201: 4 tab-separated columns, expected 5" in result.stderr
    assert not (tmp_path / "out" / "xnli").exists()


def test_translation_views(toy_data_tta, toy_xtreme):
    task = XtremeSentenceTask.setup_task(
        XtremeSentenceConfig(
            data=str(toy_data_tta), seed=1, view_augmentation="translation", copy_augmentation="translation"
        )
    )
    views = task.load_dataset("train").dataset
    views.set_epoch(1)
    dictionary = load_xlmr_dictionary(str(toy_data_tta / "dict.txt"))
    encoder = PieceEncoder(str(toy_data_tta / "sentencepiece.bpe.model"), dictionary)
    folder = toy_xtreme / "xtreme_translations" / "XNLI" / "translate-train"
    premises = {
        lang: [
            line.split("\t")[2]
            for line in (folder / f"en-{lang}-translated.tsv").read_text(encoding="utf-8").splitlines()
        ]
        for lang in ("de", "es", "fr", "zh")
    }
    english = [
        line.split("\t")[0] for line in (toy_xtreme / "xnli" / "train-en.tsv").read_text(encoding="utf-8").splitlines()
    ]

    def premise(tokens):
        ids = tokens.tolist()
        return " ".join(encoder.words(ids[1 : ids.index(dictionary.eos())]))

    copy_views = {"english": 0, "other translation": 0}
    for i in range(200):
        item, copy = views[i], views[1200 + i]
        translations = {premises[lang][i] for lang in premises}
        assert premise(item["tokens"]) == english[i] and not item["teacher"]
        assert premise(item["view"]) in translations  # the row's view: a translation
        assert premise(copy["tokens"]) in translations and copy["teacher"]
        # A translated copy's view, as the reference draws it: a language at random among the example's
        # translations, English when it is the copy's own language: never the copy itself.
        view = premise(copy["view"])
        assert view != premise(copy["tokens"])
        if view == english[i]:
            copy_views["english"] += 1
        else:
            assert view in translations
            copy_views["other translation"] += 1
    # Four translation languages: English with probability 1/4 (50 of 200 expected; 26..74 is beyond 4 sigma).
    assert 26 <= copy_views["english"] <= 74, copy_views


def test_translate_train_all_two_stages(toy_data_tta, e5_dir, tmp_path):
    settings = [
        "SETTING=translate-train-all",
        "MAX_UPDATE=2",
        "BSZ=8",
        "LR=1e-4",
        "FREEZE_EMBEDDINGS=1",
        "VALID_LANGS=de",
    ]
    logs = []
    for number in (1, 2):
        result = run(
            [
                "bash",
                "run_scripts/run_xtreme.sh",
                "XNLI",
                e5_dir / "model.pt",
                toy_data_tta,
                tmp_path,
                f"STAGE={number}",
                *settings,
                "--",
                "--log-interval",
                "1",
            ]
        )
        logs.append(result.stdout + result.stderr)
        assert "translation views from de,es,fr,zh; 0 English rows have no translation" in logs[-1]
    r1 = {n: [float(v) for v in re.findall(r"\br1=([-\d.e]+)", log)] for n, log in enumerate(logs, 1)}
    r2 = {n: [float(v) for v in re.findall(r"\br2=([-\d.e]+)", log)] for n, log in enumerate(logs, 1)}
    assert (
        len(r1[1]) == 2 and all(v > 0 for v in r1[1]) and r2[1] == [0.0, 0.0]
    )  # stage 1: R1 on translations, no teacher
    assert len(r2[2]) == 2 and all(v > 0 for v in r2[2]) and all(v > 0 for v in r1[2])
    assert f"teacher: {tmp_path / 'checkpoint_best.pt'} (frozen, eval mode)" in logs[1]  # stage 1's best
    assert "loaded train: 2400 rows (views: translation, copies: translation)" in logs[1]
    assert "--r2-lambda 0.3333333333333333" in logs[1]  # XNLI translate-train-all: lambda2 = 1 / 3 classes
    assert (tmp_path / "stage2" / "checkpoint_last.pt").is_file()


def test_translate_train_all_needs_translations(toy_data, e5_dir, tmp_path):
    result = run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            tmp_path,
            "STAGE=1",
            "SETTING=translate-train-all",
        ],
        check=False,
    )
    assert result.returncode == 2 and "needs translations" in result.stderr
