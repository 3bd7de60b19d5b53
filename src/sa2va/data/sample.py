"""`TrainingSample`: the one form every dataset reader produces and the collator consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass
class Turn:
    """One exchange of a conversation.

    Attributes:
        user: the user text; the first turn of an image/video sample starts with `"<image>\\n"`.
        assistant: the answer, with `[SEG]` where a mask is predicted and `<p> … </p>` around grounded phrases.
    """

    user: str
    assistant: str


@dataclass
class TrainingSample:
    """One training example, decoded and ready to tokenise.

    Attributes:
        conversation: the turns, in order.
        image: the image of an image sample (RGB PIL), or `None`.
        frames: the frames of a video sample (RGB PIL, already sampled, e.g. 5), or `None`.
        masks: one bool array per `[SEG]` of the conversation, in order of appearance: `(H, W)` for an image,
            `(num_frames, H, W)` for a video (the same object on every frame). Empty when there is no `[SEG]`.
        region_masks: `(num_regions, H, W)` bool visual-prompt regions ("region1", ...), or `None`.
        source: where it came from (`"dataset:file:record"`), for error messages and logs.
    """

    conversation: list[Turn]
    image: Image.Image | None = None
    frames: list[Image.Image] | None = None
    masks: list[np.ndarray] = field(default_factory=list)
    region_masks: np.ndarray | None = None
    source: str = ""

    @property
    def num_seg(self) -> int:
        return sum(turn.assistant.count("[SEG]") for turn in self.conversation)

    @property
    def modality_length(self) -> int:
        """Length key of the length-grouped sampler: images 100, videos 10000 (the reference's grouping)."""
        return 10000 if self.frames is not None else 100


__all__ = ["Turn", "TrainingSample"]
