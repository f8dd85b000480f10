"""Write a small XTREME-style tagging download folder: ``panx/`` and ``udpos/`` (``word<TAB>tag``, blank
line between sentences), English training and dev sets, German dev sets and an untagged German test set.

Sentences come from templates over small bilingual lexicons, so a model fine-tuned on English can
transfer to German. The dev/test files also hold the awkward cases real files have: a very long
sentence, a word that holds a tab (a space in the untagged test file), a lone zero-width space (no piece at
all), a zero-width joiner inside a word, emoji and right-to-left text.

    python examples/toy_tagging/make_toy_tagging.py <out-dir> [--train 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

PEOPLE = [["Anna", "Schmidt"], ["John", "Miller"], ["Maria"], ["Peter", "Wolf"], ["Laura", "Klein"]]
PLACES = {
    "en": [["Berlin"], ["New", "York"], ["Paris"], ["Munich"]],
    "de": [["Berlin"], ["New", "York"], ["Paris"], ["München"]],
}
ORGS = [["Siemens"], ["Deutsche", "Bank"], ["United", "Nations"], ["BMW"]]
# (words, UPOS) templates for UD-POS, with their German counterparts
POS = {
    "en": [
        (["the", "{n}", "{v}", "a", "{n2}", "."], ["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]),
        (["she", "{v}", "the", "{adj}", "{n}", "."], ["PRON", "VERB", "DET", "ADJ", "NOUN", "PUNCT"]),
        (
            ["we", "{v}", "two", "{n}", "and", "a", "{n2}", "."],
            ["PRON", "VERB", "NUM", "NOUN", "CCONJ", "DET", "NOUN", "PUNCT"],
        ),
    ],
    "de": [
        (["der", "{n}", "{v}", "ein", "{n2}", "."], ["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]),
        (["sie", "{v}", "den", "{adj}", "{n}", "."], ["PRON", "VERB", "DET", "ADJ", "NOUN", "PUNCT"]),
        (
            ["wir", "{v}", "zwei", "{n}", "und", "ein", "{n2}", "."],
            ["PRON", "VERB", "NUM", "NOUN", "CCONJ", "DET", "NOUN", "PUNCT"],
        ),
    ],
}
LEXICON = {
    "en": {
        "n": ["man", "woman", "child", "teacher", "doctor"],
        "n2": ["book", "apple", "letter", "car"],
        "v": ["reads", "sees", "buys", "writes"],
        "adj": ["old", "red", "small", "new"],
    },
    "de": {
        "n": ["Mann", "Frau", "Kind", "Lehrer", "Arzt"],
        "n2": ["Buch", "Apfel", "Brief", "Auto"],
        "v": ["liest", "sieht", "kauft", "schreibt"],
        "adj": ["alten", "roten", "kleinen", "neuen"],
    },
}
NER = {"en": (["lives", "in"], ["works", "for"]), "de": (["wohnt", "in"], ["arbeitet", "für"])}


def entity(words, kind):
    return [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words)]


def ner_sentence(lang, rng):
    person = entity(rng.choice(PEOPLE), "PER")
    if rng.random() < 0.5:
        return person + [(w, "O") for w in NER[lang][0]] + entity(rng.choice(PLACES[lang]), "LOC") + [(".", "O")]
    return person + [(w, "O") for w in NER[lang][1]] + entity(rng.choice(ORGS), "ORG") + [(".", "O")]


def pos_sentence(lang, rng):
    words, tags = rng.choice(POS[lang])
    filled = [w.format(**{k: rng.choice(v) for k, v in LEXICON[lang].items()}) if "{" in w else w for w in words]
    return list(zip(filled, tags))


ODD = {  # awkward but valid words, for the dev and test files
    "panx": [
        ("Anna\tMaria", "B-PER"),
        ("\u200b", "O"),
        ("क\u200dष", "O"),
        ("😀", "O"),
        ("القاهرة", "B-LOC"),
        (".", "O"),
    ],
    "udpos": [
        ("New\tYork", "PROPN"),
        ("\u200b", "X"),
        ("क\u200dष", "NOUN"),
        ("😀", "SYM"),
        ("القاهرة", "PROPN"),
        (".", "PUNCT"),
    ],
}


def write(path: Path, sentences, with_tags: bool = True):
    with open(path, "w", encoding="utf-8") as f:
        for sentence in sentences:
            f.writelines(f"{w}\t{t}\n" if with_tags else f"{w}\n" for w, t in sentence)
            f.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    for task, make in (("panx", ner_sentence), ("udpos", pos_sentence)):
        folder = Path(args.out) / task
        folder.mkdir(parents=True, exist_ok=True)
        write(folder / "train-en.tsv", [make("en", rng) for _ in range(args.train)])
        write(folder / "dev-en.tsv", [make("en", rng) for _ in range(40)])
        long_sentence = [pair for _ in range(12) for pair in make("de", rng)]  # ~80 words: needs chunks
        write(folder / "dev-de.tsv", [make("de", rng) for _ in range(40)] + [long_sentence, ODD[task]])
        untagged_odd = [(w.replace("\t", " "), t) for w, t in ODD[task]]  # a tab would read as a tag column
        write(
            folder / "test-de.tsv",
            [make("de", rng) for _ in range(30)] + [long_sentence, untagged_odd],
            with_tags=False,
        )
    print(f"wrote {args.out}/panx and {args.out}/udpos")


if __name__ == "__main__":
    main()
