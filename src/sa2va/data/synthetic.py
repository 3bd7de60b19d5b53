"""A tiny procedural referring-segmentation set: coloured shapes on plain backgrounds.

Deterministic per `(seed, index)`. Used by tests and benchmarks; the richer "scenes world" of the embedded tiny
model builds on the same idea.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from sa2va.data.sample import TrainingSample, Turn

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle")


class ShapesDataset:
    """`num_samples` images, each with one or two shapes; one referring turn per sample.

    Args:
        num_samples: dataset length.
        seed: base seed; sample `i` is generated from `(seed, i)`.
        image_size: square image side.
        answer: the assistant's answer template (must contain one `[SEG]`).
    """

    def __init__(self, num_samples: int = 64, seed: int = 0, image_size: int = 64, answer: str = "Sure, it is [SEG]."):
        self.num_samples = num_samples
        self.seed = seed
        self.image_size = image_size
        self.answer = answer

    def __len__(self) -> int:
        return self.num_samples

    @property
    def modality_lengths(self) -> list[int]:
        return [100] * self.num_samples  # all images

    def __getitem__(self, index: int) -> TrainingSample:
        rng = np.random.default_rng((self.seed, index))
        size = self.image_size
        image = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 60, 3)))
        draw = ImageDraw.Draw(image)
        colours = rng.choice(list(COLOURS), size=2, replace=False)
        target_mask = None
        shape = str(rng.choice(SHAPES))
        for k, colour in enumerate(colours[: 1 + int(rng.integers(0, 2))]):
            side = int(rng.integers(size // 5, size // 2))
            x, y = (int(v) for v in rng.integers(0, size - side, 2))
            box = (x, y, x + side, y + side)
            kind = shape if k == 0 else str(rng.choice(SHAPES))
            (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
            if k == 0:
                mask_image = Image.new("L", (size, size), 0)
                (ImageDraw.Draw(mask_image).ellipse if kind == "circle" else ImageDraw.Draw(mask_image).rectangle)(
                    box, fill=255
                )
                target_mask = np.asarray(mask_image) > 127
        # later shapes may cover the target: its mask is what stays visible
        visible = np.all(np.asarray(image) == np.array(COLOURS[colours[0]], dtype=np.uint8), axis=-1)
        target_mask = target_mask & visible
        question = f"<image>\nPlease segment the {colours[0]} {shape}."
        return TrainingSample(
            conversation=[Turn(question, self.answer)], image=image, masks=[target_mask], source=f"shapes:{index}"
        )


__all__ = ["ShapesDataset", "COLOURS", "SHAPES"]
