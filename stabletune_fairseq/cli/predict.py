"""``stabletune-predict``: predict with a fine-tuned checkpoint on raw text, one input a line, one JSON line out.

Input (``--input``, default standard input), by the checkpoint's task family:
  sentence pairs (XNLI, PAWS-X)     text_a<TAB>text_b
  tagging (UD-POS, PAN-X)            one sentence a line, its words separated by whitespace
  QA (XQuAD, MLQA, TyDiQA, SQuAD)    a JSON object {"question": ..., "context": ...} (an "id" is kept)
Output (``--output``, default standard output): a JSON object per input, in input order:
  {"label", "score", "scores"}; {"words", "tags", "scores"}; {"answer", "score", "start", "end"}.

Inputs are encoded as process.sh encodes a split (with the task folder's dictionary, lengths and windows)
and predicted as stabletune-evaluate predicts: see docs/prediction.md. Cut inputs are counted in a warning.
Bad input (a pair line without a tab, a line that is no JSON object with the two strings, a blank line,
no input at all) stops before the model is loaded: ``stabletune-predict: <file>:<line>: <reason>``, exit
status 2, as for a wrong checkpoint or task folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .console import add_precision_option, bad_input_as_one_line

PROG = "stabletune-predict"


def read_raw_inputs(kind: str, task: str, path: str | None) -> list:
    from ..data.text_lines import decode_lines, read_lines
    from ..inference.raw_inputs import read_inputs

    if path is None or path == "-":
        return read_inputs(kind, task, decode_lines(sys.stdin.buffer, "<stdin>"), "<stdin>")
    return read_inputs(kind, task, read_lines(path), path)


def predict(args) -> list[dict]:
    from ..data.metadata import load_metadata
    from ..inference.loaded_model import load_model
    from ..models.checkpoint_loading import recorded_task_folder

    task_dir = args.task_dir or recorded_task_folder(args.checkpoint)
    metadata = load_metadata(task_dir)
    # Every input is read and checked before the model is loaded (seconds), then all are predicted.
    inputs = read_raw_inputs(metadata["kind"], metadata["task"], args.input)
    model = load_model(args.checkpoint, task_dir, "cpu" if args.cpu else None, args.batch_size, args.precision)
    return model.predict(inputs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="fine-tuned checkpoint, e.g. <save_dir>/checkpoint_best.pt")
    parser.add_argument(
        "--task-dir",
        default=None,
        help="task folder written by process.sh, e.g. <out>/xnli (default: the one the checkpoint was trained on)",
    )
    parser.add_argument("--input", default=None, help="input file, one input a line (default: standard input)")
    parser.add_argument("--output", default=None, help="output file, JSON lines (default: standard output)")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs (QA: context windows) per batch")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    add_precision_option(parser)
    args = parser.parse_args(argv)
    # stdout carries the predictions: the log goes to stderr, our own lines and everyone's warnings only.
    logging.basicConfig(
        level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s", stream=sys.stderr, force=True
    )
    logging.getLogger("stabletune_fairseq.inference").setLevel(logging.INFO)
    logging.captureWarnings(True)  # libraries' warnings.warn (torch's pin_memory note on CPU): not for the user,
    logging.getLogger("py.warnings").setLevel(logging.ERROR)  # as stabletune-evaluate keeps them off its console
    results, status = bad_input_as_one_line(PROG, predict, args, also=(FileNotFoundError, ValueError))
    if status:
        return status
    text = "".join(json.dumps(result, ensure_ascii=False) + "\n" for result in results)
    if args.output is None:
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
