"""Preprocessing throughput: ``process.sh xnli`` against the classic fairseq pipeline on the same input.

Input: an XTREME-style ``xnli/train-en.tsv`` of at least ``pairs`` rows, the English training rows of
``../shared``'s sample (or of our toy XNLI) repeated, plus one dev file. The classic pipeline is the one
fairseq's RoBERTa fine-tuning recipes use: cut the columns, ``spm_encode`` each text column to pieces,
then ``fairseq-preprocess --only-source --workers 2`` for each column and the labels. fairseq's
``scripts/spm_encode.py`` is not in any pip package: pass its path with ``--spm-encode``; without it, a
one-process equivalent (one ``encode(line, out_type=str)`` per line, pieces joined by spaces, as
that script does) stands in, and the report says which ran.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_XNLI = REPO.parent / "shared" / "data" / "xtreme-sample" / "xnli"

SPM_ENCODE_STANDIN = """
import sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as src, open(sys.argv[3], "w", encoding="utf-8") as out:
    for line in src:
        out.write(" ".join(sp.encode(line.rstrip("\\n"), out_type=str)) + "\\n")
"""


def source_rows(scratch: Path) -> tuple[list[str], list[str], str]:
    """English training lines and dev lines, with where they came from."""
    folder = SHARED_XNLI
    if not (folder / "train-en.tsv").is_file():
        folder = scratch / "toy"
        subprocess.run(
            [sys.executable, str(REPO / "examples" / "toy_xnli" / "make_toy_xnli.py"), str(folder)],
            check=True,
            capture_output=True,
        )
        folder = folder / "xnli"
    train = (folder / "train-en.tsv").read_text(encoding="utf-8").splitlines()
    dev = (folder / "dev-en.tsv").read_text(encoding="utf-8").splitlines()
    return train, dev, str(folder)


def write_input(scratch: Path, pairs: int) -> tuple[Path, int, str]:
    train, dev, origin = source_rows(scratch)
    repeats = -(-pairs // len(train))
    xnli = scratch / "xtreme" / "xnli"
    xnli.mkdir(parents=True, exist_ok=True)
    (xnli / "train-en.tsv").write_text("\n".join(train * repeats) + "\n", encoding="utf-8")
    (xnli / "dev-en.tsv").write_text("\n".join(dev) + "\n", encoding="utf-8")
    return xnli.parent, len(train) * repeats + len(dev), f"{origin} (train x{repeats})"


def _timed(commands: list[list[str]]) -> float:
    start = time.perf_counter()
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def ours(xtreme: Path, dict_dir: Path, out: Path) -> list[list[str]]:
    return [["bash", str(REPO / "preprocess" / "xtreme" / "process.sh"), str(xtreme), "xnli", str(dict_dir), str(out)]]


def classic(xtreme: Path, dict_dir: Path, out: Path, spm_encode: str | None, workers: int) -> list[list[str]]:
    """Columns cut, texts to pieces, every column binarised (train and dev)."""
    bin_dir = Path(sys.executable).parent
    text = out / "text"
    text.mkdir(parents=True, exist_ok=True)
    model = str(dict_dir / "sentencepiece.bpe.model")
    commands = []
    for split, name in (("train", "train-en.tsv"), ("valid", "dev-en.tsv")):
        for column, field in (("input0", 1), ("input1", 2), ("label", 3)):
            commands.append(
                [
                    "bash",
                    "-c",
                    f'cut -f{field} "$0" > "$1"',
                    str(xtreme / "xnli" / name),
                    str(text / f"{split}.raw.{column}"),
                ]
            )
        for column in ("input0", "input1"):
            raw, pieces = str(text / f"{split}.raw.{column}"), str(text / f"{split}.{column}")
            if spm_encode:
                commands.append(
                    [
                        sys.executable,
                        spm_encode,
                        "--model",
                        model,
                        "--output_format",
                        "piece",
                        "--inputs",
                        raw,
                        "--outputs",
                        pieces,
                    ]
                )
            else:
                commands.append([sys.executable, "-c", SPM_ENCODE_STANDIN, model, raw, pieces])
    for column in ("input0", "input1", "label"):
        source = "raw.label" if column == "label" else column
        dictionary = [] if column == "label" else ["--srcdict", str(dict_dir / "dict.txt")]
        commands.append(
            [
                str(bin_dir / "fairseq-preprocess"),
                "--only-source",
                "--trainpref",
                str(text / f"train.{source}"),
                "--validpref",
                str(text / f"valid.{source}"),
                "--destdir",
                str(out / "bin" / column),
                "--workers",
                str(workers),
                *dictionary,
            ]
        )
    return commands


def compare_preprocessing(
    scratch: Path, dict_dir: Path, pairs: int, spm_encode: str | None, workers: int = 2, repeats: int = 1
) -> dict:
    """Wall seconds of both pipelines on the same input (alternating, ``repeats`` times each)."""
    xtreme, n_pairs, origin = write_input(scratch, pairs)
    times = {"ours": [], "classic": []}
    for repeat in range(repeats):
        order = ["ours", "classic"] if repeat % 2 == 0 else ["classic", "ours"]
        for name in order:
            out = scratch / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            commands = (
                ours(xtreme, dict_dir, out) if name == "ours" else classic(xtreme, dict_dir, out, spm_encode, workers)
            )
            times[name].append(_timed(commands))
    return {
        "pairs": n_pairs,
        "input": origin,
        "times": times,
        "spm_encode": spm_encode or "one-process stand-in (fairseq's scripts/spm_encode.py not given)",
    }
