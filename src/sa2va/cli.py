"""The `sa2va` command line. Each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import logging
import sys

from sa2va.errors import Sa2VAError

EXIT_USER_ERROR = 2


def _convert(args: argparse.Namespace) -> int:
    from sa2va.checkpoints.convert import export_official
    from sa2va.checkpoints.safe_io import atomic_folder
    from sa2va.configuration import ORIGINAL_SAM2_DEFAULTS
    from sa2va.modeling.sa2va import Sa2VAModel

    sam2 = None
    if args.sam2:
        sam2 = {}
        for item in args.sam2:
            key, _, value = item.partition("=")
            if key not in ORIGINAL_SAM2_DEFAULTS or not value:
                raise Sa2VAError(f"--sam2 takes NAME=VALUE with NAME in {', '.join(ORIGINAL_SAM2_DEFAULTS)}; got {item!r}")
            sam2[key] = eval_literal(value)
    model = Sa2VAModel.from_pretrained(args.src, sam2_config=sam2, allow_pickle=args.allow_pickle)
    if args.to == "official":
        export_official(model, args.dst)
    else:
        with atomic_folder(args.dst) as staging:
            model.save_pretrained(staging)
    print(f"wrote {args.to} checkpoint to {args.dst}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from sa2va.train.config import load_config
    from sa2va.train.recipe import TrainRecipe

    recipe = TrainRecipe(load_config(args.config, args.overrides))
    recipe.setup(resume=not args.no_resume)
    history = recipe.train()
    if args.export:
        recipe.export(args.export, layout=args.export_layout)
    if recipe.accelerator.is_main_process and history:
        last = history[-1]
        print(f"trained {last['step']} steps: loss {last['loss']:.4f}, mask IoU {last['mask_iou']:.3f}; "
              f"checkpoint in {recipe.config.output_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from sa2va.eval.runner import evaluate, write_submission
    from sa2va.modeling.sa2va import Sa2VAModel

    if not args.model:
        raise Sa2VAError("--model is required: a checkpoint folder, released name or Hub id.")
    options = {}
    if args.text_encoder:
        if args.benchmark != "gcg":
            raise Sa2VAError("--text-encoder only applies to --benchmark gcg (phrase similarity of the recall).")
        from sa2va.eval.gcg import bert_text_encoder

        options["text_encoder"] = bert_text_encoder(args.text_encoder)
    model = Sa2VAModel.from_pretrained(args.model, allow_pickle=args.allow_pickle).eval()
    metrics = evaluate(model, args.benchmark, args.split, args.data_root, args.out, benchmark_options=options or None)
    if metrics.get("merged") is False:
        print(f"shard {metrics['shard']} of {metrics['count']} done; shard 0 merges into {args.out}")
        return 0
    if args.submit:
        print(f"wrote submission {write_submission(args.out)}")
    scores = ", ".join(
        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
        for k, v in metrics.items()
        if k not in ("benchmark", "split") and not isinstance(v, dict)
    )
    print(f"{args.benchmark} {args.split}: {scores}; results in {args.out}")
    return 0


def eval_literal(text: str):
    """Parse a Python/JSON literal (`[1, 2]`, `144`), or keep the text as a string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sa2va", description="Sa2VA: grounded chat and segmentation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="convert a checkpoint between the official layout and ours")
    convert.add_argument("src", help="checkpoint folder, released name or Hub id")
    convert.add_argument("dst", help="new folder to write (must not exist or be empty)")
    convert.add_argument("--to", choices=["official", "native"], required=True, help="layout to write")
    convert.add_argument("--allow-pickle", action="store_true", help="accept pytorch_model*.bin (trusted files only)")
    convert.add_argument(
        "--sam2", nargs="*", metavar="NAME=VALUE", help="SAM2 image-encoder parameters of an official checkpoint "
        "that does not use hiera-L, e.g. embed_dim=96 num_heads=1 'stages=[1,2,7,2]'"
    )
    convert.set_defaults(run=_convert)

    train = commands.add_parser("train", help="train or fine-tune Sa2VA (see configs/ and docs/data_format.md)")
    train.add_argument("--config", required=True, help="training YAML")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. lr=1e-4 max_steps=50")
    train.add_argument("--no-resume", action="store_true", help="ignore a checkpoint in output_dir")
    train.add_argument("--export", metavar="DIR", help="after training, write the merged model here")
    train.add_argument("--export-layout", choices=["native", "official"], default="native")
    train.set_defaults(run=_train)

    from sa2va.eval.benchmarks import BENCHMARKS

    evaluation = commands.add_parser("eval", help="evaluate a model on a benchmark split (RefCOCO family, MeViS, ...)")
    evaluation.add_argument("--model", help="checkpoint folder, released name or Hub id")
    evaluation.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    evaluation.add_argument("--split", required=True, help="e.g. val, testA, test, valid_u, valid")
    evaluation.add_argument("--data-root", required=True, help="the reference's data/ folder (or the dataset folder)")
    evaluation.add_argument("--out", required=True, help="results folder; an existing one resumes")
    evaluation.add_argument(
        "--text-encoder", metavar="NAME_OR_PATH",
        help="gcg only: a BERT-style model for the recall's phrase similarity, as the paper "
        "(bert-base-uncased); default: a bag-of-words stand-in whose recall is not comparable to the paper",
    )
    evaluation.add_argument("--submit", action="store_true", help="video: also write Annotations/ PNGs and a zip")
    evaluation.add_argument(
        "--allow-pickle", action="store_true", help="accept pytorch_model*.bin (trusted files only)"
    )
    evaluation.set_defaults(run=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.run(args)
    except Sa2VAError as error:
        print(f"sa2va {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
