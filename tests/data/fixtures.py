"""Writers of tiny datasets in the real public formats, used by the reader tests.

Frames are solid colours that encode their frame number (steps survive JPEG / H.264), and masks are squares whose
size encodes the frame number, so a test can check that every sampled frame got its own mask.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import av
import numpy as np
from PIL import Image

from sa2va.grounding.masks import mask_to_rle


def code_color(index: int) -> tuple[int, int, int]:
    """Frame number (< 100) -> solid colour."""
    return 20 + 20 * (index % 10), 20 + 20 * (index // 10), 128


def decode_color(image: Image.Image) -> int:
    red, green, _ = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(0)
    return int(round((green - 20) / 20)) * 10 + int(round((red - 20) / 20))


def code_frame(index: int, width: int, height: int) -> np.ndarray:
    return np.broadcast_to(np.array(code_color(index), np.uint8), (height, width, 3)).copy()


def square_mask(height: int, width: int, x: int, y: int, side: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[y : y + side, x : x + side] = True
    return mask


def frame_mask(index: int, height: int, width: int, offset: int = 0) -> np.ndarray:
    """The mask of an object on frame `index`: a square whose side is `index + 1` (+ offset per object)."""
    return square_mask(height, width, 1 + offset, 1, index + 1)


def write_jpeg_frames(folder: Path, names: list[str], width: int, height: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        Image.fromarray(code_frame(index, width, height)).save(folder / f"{name}.jpg", quality=95)


def write_mp4(path: Path, num_frames: int, width: int = 64, height: int = 48, rate: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(code_frame(index, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, width: int, height: int, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_pickle(path: Path, data: object, protocol: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def rle(mask: np.ndarray, compress: bool = True) -> dict:
    return mask_to_rle(mask, compress=compress)


SQUARE = [5, 5, 15, 5, 15, 15, 5, 15]  # integer-vertex square: pycocotools fills exactly 10 x 10 = 100 pixels
