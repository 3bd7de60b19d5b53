"""The scenes world: procedural images and videos of coloured shapes, deterministic by seed.

A scene holds 2–4 shapes (circle, square, triangle) in one of six colours and two sizes, placed with some overlap
(the later shape hides part of the earlier one) and, in videos, moving up, down, left or right at a constant speed or
staying still. Everything a training sample or an evaluation item needs derives from the scene: frames, the visible
mask of every shape in every frame, referring expressions (by attribute, relation, size, position and motion), QA
pairs (colour, shape, count, position, motion direction), a grounded caption and region questions
(:mod:`sa2va.data.scenes_language`).

```python
scene = make_scene(seed=7, video=True)
frame, masks = scene.render(0)     # (128, 128, 3) uint8, (num_objects, 128, 128) bool
```

This is the world the embedded `sa2va-tiny` model is trained and evaluated on (`configs/tiny_scenes.yaml`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 128
VIDEO_FRAMES = 8

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 225),
    "yellow": (235, 210, 40),
    "purple": (150, 70, 200),
    "white": (235, 235, 235),
}
SHAPES = ("circle", "square", "triangle")
# Radius (circumscribed-circle-like scale) of each size class, in pixels of a 128-pixel scene.
SIZES: dict[str, tuple[float, float]] = {"small": (10.0, 13.0), "large": (18.0, 23.0)}
DIRECTIONS: dict[str, tuple[int, int]] = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}

_MIN_VISIBLE = 0.65  # every shape keeps at least this share of its area visible in every frame
_MARGIN = 3  # pixels between a shape's extent and the border


@dataclass(frozen=True)
class SceneObject:
    """One shape. Positions are pixel centres at frame 0; velocities are pixels per frame.

    Attributes:
        shape, colour, size: names from :data:`SHAPES`, :data:`COLOURS`, :data:`SIZES`.
        radius: scale in pixels (a circle's radius; a square's half side is `0.85 × radius`).
        x, y: centre at frame 0.
        direction: a key of :data:`DIRECTIONS`, or `None` for a still shape.
        speed: pixels per frame along `direction`.
    """

    shape: str
    colour: str
    size: str
    radius: float
    x: float
    y: float
    direction: str | None = None
    speed: float = 0.0

    @property
    def name(self) -> str:
        """`"red circle"`."""
        return f"{self.colour} {self.shape}"

    def centre(self, t: int = 0) -> tuple[float, float]:
        dx, dy = DIRECTIONS[self.direction] if self.direction else (0, 0)
        return self.x + dx * self.speed * t, self.y + dy * self.speed * t

    def polygon(self, t: int = 0) -> list[tuple[float, float]] | None:
        """Vertices of a square or triangle at frame `t`; `None` for a circle."""
        cx, cy = self.centre(t)
        if self.shape == "square":
            h = 0.85 * self.radius
            return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
        if self.shape == "triangle":
            r = 1.15 * self.radius  # equilateral, pointing up, centred on its circumcentre
            return [(cx, cy - r), (cx + 0.866 * r, cy + 0.5 * r), (cx - 0.866 * r, cy + 0.5 * r)]
        return None

    def extent(self) -> float:
        """Half-width of the bounding box around the centre."""
        return {"circle": 1.0, "square": 0.85, "triangle": 1.15}[self.shape] * self.radius

    def full_mask(self, t: int, size: int) -> np.ndarray:
        """`(size, size)` bool mask of the whole shape at frame `t`, ignoring occlusion."""
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        polygon = self.polygon(t)
        if polygon is None:
            cx, cy = self.centre(t)
            r = self.radius
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        else:
            draw.polygon(polygon, fill=1)
        return np.asarray(canvas, dtype=bool)


@dataclass(frozen=True)
class Scene:
    """A generated scene: shapes in drawing order (later shapes cover earlier ones).

    Attributes:
        seed: the seed it was generated from.
        objects: the shapes, back to front.
        num_frames: 1 for an image.
        size: side in pixels.
        background: RGB of the backdrop.
    """

    seed: int
    objects: tuple[SceneObject, ...]
    num_frames: int = 1
    size: int = IMAGE_SIZE
    background: tuple[int, int, int] = (50, 50, 50)

    @property
    def is_video(self) -> bool:
        return self.num_frames > 1

    def masks(self, t: int = 0) -> np.ndarray:
        """`(num_objects, size, size)` bool visible masks at frame `t` (occluded parts removed)."""
        full = np.stack([o.full_mask(t, self.size) for o in self.objects])
        visible = full.copy()
        for i in range(len(self.objects)):
            visible[i] &= ~full[i + 1 :].any(axis=0)
        return visible

    def render(self, t: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """`(frame (size, size, 3) uint8, masks (num_objects, size, size) bool)` at frame `t`.

        The backdrop is a soft vertical gradient and each shape's colour is jittered by its scene seed, so no two
        scenes share exact pixel values; a frame renders identically every time.
        """
        masks = self.masks(t)
        rng = np.random.default_rng((self.seed, 17))
        shade = np.linspace(-12.0, 12.0, self.size, dtype=np.float32)[:, None, None]
        frame = np.broadcast_to(np.asarray(self.background, np.float32) + shade, (self.size, self.size, 3)).copy()
        for obj, mask in zip(self.objects, masks):
            frame[mask] = np.asarray(COLOURS[obj.colour], np.float32) + rng.uniform(-15, 15, 3)
        return np.clip(frame, 0, 255).astype(np.uint8), masks

    def frames(self) -> list[Image.Image]:
        """Every frame as a PIL image."""
        return [Image.fromarray(self.render(t)[0]) for t in range(self.num_frames)]

    def track_masks(self) -> np.ndarray:
        """`(num_objects, num_frames, size, size)` visible masks of every shape in every frame."""
        return np.stack([self.masks(t) for t in range(self.num_frames)], axis=1)


def make_scene(seed: int, video: bool = False, size: int = IMAGE_SIZE, num_frames: int = VIDEO_FRAMES) -> Scene:
    """Generate the scene of `seed` (images: 2–4 shapes; videos: 2–3 shapes, at least one moving).

    Shapes have distinct (colour, shape) pairs, stay inside the frame and keep at least 65 % of their area visible in
    every frame; moving shapes have distinct directions.
    """
    rng = np.random.default_rng((seed, int(video), 3))
    frames = num_frames if video else 1
    count = int(rng.integers(2, 4)) if video else int(rng.integers(2, 5))
    background = tuple(int(v) for v in rng.integers(25, 75, 3))
    for _ in range(1000):
        objects = _draw_objects(rng, count, video, size, frames)
        if objects is None:
            continue
        scene = Scene(seed, tuple(objects), frames, size, background)  # type: ignore[arg-type]
        if _visible_enough(scene):
            return scene
    raise RuntimeError(f"could not place {count} shapes for seed {seed}")  # never seen in practice


def _draw_objects(rng: np.random.Generator, count: int, video: bool, size: int, frames: int) -> list | None:
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    chosen = rng.choice(len(pairs), size=count, replace=False)
    directions: list[str | None] = [None] * count
    if video:
        moving = rng.permutation(list(DIRECTIONS))[: int(rng.integers(1, count + 1))]
        directions = [str(d) for d in moving] + [None] * (count - len(moving))
        directions = [directions[i] for i in rng.permutation(count)]
    objects = []
    for index, direction in zip(chosen, directions):
        colour, shape = pairs[int(index)]
        size_name = "small" if rng.random() < 0.5 else "large"
        radius = float(rng.uniform(*SIZES[size_name]))
        speed = float(rng.uniform(2.5, 3.5)) if direction else 0.0
        extent = {"circle": 1.0, "square": 0.85, "triangle": 1.15}[shape] * radius + _MARGIN
        travel = speed * (frames - 1)
        dx, dy = DIRECTIONS[direction] if direction else (0, 0)
        # the centre's range at frame 0 so that the whole path stays inside the frame
        lo_x = extent - min(dx, 0) * travel
        hi_x = size - extent - max(dx, 0) * travel
        lo_y = extent - min(dy, 0) * travel
        hi_y = size - extent - max(dy, 0) * travel
        if lo_x >= hi_x or lo_y >= hi_y:
            return None
        x, y = float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))
        objects.append(SceneObject(shape, colour, size_name, radius, x, y, direction, speed))
    return objects


def _visible_enough(scene: Scene) -> bool:
    for t in range(scene.num_frames):
        full = np.stack([o.full_mask(t, scene.size) for o in scene.objects]).sum(axis=(1, 2))
        visible = scene.masks(t).sum(axis=(1, 2))
        if (visible < _MIN_VISIBLE * full).any():
            return False
    return True


__all__ = [
    "COLOURS", "DIRECTIONS", "IMAGE_SIZE", "SHAPES", "SIZES", "VIDEO_FRAMES", "Scene", "SceneObject", "make_scene",
]
