"""Where a distilled student's embeddings stand against its teacher's: on the held-out source sentences of a
parallel folder, the student's embeddings (our checkpoints, as stabletune-embed-eval embeds them) beside the rows
of a sentence bank (stabletune-sentence-bank) for the same sentences.

    python benchmarks/embedding_geometry.py <bank dir> <parallel folder> <prefix> NAME=CHECKPOINT ...

Per checkpoint: the mean L2 norm of its embeddings, the mean cosine between two different sentences (near 1: the
embeddings have collapsed towards one direction), the mean cosine to the teacher's embedding of the same sentence,
the mean cosine to the teacher's embeddings of the other sentences (the difference is what is specific to each
sentence), how often the teacher's row of the same sentence is the nearest of all, and the MSE to it (the
criterion's mse_src); the first line gives the teacher's own figures and two constant
predictions' MSE (the zero vector; the mean of the teacher's training rows), the levels a student must beat before
it has learnt anything of the teacher's geometry. A markdown table on standard output.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from stabletune_fairseq.data.metadata import load_metadata
from stabletune_fairseq.embeddings.encoder import EmbeddingSettings, SentenceEmbedder
from stabletune_fairseq.embeddings.sentence_bank import SentenceBank, checked_source_texts


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    sims = unit @ unit.T
    n = len(unit)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def row(name: str, vectors: np.ndarray, teacher: np.ndarray) -> str:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    unit_teacher = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    sims = unit @ unit_teacher.T  # row i: sentence i of the student against every sentence of the teacher
    n = len(sims)
    own, other = float(np.trace(sims) / n), float((sims.sum() - np.trace(sims)) / (n * (n - 1)))
    found = float((sims.argmax(1) == np.arange(n)).mean() * 100)
    mse = float(((vectors - teacher) ** 2).mean())
    return (
        f"| {name} | {np.linalg.norm(vectors, axis=1).mean():.3f} | {mean_pairwise_cosine(vectors):.3f} | "
        f"{own:.3f} | {other:.3f} | {found:.1f} | {mse:.6f} |"
    )


def main(bank_dir: str, data: str, prefix: str, runs: list[str]) -> None:
    bank = SentenceBank(bank_dir)
    texts, _ = checked_source_texts(Path(data), load_metadata(data), "valid")
    first = list({text: row for row, text in reversed(list(enumerate(texts)))}.values())  # each sentence once
    first.sort()  # (the English side of the four language files repeats the same sentences)
    texts = [texts[row] for row in first]
    teacher = np.asarray(bank.embeddings["valid"], dtype=np.float32)[first]
    mean = np.asarray(bank.embeddings["train"], dtype=np.float32).mean(0)
    print(f"{len(texts)} distinct held-out source sentences of {data}; teacher {bank.record['teacher']['folder']}\n")
    print(
        "| embeddings | mean norm | mean cosine between sentences | cosine to the teacher, same sentence | "
        "to the teacher, other sentences | teacher's row of the same sentence nearest (%) | MSE to the teacher |"
    )
    print("|---|---|---|---|---|---|---|")
    print(row("teacher (bank)", teacher, teacher))
    print(f"| constant: zero vector | 0 | - | - | - | - | {float((teacher**2).mean()):.6f} |")
    mean_mse = float(((teacher - mean) ** 2).mean())
    print(f"| constant: the teacher's training mean | {np.linalg.norm(mean):.3f} | 1 | - | - | - | {mean_mse:.6f} |")
    for spec in runs:
        name, checkpoint = spec.split("=", 1)
        embedder = SentenceEmbedder.load(checkpoint, EmbeddingSettings(prefix=prefix), torch.device("cpu"))
        print(row(name, embedder.embed(texts), teacher))


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
