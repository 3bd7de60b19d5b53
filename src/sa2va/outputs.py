"""Typed results of Sa2VA inference."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from sa2va.grounding.gcg import GroundedPhrase


@dataclass
class ChatHistory:
    """A conversation so far, to pass back as `history=` for the next turn.

    Attributes:
        past_text: the previous turns exactly as the model saw them (the reference's `past_text`).
        turns: `(user text, clean answer)` pairs, for display.
    """

    past_text: str = ""
    turns: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Sa2VAOutput:
    """One answer.

    Attributes:
        text: the answer with special tokens, `<p>`/`</p>` and `[SEG]` removed.
        raw_text: the answer as generated, special tokens kept (the reference's `prediction`).
        masks: one bool array `(num_frames, height, width)` per `[SEG]`, in order (`num_frames == 1` for an image).
        phrases: grounded phrases of a GCG answer, each with the index of its mask in `masks`.
        history: the conversation including this turn.
    """

    text: str
    raw_text: str
    masks: list[np.ndarray] = field(default_factory=list)
    phrases: list[GroundedPhrase] = field(default_factory=list)
    history: ChatHistory = field(default_factory=ChatHistory)


@dataclass
class Sa2VATrainingOutput:
    """Losses of one training forward (all scalars).

    Attributes:
        loss: `llm_loss + mask_bce + mask_dice`, what is back-propagated.
        llm_loss: next-token cross-entropy over answer tokens.
        mask_bce: 2.0 × point-sampled BCE of the masks.
        mask_dice: 0.5 × Dice of the masks.
        mask_iou: mean IoU of the thresholded low-res masks (monitoring only; NaN without masks).
    """

    loss: torch.Tensor
    llm_loss: torch.Tensor
    mask_bce: torch.Tensor
    mask_dice: torch.Tensor
    mask_iou: torch.Tensor


class VideoStream:
    """The answer about a video, with its masks streamed frame by frame.

    The text fields are ready at once; iterating yields `(frame_idx, {obj_id: bool (H, W)})` for every frame in
    order (can be iterated once). `obj_id` is the index of the object's `[SEG]` in the answer, so `phrases[i]`
    with `mask_index == obj_id` names it.

    Attributes:
        text, raw_text, phrases, history: as in :class:`Sa2VAOutput`.
        object_ids: ids of the segmented objects (`range(number of [SEG])`).
        num_frames: T.
    """

    def __init__(self, text, raw_text, phrases, history, num_objects: int, num_frames: int, frames: Iterator):
        self.text = text
        self.raw_text = raw_text
        self.phrases = phrases
        self.history = history
        self.object_ids = list(range(num_objects))
        self.num_frames = num_frames
        self._frames = frames

    def __iter__(self) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        return self._frames


__all__ = ["Sa2VAOutput", "ChatHistory", "GroundedPhrase", "VideoStream", "Sa2VATrainingOutput"]
