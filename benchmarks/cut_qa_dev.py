"""Copy SQuAD-format QA files cut to their first N questions (the evidence scripts' dev sets).

    python benchmarks/cut_qa_dev.py <xtreme-dir> <out-dir> <N> <glob relative to xtreme-dir> ...

Each file keeps its layout below ``<out-dir>``; N = 0 keeps every question.
"""

import glob
import json
import os
import sys


def cut(doc: dict, keep: int) -> dict:
    left = keep or 10**12
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = paragraph["qas"][: max(left, 0)]
            left -= len(paragraph["qas"])
        article["paragraphs"] = [p for p in article["paragraphs"] if p["qas"]]
    doc["data"] = [a for a in doc["data"] if a["paragraphs"]]
    return doc


def main(src: str, dst: str, keep: str, *patterns: str) -> None:
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(src, pattern))):
            out = os.path.join(dst, os.path.relpath(path, src))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(path, encoding="utf-8") as f:
                doc = cut(json.load(f), int(keep))
            with open(out, "w", encoding="utf-8") as f:
                json.dump(doc, f, ensure_ascii=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
