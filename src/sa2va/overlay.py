"""Coloured mask overlays and atomic image/mask writers used by the `sa2va` command line."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from sa2va.errors import Sa2VAInputError

#: Fixed RGB palette; object `i` gets colour `PALETTE[i % len(PALETTE)]`.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)

MaskFormat = Literal["png", "rle", "npz"]


def overlay_masks(image: Image.Image, masks: dict[int, np.ndarray], alpha: float = 0.5) -> Image.Image:
    """Blend each `(H, W)` bool mask of `masks` (keyed by object id) onto `image` with its palette colour."""
    canvas = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    for obj_id, mask in masks.items():
        region = np.asarray(mask, dtype=bool)
        if region.shape != canvas.shape[:2]:
            raise Sa2VAInputError(f"mask of shape {region.shape} does not match image of size {canvas.shape[:2]}")
        colour = np.asarray(PALETTE[obj_id % len(PALETTE)], dtype=np.float32)
        canvas[region] = (1 - alpha) * canvas[region] + alpha * colour
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))


def _temp_path(destination: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(fd)
    return Path(name)


def save_image_atomic(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write `image` as PNG to `path` via a temporary file in the same folder and `os.replace`."""
    destination = Path(path)
    temp = _temp_path(destination)
    try:
        image.save(temp, format="PNG")
        os.replace(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
    return destination


def mask_name(obj_id: int, frame: int) -> str:
    return f"obj{obj_id}_frame{frame:05d}"


class MaskWriter:
    """Writes masks frame by frame into `folder`: PNGs, one `masks.json` (compressed RLE) or one `masks.npz`.

    Nothing of size `T × H × W` is held: PNGs are written at once, RLE strings are small, and the npz archive is
    streamed member by member. `masks.json` / `masks.npz` appear (atomically) on :meth:`close`.
    """

    def __init__(self, folder: str | os.PathLike[str], fmt: MaskFormat = "png") -> None:
        if fmt not in ("png", "rle", "npz"):
            raise Sa2VAInputError(f"unknown mask format {fmt!r}; expected png, rle or npz")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.format = fmt
        self.count = 0
        self._rle: dict[str, dict] = {}
        self._zip: zipfile.ZipFile | None = None
        self._zip_temp: Path | None = None
        if fmt == "npz":
            self._zip_temp = _temp_path(self.folder / "masks.npz")
            self._zip = zipfile.ZipFile(self._zip_temp, "w", compression=zipfile.ZIP_DEFLATED)

    def add(self, obj_id: int, frame: int, mask: np.ndarray) -> None:
        from sa2va.grounding.masks import mask_to_rle, save_mask_png

        name = mask_name(obj_id, frame)
        if self.format == "png":
            save_mask_png(mask, self.folder / f"{name}.png")
        elif self.format == "rle":
            rle = mask_to_rle(np.asarray(mask, dtype=bool), compress=True)
            if isinstance(rle.get("counts"), bytes):
                rle = {**rle, "counts": rle["counts"].decode("ascii")}
            self._rle[name] = rle
        else:
            assert self._zip is not None
            with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(mask, dtype=bool), allow_pickle=False)
        self.count += 1

    def close(self) -> None:
        """Finish `masks.json` / `masks.npz` (no-op for PNGs)."""
        if self.format == "rle":
            destination = self.folder / "masks.json"
            temp = _temp_path(destination)
            try:
                temp.write_text(json.dumps(self._rle))
                os.replace(temp, destination)
            finally:
                temp.unlink(missing_ok=True)
        elif self._zip is not None and self._zip_temp is not None:
            self._zip.close()
            self._zip = None
            try:
                os.replace(self._zip_temp, self.folder / "masks.npz")
            finally:
                self._zip_temp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop a half-written archive."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._zip_temp is not None:
            self._zip_temp.unlink(missing_ok=True)


__all__ = ["PALETTE", "overlay_masks", "save_image_atomic", "MaskWriter", "mask_name"]
