"""``stabletune-extract-text``: the contexts of SQuAD-format QA files (XQuAD, MLQA, TyDiQA-GoldP, SQuAD) as plain
text for masked-LM training, one document per paragraph.

    stabletune-extract-text <file.json | folder> [...] <out-folder>

Every ``*.json`` given, or found under a folder given, becomes ``<out-folder>/<file name without .json>.txt``: its
distinct contexts in file order (each once, however many questions it has), separated by a blank line; line breaks
inside a context become spaces, so a paragraph stays one document of
``process.sh <out-folder> mlm`` (which holds out every 10th document, or ``valid/*.txt``). Real text only: nothing
is generated. Paragraphs of the QA files you evaluate on are then seen by the masked LM: keep those files out (or
their languages) when the QA scores matter.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from .console import bad_input_as_one_line, log_to_stderr

logger = logging.getLogger(__name__)


def qa_files(paths: list[str]) -> list[Path]:
    from ..data.errors import InputFormatError

    files = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(given.rglob("*.json"))
            if not found:
                raise InputFormatError(given, None, "no *.json file under this folder")
            files += found
        elif given.is_file():
            files.append(given)
        else:
            raise InputFormatError(given, None, "no such file or folder")
    return files


def extract(paths: list[str], out_dir: str) -> dict:
    """Write the paragraphs; return the counts per output file."""
    from ..data.errors import InputFormatError
    from ..data.readers.squad_json import read_squad_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts, written = {}, {}
    for path in qa_files(paths):
        target = out / (path.stem + ".txt")
        if target in written:
            raise InputFormatError(path, None, f"has the same name as {written[target]}: both would be {target}")
        written[target] = path
        seen, paragraphs, qa = set(), [], read_squad_file(path)
        for example in qa.examples:
            text = re.sub(r"\s*\n\s*", " ", example.context).strip()
            if text and text not in seen:
                seen.add(text)
                paragraphs.append(text)
        repeated = len(qa.examples)
        target.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
        counts[target.name] = {
            "source": str(path),
            "paragraphs": len(paragraphs),
            "questions": repeated,
            "characters": sum(len(p) for p in paragraphs),
        }
        logger.info(
            "%s -> %s: %d paragraphs (%d characters) from %d questions",
            path,
            target,
            len(paragraphs),
            counts[target.name]["characters"],
            repeated,
        )
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-extract-text", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sources", nargs="+", help="SQuAD-format JSON files or folders holding them")
    parser.add_argument("out_dir", help="folder for the <name>.txt files")
    args = parser.parse_args(argv)
    log_to_stderr()
    from ..data.errors import InputFormatError

    counts, status = bad_input_as_one_line(
        "stabletune-extract-text", extract, args.sources, args.out_dir, also=(InputFormatError,)
    )
    if status:
        return status
    total = sum(c["paragraphs"] for c in counts.values())
    print(f"wrote {total} paragraphs into {len(counts)} files in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
