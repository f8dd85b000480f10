"""Write a small XTREME-style QA download folder in SQuAD's JSON format: an English training set
(``squad/train-v1.1.json``), XQuAD-style dev files (``xquad/xquad.{en,de,zh}.json``), MLQA-style dev
files (``mlqa/MLQA_V1/dev/dev-context-LG-question-LG.json``, plus one cross-language file to skip),
TyDiQA-GoldP-style files (English training; dev files with the answers blanked, as XTREME ships them) and
German translate-train files (``translations/{SQuAD,TyDiQA}/translate-train/*en-de.json``).

Paragraphs come from templates over a small table of countries, so a model fine-tuned on English can
transfer. The dev files hold the awkward cases real files have: a context long enough to need several
windows (answers near the end), Chinese without spaces, a city spelled with a combining accent, and
answers that are a part of a word (inside one sentencepiece piece).

    python examples/toy_qa/make_toy_qa.py <out-dir> [--train 120] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

# country, capital, river, year
FACTS = [
    ("Norland", "Velm", "Arna", "1905"),
    ("Ostria", "Kalden", "Mirra", "1921"),
    ("Belmar", "Tusca", "Oren", "1870"),
    ("Fenwick", "Dorlo", "Sable", "1899"),
    ("Quenta", "Reykjavi\u0301k", "Lune", "1944"),
    ("Palvia", "Sorel", "Vendt", "1812"),
]
TEMPLATES = {
    "en": (
        "{c} is a country. Its capital is {cap}. The longest river of {c} is the {r}. {c} joined the union in {y}.",
        [
            ("What is the capital of {c}?", "{cap}"),
            ("Which river is the longest in {c}?", "{r}"),
            ("When did {c} join the union?", "{y}"),
        ],
    ),
    "de": (
        "{c} ist ein Land. Seine Hauptstadt ist {cap}. Der längste Fluss von {c} ist die {r}. {c} trat {y} der "
        "Union bei.",
        [
            ("Was ist die Hauptstadt von {c}?", "{cap}"),
            ("Welcher Fluss ist der längste in {c}?", "{r}"),
            ("Wann trat {c} der Union bei?", "{y}"),
        ],
    ),
    "zh": (
        "{c}是一个国家。它的首都是{cap}。{c}最长的河流是{r}河。{c}于{y}年加入联盟。",
        [("{c}的首都是哪里？", "{cap}"), ("{c}最长的河流是哪条？", "{r}"), ("{c}哪一年加入联盟？", "{y}")],
    ),
}
FILLER = {
    "en": "The weather there is mild and the people are friendly.",
    "de": "Das Wetter dort ist mild und die Menschen sind freundlich.",
    "zh": "那里气候温和，人们很友好。",
}


def paragraph(lang: str, facts, qid: str, long: bool = False) -> dict:
    country, capital, river, year = facts
    values = {"c": country, "cap": capital, "r": river, "y": year}
    text, questions = TEMPLATES[lang]
    context = text.format(**values)
    if long:  # the facts again after many filler sentences: answers far into the context
        context = " ".join([FILLER[lang]] * 12 + [context])
    qas = []
    for k, (question, answer) in enumerate(questions):
        answer_text = answer.format(**values)
        start = context.rindex(answer_text) if long else context.index(answer_text)
        qas.append(
            {
                "id": f"{qid}-{k}",
                "question": question.format(**values),
                "answers": [{"text": answer_text, "answer_start": start}],
            }
        )
    return {"context": context, "qas": qas}


def squad_file(paragraphs: list[dict], version: str = "1.1") -> dict:
    return {"version": version, "data": [{"title": "toy", "paragraphs": paragraphs}]}


def write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=120, help="training paragraphs (3 questions each)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng, out = random.Random(args.seed), Path(args.out)
    train = [paragraph("en", rng.choice(FACTS), f"train-{i}", long=rng.random() < 0.2) for i in range(args.train)]
    write(out / "squad" / "train-v1.1.json", squad_file(train))
    for lang in TEMPLATES:
        dev = [paragraph(lang, facts, f"{lang}-{i}", long=i % 3 == 0) for i, facts in enumerate(FACTS)]
        write(out / "xquad" / f"xquad.{lang}.json", squad_file(dev))
        write(out / "mlqa" / "MLQA_V1" / "dev" / f"dev-context-{lang}-question-{lang}.json", squad_file(dev, "1.0"))
    cross = [paragraph("en", FACTS[0], "cross-0")]
    write(out / "mlqa" / "MLQA_V1" / "dev" / "dev-context-en-question-de.json", squad_file(cross, "1.0"))
    tydiqa = out / "tydiqa"
    write(tydiqa / "tydiqa-goldp-v1.1-train" / "tydiqa.goldp.en.train.json", squad_file(train[:60], "TyDiQA-GoldP"))
    for lang in ("en", "zh"):
        blank = [paragraph(lang, facts, f"tydi-{lang}-{i}") for i, facts in enumerate(FACTS)]
        for p in blank:
            for qa in p["qas"]:
                qa["answers"] = [{"text": "", "answer_start": 0}]
        write(tydiqa / "tydiqa-goldp-v1.1-dev" / f"tydiqa.goldp.{lang}.dev.json", squad_file(blank, "TyDiQA-GoldP"))
    translated = squad_file([paragraph("de", rng.choice(FACTS), f"tt-de-{i}") for i in range(20)])
    for folder, name in (
        ("SQuAD", "squad.translate.train.en-de.json"),
        ("TyDiQA", "tydiqa.translate.train.en-de.json"),
    ):
        write(out / "translations" / folder / "translate-train" / name, translated)


if __name__ == "__main__":
    main()
