"""``stabletune-export hf <checkpoint> <out>``: a checkpoint as a Hugging Face folder (model, config with the
label names, tokenizer), loadable offline by ``transformers`` (``from_pretrained``, ``pipeline``)."""

from __future__ import annotations

import argparse
import sys

from .console import bad_input_as_one_line, log_to_stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabletune-export", description=__doc__)
    formats = parser.add_subparsers(dest="format", required=True, metavar="{hf}")
    hf = formats.add_parser("hf", help="a Hugging Face transformers folder")
    hf.add_argument("checkpoint", help="a fine-tuned checkpoint (e.g. <save>/checkpoint_best.pt) or a release model.pt")
    hf.add_argument("out_dir", help="new folder for config.json, model.safetensors and the tokenizer")
    hf.add_argument(
        "--task-dir",
        default=None,
        help="the data folder (dict.txt, sentencepiece.bpe.model) if the one recorded in the checkpoint has moved",
    )
    args = parser.parse_args(argv)
    log_to_stderr()
    from ..convert.hf_names import import_transformers

    try:
        import_transformers()
    except ImportError:
        print("stabletune-export: needs transformers: bash install.sh --hf", file=sys.stderr)
        return 2
    from ..convert.fairseq_to_hf import export_hf

    out, status = bad_input_as_one_line("stabletune-export", export_hf, args.checkpoint, args.out_dir, args.task_dir)
    if status:
        return status
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
