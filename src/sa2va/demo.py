"""`sa2va demo`: the embedded model on the bundled example image and video, written to one folder.

    make demo                       # = sa2va demo --out demo_out
    sa2va demo --model Sa2VA-4B     # the same requests with another checkpoint

Writes, atomically (a temporary folder renamed at the end):

    image_overlay.png   the example image with every referred shape in its palette colour (upscaled 3x to see it)
    image_gcg.png       the grounded caption's masks, one colour per phrase
    image_masks/        one PNG per referring answer
    video_overlay.gif   the tracked shape through the example video (animated)
    video_masks/        one PNG per frame
    answers.json        every prompt with its text answer, phrases and mask files
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent / "assets" / "examples"
IMAGE_REQUESTS = ("the red circle", "the largest shape")  # referring expressions tried on the example image
IMAGE_QUESTIONS = ("How many shapes are there?",)
VIDEO_EXPRESSION = "the shape moving right"
_SCALE = 3  # the scenes are 128 px; overlays are upscaled so a reader can see them


def example_image() -> Image.Image:
    """The bundled example image (a held-out scene)."""
    with Image.open(EXAMPLES / "image.png") as image:
        return image.convert("RGB")


def example_video() -> list[Image.Image]:
    """The bundled example video's frames (a held-out scene)."""
    frames = sorted((EXAMPLES / "video").glob("*.png"))
    return [Image.open(f).convert("RGB") for f in frames]


def _upscaled(image: Image.Image) -> Image.Image:
    return image.resize((image.width * _SCALE, image.height * _SCALE), Image.Resampling.NEAREST)


def run_demo(model, out: str | os.PathLike[str]) -> dict:
    """Run the demo requests with `model` and write everything under `out` (must not exist or be empty).

    Returns:
        The contents of `answers.json`.
    """
    from sa2va.checkpoints.safe_io import atomic_folder
    from sa2va.grounding.masks import save_mask_png
    from sa2va.overlay import overlay_masks

    image, frames = example_image(), example_video()
    answers: dict = {"image": [], "video": []}
    with atomic_folder(out) as staging:
        (staging / "image_masks").mkdir()
        referred: dict[int, np.ndarray] = {}
        for expression in IMAGE_REQUESTS:
            output = model.predict(image=image, text=f"<image>\nPlease segment {expression} in this image.")
            files = []
            for mask in output.masks:
                index = len(referred)
                referred[index] = np.asarray(mask, dtype=bool).reshape(image.height, image.width)
                files.append(f"image_masks/{index}_{expression.replace(' ', '_')}.png")
                save_mask_png(referred[index], staging / files[-1])
            answers["image"].append({"prompt": expression, "text": output.text, "masks": files})
        _upscaled(overlay_masks(image, referred)).save(staging / "image_overlay.png")
        for question in IMAGE_QUESTIONS:
            output = model.predict(image=image, text=f"<image>\n{question}")
            answers["image"].append({"prompt": question, "text": output.text})
        from sa2va.data.scenes_dataset import GCG_EVAL_QUESTION

        output = model.predict(image=image, text=f"<image>\n{GCG_EVAL_QUESTION}")
        phrases = {p.mask_index: p.text for p in output.phrases if p.mask_index is not None}
        gcg_masks = {i: np.asarray(m, dtype=bool).reshape(image.height, image.width) for i, m in enumerate(output.masks)}
        _upscaled(overlay_masks(image, gcg_masks)).save(staging / "image_gcg.png")
        answers["image"].append({"prompt": "grounded caption", "text": output.text,
                                 "phrases": [phrases.get(i) for i in range(len(gcg_masks))]})  # fmt: skip

        (staging / "video_masks").mkdir()
        output = model.predict(video=frames, text=f"<image>\nPlease segment {VIDEO_EXPRESSION}.")
        track = np.asarray(output.masks[0], dtype=bool) if output.masks else np.zeros((len(frames), *image.size[::-1]), bool)
        overlays = []
        for t, frame in enumerate(frames):
            save_mask_png(track[t], staging / "video_masks" / f"{t:05d}.png")
            overlays.append(_upscaled(overlay_masks(frame, {0: track[t]})))
        overlays[0].save(staging / "video_overlay.gif", save_all=True, append_images=overlays[1:], duration=250, loop=0)
        answers["video"].append({"prompt": VIDEO_EXPRESSION, "text": output.text, "masks": "video_masks/"})
        (staging / "answers.json").write_text(json.dumps(answers, indent=2))
    return answers


__all__ = ["EXAMPLES", "example_image", "example_video", "run_demo"]
