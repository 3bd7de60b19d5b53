"""SAM2 low-resolution logits into boolean masks at the original image size, and masks into COCO RLE and PNG files."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sa2va.errors import Sa2VAInputError

# --------------------------------------------------------------------------------------------------------------------
# Logits -> masks
# --------------------------------------------------------------------------------------------------------------------


def logits_to_masks(low_res_logits: torch.Tensor, original_size: tuple[int, int], sam_image_size: int) -> torch.Tensor:
    """Upsample SAM2 mask logits to the original image size and threshold them.

    The upsampling is done in two bilinear stages (``align_corners=False``): first to SAM2's square input size, then
    to the original size. This is not the same as one direct resize: the reference predictor first brings its
    ``256²`` logits to the ``1024²`` "video resolution" (``_get_orig_video_res_output``) and ``predict_forward`` then
    resizes those to ``(H, W)`` (spec §1.11), so mask borders only match the reference bit for bit this way. Logits
    are cast to float32 first, as the reference does before its first resize.

    The threshold is ``sigmoid(logit) > 0.5`` in float32, as in the reference; this equals ``logit > 0`` except for
    tiny positive logits (below about ``1e-7``), where the float32 sigmoid rounds to exactly 0.5.

    Args:
        low_res_logits: ``(num_masks, h_low, w_low)`` or ``(num_masks, 1, h_low, w_low)`` mask logits, any float
            dtype and device (``h_low = w_low = 256`` for SAM2 at 1024²).
        original_size: ``(height, width)`` of the original image.
        sam_image_size: Side of SAM2's square input (1024).

    Returns:
        ``(num_masks, height, width)`` bool on the input's device.

    Raises:
        Sa2VAInputError: If the logits do not have one of the two shapes above or the sizes are not positive.
    """
    if low_res_logits.ndim == 4 and low_res_logits.shape[1] == 1:
        logits = low_res_logits
    elif low_res_logits.ndim == 3:
        logits = low_res_logits[:, None]
    else:
        raise Sa2VAInputError(
            f"Mask logits have shape {tuple(low_res_logits.shape)}; expected (num_masks, h, w) or (num_masks, 1, h, w)."
        )
    height, width = original_size
    if height < 1 or width < 1 or sam_image_size < 1:
        raise Sa2VAInputError(
            f"Sizes must be positive, got original_size=(height={height}, width={width}), "
            f"sam_image_size={sam_image_size}."
        )
    logits = logits.float()  # (num_masks, 1, h_low, w_low)
    if logits.shape[0] == 0:
        return torch.zeros((0, height, width), dtype=torch.bool, device=logits.device)
    square = F.interpolate(logits, size=(sam_image_size, sam_image_size), mode="bilinear", align_corners=False)
    full = F.interpolate(square, size=(height, width), mode="bilinear", align_corners=False)  # (num_masks, 1, H, W)
    return full[:, 0].sigmoid() > 0.5


# --------------------------------------------------------------------------------------------------------------------
# COCO run-length encoding
# --------------------------------------------------------------------------------------------------------------------


def _check_mask(mask: np.ndarray) -> np.ndarray:
    if not isinstance(mask, np.ndarray):
        raise Sa2VAInputError(f"Expected a numpy array mask of shape (height, width), got {type(mask).__name__}.")
    if mask.ndim != 2:
        raise Sa2VAInputError(
            f"Mask has shape {mask.shape}; expected (height, width). Select one mask/frame first, e.g. masks[0]."
        )
    return mask.astype(bool, copy=False)


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO run lengths of a mask.

    Pixels are read in column-major (Fortran) order; runs alternate background/foreground, starting with background
    (so the first count is 0 when the top-left pixel is set). Like pycocotools, the last run is always written, so an
    empty ``0 x 0`` mask gives ``[0]``.

    Args:
        mask: ``(height, width)`` mask; nonzero means foreground.

    Returns:
        Run lengths summing to ``height * width``.

    Raises:
        Sa2VAInputError: If ``mask`` is not a 2-D numpy array.
    """
    flat = _check_mask(mask).ravel(order="F")
    if flat.size == 0:
        return [0]
    # Run boundaries are where the value changes; a leading True needs an empty background run first.
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    boundaries = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(boundaries).tolist()
    return [0, *counts] if flat[0] else counts


def counts_to_string(counts: list[int]) -> str:
    """Compress run lengths into COCO's ASCII string (pycocotools ``rleToString``).

    Each count, minus the count two positions earlier for the fourth count onwards (pycocotools starts the
    differencing at index 3, not 2), is written as a little-endian sequence of 5-bit groups. Each group becomes
    ``chr(48 + group)``, with bit ``0x20`` set when more groups follow; the last group's bit ``0x10`` is the sign.

    Args:
        counts: Run lengths as from :func:`mask_to_counts`.

    Returns:
        The compressed counts string (pycocotools returns the same characters as ``bytes``).
    """
    chars: list[str] = []
    for i, count in enumerate(counts):
        value = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5  # arithmetic shift: negative values converge to -1
            more = value != -1 if group & 0x10 else value != 0
            chars.append(chr(48 + (group | 0x20 if more else group)))
    return "".join(chars)


def string_to_counts(text: str | bytes) -> list[int]:
    """Decode COCO's compressed counts string back into run lengths (pycocotools ``rleFrString``).

    Args:
        text: Compressed counts as ``str`` or ``bytes``.

    Returns:
        The run lengths.

    Raises:
        Sa2VAInputError: If the string holds characters outside COCO's alphabet or ends in the middle of a number.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    counts: list[int] = []
    value, shift, more = 0, 0, False
    for char in text:
        group = ord(char) - 48
        if not 0 <= group < 64:
            raise Sa2VAInputError(f"Invalid character {char!r} in COCO RLE counts string; expected chr(48)..chr(111).")
        value |= (group & 0x1F) << shift
        shift += 5
        more = bool(group & 0x20)
        if more:
            continue
        if group & 0x10:
            value -= 1 << shift  # sign-extend
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
        value, shift = 0, 0
    if more:
        raise Sa2VAInputError("COCO RLE counts string ends in the middle of a number; it is truncated.")
    return counts


def mask_to_rle(mask: np.ndarray, *, compress: bool = False) -> dict[str, Any]:
    """Encode a mask as COCO RLE.

    Args:
        mask: ``(height, width)`` mask; nonzero means foreground.
        compress: Write ``counts`` as COCO's compressed string (what ``pycocotools.mask.encode`` produces, as ``str``
            instead of ``bytes`` so it serialises to JSON) instead of a list of ints.

    Returns:
        ``{"size": [height, width], "counts": [...] | "..."}``.

    Raises:
        Sa2VAInputError: If ``mask`` is not a 2-D numpy array.
    """
    counts = mask_to_counts(mask)
    return {
        "size": [int(mask.shape[0]), int(mask.shape[1])],
        "counts": counts_to_string(counts) if compress else counts,
    }


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (uncompressed list or compressed string/bytes counts) into a mask.

    Args:
        rle: ``{"size": [height, width], "counts": list[int] | str | bytes}``.

    Returns:
        ``(height, width)`` bool.

    Raises:
        Sa2VAInputError: If keys are missing, the size is invalid, counts are negative or do not add up to
            ``height * width``.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise Sa2VAInputError('Expected a COCO RLE dict with keys "size" ([height, width]) and "counts".')
    size = rle["size"]
    if len(size) != 2 or int(size[0]) < 0 or int(size[1]) < 0:
        raise Sa2VAInputError(f'RLE "size" must be [height, width] with non-negative ints, got {size!r}.')
    height, width = int(size[0]), int(size[1])
    raw_counts = rle["counts"]
    counts = string_to_counts(raw_counts) if isinstance(raw_counts, (str, bytes)) else [int(c) for c in raw_counts]
    if any(c < 0 for c in counts):
        raise Sa2VAInputError("RLE counts must be non-negative run lengths.")
    if sum(counts) != height * width:
        raise Sa2VAInputError(
            f"RLE counts add up to {sum(counts)} pixels but size {height}x{width} has {height * width}."
        )
    # Odd-numbered runs are foreground: repeat 0/1 by run length, then undo the column-major flattening.
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")


# --------------------------------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------------------------------


def save_mask_png(mask: np.ndarray, path: str | os.PathLike[str], *, mode: Literal["L", "1"] = "L") -> Path:
    """Write a mask as a PNG atomically: a temporary file in the same directory, then ``os.replace``.

    Readers therefore never see a half-written file, and an existing file is only replaced by a complete one.

    Args:
        mask: ``(height, width)`` mask; nonzero means foreground.
        path: Destination file; its directory must exist.
        mode: ``"L"`` writes an 8-bit grayscale PNG with values 0/255 (what most evaluation tools read);
            ``"1"`` writes a 1-bit PNG (smallest file; ``np.array(Image.open(path))`` gives bool).

    Returns:
        The destination path.

    Raises:
        Sa2VAInputError: If ``mask`` is not a non-empty 2-D numpy array, ``mode`` is unknown or the directory does not
            exist.
    """
    binary = _check_mask(mask)
    if binary.size == 0:
        raise Sa2VAInputError(f"Cannot write an empty mask of shape {binary.shape} as PNG.")
    if mode not in ("L", "1"):
        raise Sa2VAInputError(f'mode must be "L" (8-bit 0/255) or "1" (1-bit), got {mode!r}.')
    destination = Path(path)
    directory = destination.parent
    if not directory.is_dir():
        raise Sa2VAInputError(
            f"Directory {str(directory)!r} does not exist; create it before saving {destination.name}."
        )
    image = Image.fromarray(binary.astype(np.uint8) * np.uint8(255))
    if mode == "1":
        image = image.convert("1", dither=Image.Dither.NONE)
    temp_name = directory / f".{destination.name}.{uuid.uuid4().hex}.tmp"
    # os.open with 0o666 lets the umask decide the permissions, as for a plain open(); mkstemp would force 0o600.
    handle = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            image.save(file, format="PNG")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, destination)
    except BaseException:
        temp_name.unlink(missing_ok=True)
        raise
    return destination


__all__ = [
    "counts_to_string",
    "logits_to_masks",
    "mask_to_counts",
    "mask_to_rle",
    "rle_to_mask",
    "save_mask_png",
    "string_to_counts",
]
