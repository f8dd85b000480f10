"""Write the project's own small multilingual XNLI-style dataset (quickstart data).

Sentences are built from parallel phrase tables in five languages (en, de, fr, es, zh): a premise says
who does what where; hypotheses are entailed by it, contradict it or are neutral to it, and several
kinds need the premise to be decided (the same place or another place, the same action or another).
English pairs train, every language has dev (labelled) and test (unlabelled) pairs built from
(subject, action, place) triples never seen in training, so the dev score measures transfer.
The output is an XTREME-style ``xnli/`` folder (train-en.tsv, dev-LG.tsv, test-LG.tsv) and, for the
translate-train-all setting, ``xtreme_translations/XNLI/translate-train/en-LG-translated.tsv``.

    python examples/toy_xnli/make_toy_xnli.py <out_dir>
"""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

from phrases import ACTIONS, PLACES, SUBJECTS, TEMPLATES

LANGUAGES = ("en", "de", "fr", "es", "zh")
SEED = 13
TRAIN_PAIRS, DEV_PAIRS, TEST_PAIRS = 1200, 150, 150


def fill(template: str, lang: str, s: int, a: int, p: int) -> str:
    text = template.format(S=SUBJECTS[lang][s], A=ACTIONS[lang][a], P=PLACES[lang][p])
    if lang == "fr":  # French elision: "ne écrit" -> "n'écrit"
        text = text.replace("ne é", "n'é").replace("ne a", "n'a")
    return text


def draw_examples(triples, count: int, rng: random.Random):
    """Language-independent examples: (subject, action, place, kind, other action, other place)."""
    kinds = sorted(k for k in TEMPLATES["en"] if k != "premise")
    examples = []
    for _ in range(count):
        s, a, p = rng.choice(triples)
        kind = rng.choice(kinds)
        other_a = rng.choice([x for x in range(len(ACTIONS["en"])) if x != a])
        other_p = rng.choice([x for x in range(len(PLACES["en"])) if x != p])
        examples.append((s, a, p, kind, other_a, other_p))
    return examples


def render(examples, lang: str):
    rows = []
    for s, a, p, kind, other_a, other_p in examples:
        label, template = TEMPLATES[lang][kind]
        premise = fill(TEMPLATES[lang]["premise"][1], lang, s, a, p)
        # "other" kinds mention an action or place that the premise does not.
        hypothesis = fill(
            template, lang, s, other_a if "other_action" in kind else a, other_p if "other_place" in kind else p
        )
        rows.append((premise, hypothesis, label))
    return rows


def main(out_dir: str) -> None:
    out = Path(out_dir) / "xnli"
    out.mkdir(parents=True, exist_ok=True)
    triples = list(itertools.product(range(len(SUBJECTS["en"])), range(len(ACTIONS["en"])), range(len(PLACES["en"]))))
    rng = random.Random(SEED)
    rng.shuffle(triples)
    held_out, seen = triples[:64], triples[64:]
    train = draw_examples(seen, TRAIN_PAIRS, random.Random(SEED))
    dev = draw_examples(held_out, DEV_PAIRS, random.Random(SEED + 1))
    test = draw_examples(held_out, TEST_PAIRS, random.Random(SEED + 2))
    english = render(train, "en")
    write(out / "train-en.tsv", english, labelled=True)
    translations = Path(out_dir) / "xtreme_translations" / "XNLI" / "translate-train"
    translations.mkdir(parents=True, exist_ok=True)
    for lang in LANGUAGES:
        write(out / f"dev-{lang}.tsv", render(dev, lang), labelled=True)
        write(out / f"test-{lang}.tsv", render(test, lang), labelled=False)
        if lang != "en":  # translate-train: src_a, src_b, tgt_a, tgt_b, label
            rows = [(e[0], e[1], t[0], t[1], e[2]) for e, t in zip(english, render(train, lang))]
            (translations / f"en-{lang}-translated.tsv").write_text(
                "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8"
            )
    print(f"wrote {out} and {translations}")


def write(path: Path, rows, labelled: bool) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for premise, hypothesis, label in rows:
            f.write("\t".join([premise, hypothesis, label] if labelled else [premise, hypothesis]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "toy-xtreme")
