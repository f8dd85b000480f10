"""en<TAB>xx parallel sentences from the shared XNLI sample, for the embedding-distillation evidence scripts.

    python benchmarks/xnli_parallel_pairs.py <xtreme-sample>/xnli <out folder>

Line i of ``<split>-en.tsv`` and ``<split>-<lang>.tsv`` (dev and test) is the same example translated (XNLI is a
human translation of its English dev/test sets); each premise and each hypothesis becomes a pair, duplicates once (a
premise appears with three hypotheses). Writes ``en-<lang>.tsv`` for de, zh, ar, hi.
"""

import sys
from pathlib import Path


def main(xnli: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for lang in ("de", "zh", "ar", "hi"):
        pairs = []
        for split in ("dev", "test"):
            english = (xnli / f"{split}-en.tsv").read_text(encoding="utf-8").splitlines()
            other = (xnli / f"{split}-{lang}.tsv").read_text(encoding="utf-8").splitlines()
            if len(english) != len(other):
                sys.exit(f"{xnli}/{split}-{lang}.tsv: {len(other)} lines, {split}-en.tsv {len(english)}: not aligned")
            for en, xx in zip(english, other):
                en, xx = en.split("\t"), xx.split("\t")
                pairs += [(en[0], xx[0]), (en[1], xx[1])]  # premise, hypothesis
        unique = list(dict.fromkeys(pairs))
        (out / f"en-{lang}.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in unique), encoding="utf-8")
        print(f"en-{lang}: {len(pairs)} pairs, {len(unique)} distinct")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
