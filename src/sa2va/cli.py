"""The `sa2va` command line. Each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import logging
import sys

from sa2va.checkpoints.hub import DEFAULT_MODEL
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


GCG_PROMPT = (
    "<image>\nCould you please give me a brief description of the image? Please respond with interleaved "
    "segmentation masks for the corresponding parts of the answer."
)
MODEL_HELP = f"checkpoint folder, released name (e.g. Sa2VA-4B) or Hub id (default: the embedded {DEFAULT_MODEL})"
DTYPES = {"float32": "float32", "bfloat16": "bfloat16"}


def _load_model(args: argparse.Namespace):
    import torch

    from sa2va.modeling.sa2va import Sa2VAModel

    device = getattr(args, "device", None)
    if device and device.startswith("cuda") and not torch.cuda.is_available():
        raise Sa2VAError("--device cuda was asked for, but no CUDA device is available.")
    dtype = getattr(torch, args.dtype) if getattr(args, "dtype", None) else None
    device_map = device if device and device != "cpu" else None
    return Sa2VAModel.from_pretrained(args.model, dtype=dtype, device_map=device_map).eval()


def _open_input(path: str):
    """`("image", PIL image)` or `("video", FrameSource)` for a file or folder; typed errors for bad paths."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    from sa2va.errors import Sa2VAInputError
    from sa2va.video.frames import IMAGE_EXTENSIONS, open_video

    source = Path(path).expanduser()
    if not source.exists():
        raise Sa2VAInputError(f"input '{source}' does not exist; expected an image, a video file or a frame folder.")
    if source.is_file() and source.suffix.lower() in IMAGE_EXTENSIONS:
        try:
            with Image.open(source) as image:
                return "image", image.convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise Sa2VAInputError(f"cannot read image '{source}': {error}") from error
    return "video", open_video(source)


def _with_image_token(text: str) -> str:
    return text if "<image>" in text else f"<image>\n{text}"


def _write_image_masks(image, masks, out: str | None, fmt: str, overlay: bool) -> None:
    """Write the `(1, H, W)` masks of an image answer (and its overlay) into `out`."""
    if not out:
        return
    from pathlib import Path

    from sa2va.overlay import MaskWriter, overlay_masks, save_image_atomic

    writer = MaskWriter(out, fmt)
    try:
        for obj_id, mask in enumerate(masks):
            for t in range(mask.shape[0]):
                writer.add(obj_id, t, mask[t])
    except BaseException:
        writer.abort()
        raise
    writer.close()
    if overlay:
        frame_masks = {obj_id: mask[0] for obj_id, mask in enumerate(masks)}
        save_image_atomic(overlay_masks(image, frame_masks), Path(out) / "overlay.png")
    print(f"wrote {writer.count} mask(s) to {out}", file=sys.stderr)


def _stream_video_masks(stream, video, out: str | None, fmt: str, overlay: bool) -> None:
    """Consume a `VideoStream` frame by frame, writing masks (and overlays) into `out`."""
    from pathlib import Path

    from tqdm import tqdm

    from sa2va.overlay import MaskWriter, mask_name, overlay_masks, save_image_atomic

    writer = MaskWriter(out, fmt) if out else None
    try:
        for t, frame_masks in tqdm(stream, total=stream.num_frames, desc="frames", unit="frame", file=sys.stderr):
            if writer is None:
                continue
            for obj_id, mask in frame_masks.items():
                writer.add(obj_id, t, mask)
            if overlay:
                name = mask_name(0, t).replace("obj0_", "overlay_")
                save_image_atomic(overlay_masks(video.frame(t), frame_masks), Path(out) / f"{name}.png")
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
        print(f"wrote {writer.count} mask(s) to {out}", file=sys.stderr)


def _segment(args: argparse.Namespace) -> int:
    kind, data = _open_input(args.input)
    model = _load_model(args)
    text = args.text if "<image>" in args.text else f"<image>\nPlease segment {args.text}."
    if kind == "image":
        output = model.predict(image=data, text=text)
        print(output.text)
        _write_image_masks(data, output.masks, args.out, args.format, args.overlay)
    else:
        stream = model.predict_video_stream(data, text)
        print(stream.text)
        _stream_video_masks(stream, data, args.out, args.format, args.overlay)
    return 0


def _describe(args: argparse.Namespace) -> int:
    kind, data = _open_input(args.input)
    model = _load_model(args)
    if kind == "image":
        output = model.predict(image=data, text="<image>\nPlease describe the image in detail.")
    else:
        output = model.predict(video=data, text="<image>\nPlease describe the video in detail.")
    print(output.text)
    return 0


def _gcg(args: argparse.Namespace) -> int:
    kind, data = _open_input(args.image)
    if kind != "image":
        raise Sa2VAError(f"gcg takes an image; '{args.image}' is a video or a folder.")
    model = _load_model(args)
    output = model.predict(image=data, text=GCG_PROMPT)
    print(output.text)
    for phrase in output.phrases:
        target = "no mask" if phrase.mask_index is None else f"mask obj{phrase.mask_index}"
        print(f"  [{phrase.start}:{phrase.end}] {phrase.text} -> {target}")
    _write_image_masks(data, output.masks, args.out, args.format, args.overlay)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from pathlib import Path

    kind, data = _open_input(args.input)
    model = _load_model(args)
    media = {"image": data} if kind == "image" else {"video": data}
    history = None
    turn = 0
    while True:
        print("> ", end="", flush=True)
        line = sys.stdin.readline()
        text = line.strip()
        if not line or not text or text.lower() in ("exit", "quit"):
            break
        turn += 1
        output = model.predict(**media, text=_with_image_token(text) if history is None else text, history=history)
        history = output.history
        print(output.text, flush=True)
        if output.masks and args.out:
            folder = str(Path(args.out) / f"turn{turn:02d}")
            if kind == "image":
                _write_image_masks(data, output.masks, folder, args.format, args.overlay)
            else:
                from sa2va.overlay import MaskWriter

                writer = MaskWriter(folder, args.format)
                for obj_id, mask in enumerate(output.masks):
                    for t in range(mask.shape[0]):
                        writer.add(obj_id, t, mask[t])
                writer.close()
    return 0


def _serve(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise Sa2VAError(
            f"sa2va serve needs the serve extra ({', '.join(missing)} missing): pip install 'sa2va[serve]'."
        )
    from sa2va.serve import ServeLimits, run_server

    limits = ServeLimits(
        max_upload_mb=args.max_upload_mb,
        max_frames=args.max_frames,
        timeout_s=args.timeout_s,
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
    )
    model = _load_model(args)
    print(f"serving {args.model} on http://{args.host}:{args.port} (web UI at /, API docs at /docs)", file=sys.stderr)
    run_server(model, limits, host=args.host, port=args.port, model_id=args.model,
               log_level="info" if args.verbose else "warning")
    return 0


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default: cpu)")
    parser.add_argument(
        "--dtype", choices=list(DTYPES), help="weights dtype (default: bfloat16 on cuda, else float32)"
    )


def _add_mask_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="folder for the masks (created if needed)")
    parser.add_argument(
        "--format", choices=["png", "rle", "npz"], default="png",
        help="png: obj{i}_frame{t:05d}.png per object and frame; rle: one masks.json; npz: one masks.npz",
    )
    parser.add_argument("--overlay", action="store_true", help="also write coloured overlay PNG(s) into --out")


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
    evaluation.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
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

    segment = commands.add_parser("segment", help="segment what a text refers to in an image or video")
    segment.add_argument("input", help="image file, video file or folder of frames")
    segment.add_argument("text", help='what to segment, e.g. "the red car" (a text with <image> is used as is)')
    _add_model_options(segment)
    _add_mask_options(segment)
    segment.set_defaults(run=_segment)

    describe = commands.add_parser("describe", help="describe an image or video in detail")
    describe.add_argument("input", help="image file, video file or folder of frames")
    _add_model_options(describe)
    describe.set_defaults(run=_describe)

    gcg = commands.add_parser("gcg", help="grounded caption: a description with a mask per phrase")
    gcg.add_argument("image", help="image file")
    _add_model_options(gcg)
    _add_mask_options(gcg)
    gcg.set_defaults(run=_gcg)

    chat = commands.add_parser("chat", help="multi-turn chat about an image or video on stdin")
    chat.add_argument("input", help="image file, video file or folder of frames")
    _add_model_options(chat)
    _add_mask_options(chat)
    chat.set_defaults(run=_chat)

    from sa2va.serve.limits import ServeLimits

    defaults = ServeLimits()
    serve = commands.add_parser("serve", help="HTTP API and web UI for one model (needs the serve extra)")
    _add_model_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, local only)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    serve.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb,
                       help=f"largest upload in MiB; larger get 413 (default: {defaults.max_upload_mb:g})")
    serve.add_argument("--max-frames", type=int, default=defaults.max_frames,
                       help=f"most frames of a video; more get 413 (default: {defaults.max_frames})")
    serve.add_argument("--timeout-s", type=float, default=defaults.timeout_s,
                       help=f"seconds a request may queue and run; then 504 (default: {defaults.timeout_s:g})")
    serve.add_argument("--max-concurrency", type=int, default=defaults.max_concurrency,
                       help=f"inference worker threads (default: {defaults.max_concurrency})")
    serve.add_argument("--max-queue", type=int, default=defaults.max_queue,
                       help=f"requests waiting for a worker; beyond that 503 (default: {defaults.max_queue})")
    serve.set_defaults(run=_serve)

    scenes = commands.add_parser("scenes", help="write scenes-world data (the embedded model's) in the user format")
    scenes.add_argument("--out", required=True, metavar="DIR", help="new folder (reused when it holds the same scenes)")
    scenes.add_argument("--split", choices=["train", "test"], default="train",
                        help="train: conversations + region questions; test: held-out evaluation items")
    scenes.add_argument("--images", type=int, default=2000, help="image scenes (default: 2000)")
    scenes.add_argument("--videos", type=int, default=1000, help="video scenes (default: 1000)")
    scenes.add_argument("--first-seed", type=int, help="seed of the first scene (default: 0 train, 1000000 test)")
    scenes.set_defaults(run=_scenes)

    demo = commands.add_parser("demo", help="run a model on the bundled example image and video, write overlays")
    _add_model_options(demo)
    demo.add_argument("--out", default="demo_out", metavar="DIR", help="new folder for the results (default: demo_out)")
    demo.set_defaults(run=_demo)
    return parser


def _scenes(args: argparse.Namespace) -> int:
    from sa2va.data.scenes_dataset import write_scenes

    root = write_scenes(args.out, args.split, num_images=args.images, num_videos=args.videos, first_seed=args.first_seed)
    print(f"wrote {args.split} scenes to {root}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sa2va.demo import run_demo

    answers = run_demo(_load_model(args), args.out)
    for modality, entries in answers.items():
        for entry in entries:
            print(f"{modality}: {entry['prompt']!r} -> {entry['text']!r}")
    out = Path(args.out).resolve()
    print(f"overlays, masks and answers in {out}: image_overlay.png, image_gcg.png, video_overlay.gif, answers.json")
    return 0


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
