"""One answered turn on a worker thread: prompt, model call, masks to COCO RLE and optional overlay PNGs."""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from sa2va.errors import Sa2VAInputError, Sa2VATimeoutError
from sa2va.grounding.gcg import GroundedPhrase
from sa2va.grounding.masks import mask_to_rle
from sa2va.outputs import ChatHistory
from sa2va.overlay import PALETTE, overlay_masks
from sa2va.serve.media import Media

IMAGE_TAG = "<image>"


def segment_prompt(text: str) -> str:
    """`/v1/segment` text: a referring expression ("the red car"), or a full prompt when it holds `<image>`."""
    text = text.strip()
    return text if IMAGE_TAG in text else f"{IMAGE_TAG}\nPlease segment {text.rstrip('.')}."


def chat_prompt(text: str, first_turn: bool) -> str:
    """`/v1/chat` text: the instruction as typed, with `<image>` put in front on the first turn."""
    text = text.strip()
    return f"{IMAGE_TAG}\n{text}" if first_turn and IMAGE_TAG not in text else text


def colour(object_id: int) -> tuple[int, int, int]:
    """The overlay colour of object `object_id` (the same palette as `sa2va.overlay`)."""
    return PALETTE[object_id % len(PALETTE)]


@dataclass
class TurnResult:
    """What one turn produced, ready to be serialised.

    Attributes:
        rles: per object (in `[SEG]` order), one compressed COCO RLE dict per frame.
        overlays: base64 PNG per frame when asked for, else None.
    """

    text: str
    raw_text: str
    phrases: list[GroundedPhrase]
    history: ChatHistory
    rles: list[list[dict]] = field(default_factory=list)
    overlays: list[str] | None = None


def run_turn(
    model,
    model_lock: threading.Lock,
    media: Media,
    prompt: str,
    history: ChatHistory | None,
    overlay: bool,
    cancel: threading.Event,
) -> TurnResult:
    """Answer `prompt` about `media` (blocking; call it on a worker thread).

    The model is used under `model_lock`: one generation at a time, because a model's generation hooks are shared.

    Raises:
        Sa2VAInputError: the model rejected the input (messages name the client's file, not the server's path).
        Sa2VATimeoutError: `cancel` was set while a video's frames were being tracked.
    """
    try:
        if media.kind == "image":
            return _image_turn(model, model_lock, media, prompt, history, overlay)
        return _video_turn(model, model_lock, media, prompt, history, overlay, cancel)
    except Sa2VAInputError as error:
        raise media.hide_path(error) from error


def _image_turn(model, model_lock, media, prompt, history, overlay) -> TurnResult:
    image = media.load_image()
    with model_lock:
        output = model.predict(image=image, text=prompt, history=history)
    rles = [[_rle(mask[0])] for mask in output.masks]  # mask: (1, H, W)
    overlays = None
    if overlay:
        overlays = [_png_base64(overlay_masks(image, {i: mask[0] for i, mask in enumerate(output.masks)}))]
    return TurnResult(output.text, output.raw_text, list(output.phrases), output.history, rles, overlays)


def _video_turn(model, model_lock, media, prompt, history, overlay, cancel) -> TurnResult:
    source = media.open_video()
    try:
        with model_lock:
            stream = model.predict_video_stream(source, prompt, history=history)
            rles: list[list[dict]] = [[] for _ in stream.object_ids]
            overlays: list[str] | None = [] if overlay else None
            frames_done = 0
            for t, frame_masks in stream:  # frame_masks: {obj_id: bool (H, W)}
                if cancel.is_set():
                    raise Sa2VATimeoutError("the request timed out while its video was being tracked.")
                for obj_id, mask in frame_masks.items():
                    rles[obj_id].append(_rle(mask))
                if overlays is not None:
                    overlays.append(_png_base64(overlay_masks(source.frame(t), frame_masks)))
                frames_done += 1
        if overlays is not None and frames_done == 0:  # no [SEG]: the frames as they are
            for t in range(len(source)):
                if cancel.is_set():
                    raise Sa2VATimeoutError("the request timed out while its overlays were being drawn.")
                overlays.append(_png_base64(source.frame(t)))
        return TurnResult(stream.text, stream.raw_text, list(stream.phrases), stream.history, rles, overlays)
    finally:
        source.close()


def _rle(mask: np.ndarray) -> dict:
    return mask_to_rle(np.asarray(mask, dtype=bool), compress=True)


def _png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


__all__ = ["TurnResult", "run_turn", "segment_prompt", "chat_prompt", "colour"]
