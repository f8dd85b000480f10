"""Score a sentence-transformers teacher (its own tokenizer, e.g. the packaged all-MiniLM-L6-v2) on Tatoeba or STS
with the evaluation code of ``stabletune-embed-eval``, so that its row sits beside our checkpoints' rows.

    python benchmarks/hf_teacher_eval.py <folder | installed package> tatoeba|sts <data folder> <out folder>

The embedding is the bank's (``embeddings/hf_teacher.py``: the teacher's tokenizer, pooling and normalisation, no
prefix); ``results.json`` has the layout ``benchmarks/results_table.py`` reads.
"""

import json
import sys
import time
from pathlib import Path

from stabletune_fairseq.embeddings.evaluation import evaluate, read_task
from stabletune_fairseq.embeddings.hf_teacher import HFSentenceTeacher


def main(teacher: str, task: str, data: str, out: str) -> None:
    start = time.perf_counter()
    sets = read_task(task, data)
    embedder = HFSentenceTeacher(teacher)
    results = evaluate(task, embedder, sets, Path(out))
    results = {
        "task": results.pop("task"),
        "teacher": str(embedder.folder),
        "data": data,
        **results,
        "truncated": embedder.truncated,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (Path(out) / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[2] not in ("tatoeba", "sts"):
        sys.exit(__doc__)
    main(*sys.argv[1:])
