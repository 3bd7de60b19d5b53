"""COCO segmentations (polygons, boxes-as-polygons, RLE) into boolean masks, without pycocotools.

The public datasets store object masks the way ``pycocotools.mask.frPyObjects`` reads them:

* a polygon is a flat list ``[x0, y0, x1, y1, ...]`` in pixel coordinates; an object is a list of polygons and its
  mask is their union;
* a flat list of exactly 4 numbers is read by pycocotools as an ``[x, y, w, h]`` box, so it is here too;
* an RLE is ``{"size": [height, width], "counts": str | bytes | list[int]}`` (compressed or uncompressed).

Polygons are rasterised exactly as pycocotools' ``rleFrPoly`` does (so masks match the reference pixel for pixel): the
outline is upsampled 5x, walked in integer steps, and the crossings of each pixel column are turned straight into
run lengths. The implementation below is vectorised with numpy; it is checked against pycocotools in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sa2va.errors import Sa2VAInputError
from sa2va.grounding.masks import rle_to_mask, string_to_counts

_SCALE = 5.0  # pycocotools upsamples the outline by this factor before walking it


def _c_int(values: np.ndarray) -> np.ndarray:
    """C's `(int)` cast of doubles: truncation toward zero (not floor)."""
    return np.trunc(values).astype(np.int64)


def polygon_to_counts(polygon: Any, height: int, width: int) -> np.ndarray:
    """Run lengths of one polygon rasterised like pycocotools ``rleFrPoly``.

    Args:
        polygon: flat ``[x0, y0, x1, y1, ...]`` pixel coordinates, at least 3 points (6 numbers).
        height, width: mask size.

    Returns:
        ``(num_runs,)`` int64 COCO run lengths (column-major, starting with background), summing to
        ``height * width``.

    Raises:
        Sa2VAInputError: not a flat list of an even number (>= 6) of finite numbers.
    """
    xy = _polygon_array(polygon)
    x = _c_int(_SCALE * xy[0::2] + 0.5)
    y = _c_int(_SCALE * xy[1::2] + 0.5)
    x = np.append(x, x[0])  # (k + 1,): closed outline
    y = np.append(y, y[0])
    xs, xe, ys, ye = x[:-1], x[1:], y[:-1], y[1:]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    along_x = dx >= dy
    # Every edge is walked from its lower end along its major axis, then re-ordered back ("flip").
    flip = (along_x & (xs > xe)) | (~along_x & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    steps = np.where(along_x, dx, dy)  # (k,)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(along_x, (ye - ys) / np.maximum(dx, 1), (xe - xs) / np.maximum(dy, 1)).astype(np.float64)
    # A zero-length edge gives one point whose other coordinate is garbage in C (0/0); it is never read afterwards
    # because its neighbours share its column, so any value will do.
    lengths = steps + 1
    edge = np.repeat(np.arange(len(steps)), lengths)  # (m,) edge of each outline point
    d = np.arange(len(edge)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    t = np.where(flip[edge], steps[edge] - d, d)
    major = t + np.where(along_x[edge], xs[edge], ys[edge])
    minor = _c_int(np.where(along_x[edge], ys[edge], xs[edge]) + slope[edge] * t + 0.5)
    u = np.where(along_x[edge], major, minor)  # (m,) upsampled x
    v = np.where(along_x[edge], minor, major)  # (m,) upsampled y

    # Keep the points where the outline changes column, moved back to the original pixel grid.
    change = np.flatnonzero(u[1:] != u[:-1]) + 1
    u_now, u_before = u[change], u[change - 1]
    xd = np.where(u_now < u_before, u_now, u_now - 1).astype(np.float64)
    xd = (xd + 0.5) / _SCALE - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= width - 1)
    yd = np.minimum(v[change], v[change - 1]).astype(np.float64)
    yd = np.ceil(np.clip((yd + 0.5) / _SCALE - 0.5, 0, height))
    starts = xd[keep].astype(np.int64) * height + yd[keep].astype(np.int64)

    # Each crossing toggles inside/outside. pycocotools sorts the crossings and merges the run after an empty run
    # into the one before it: coinciding crossings cancel in pairs, and a crossing at the very end changes nothing.
    positions, repeats = np.unique(starts[starts < height * width], return_counts=True)
    toggles = positions[repeats % 2 == 1]
    return np.diff(np.concatenate(([0], toggles, [height * width]))).astype(np.int64)


def _polygon_array(polygon: Any) -> np.ndarray:
    if not isinstance(polygon, (list, tuple, np.ndarray)):
        raise Sa2VAInputError(f"a polygon must be a flat list [x0, y0, x1, y1, ...], got {type(polygon).__name__}.")
    try:
        xy = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise Sa2VAInputError(f"a polygon must hold numbers only ({error}).") from None
    if xy.ndim != 1 or len(xy) < 6 or len(xy) % 2:
        raise Sa2VAInputError(
            f"a polygon must be a flat list of an even number (>= 6) of coordinates [x0, y0, x1, y1, ...], got "
            f"shape {xy.shape}."
        )
    if not np.isfinite(xy).all():
        raise Sa2VAInputError("a polygon holds NaN or infinite coordinates.")
    return xy


def _box_polygon(box: Any) -> list[float]:
    """pycocotools reads a 4-number "polygon" as an `[x, y, w, h]` box and rasterises its outline."""
    x, y, w, h = (float(v) for v in box)
    return [x, y, x, y + h, x + w, y + h, x + w, y]


def counts_to_mask(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decode run lengths into a `(height, width)` bool mask (column-major, starting with background)."""
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape((height, width), order="F")


def polygons_to_mask(polygons: Any, height: int, width: int) -> np.ndarray:
    """Union of polygons (and 4-number boxes), rasterised like pycocotools.

    Args:
        polygons: list of flat coordinate lists.
        height, width: mask size.

    Returns:
        `(height, width)` bool.

    Raises:
        Sa2VAInputError: malformed polygons.
    """
    check_polygons(polygons)
    mask = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        flat = _box_polygon(polygon) if len(polygon) == 4 else polygon
        mask |= counts_to_mask(polygon_to_counts(flat, height, width), height, width)
    return mask


def check_polygons(polygons: Any) -> None:
    """Validate a list of polygons without rasterising it.

    Raises:
        Sa2VAInputError: not a non-empty list of flat coordinate lists of 4 (a box) or an even number >= 6 of numbers.
    """
    if not isinstance(polygons, (list, tuple)) or not polygons:
        raise Sa2VAInputError("polygons must be a non-empty list of flat [x0, y0, x1, y1, ...] lists.")
    for polygon in polygons:
        if isinstance(polygon, (list, tuple)) and len(polygon) == 4:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon):
                raise Sa2VAInputError("a 4-number polygon (read as an [x, y, w, h] box) must hold numbers only.")
            continue
        _polygon_array(polygon)


def check_rle(rle: Any) -> None:
    """Validate the structure of a COCO RLE without decoding it.

    Raises:
        Sa2VAInputError: not `{"size": [h, w], "counts": str | bytes | list[int]}`.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise Sa2VAInputError('an RLE must be a dict with "size" ([height, width]) and "counts".')
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(v, int) and v >= 0 for v in size):
        raise Sa2VAInputError(f'RLE "size" must be [height, width] with non-negative ints, got {size!r}.')
    if not isinstance(rle["counts"], (str, bytes, list)):
        raise Sa2VAInputError(f'RLE "counts" must be a string or a list of ints, got {type(rle["counts"]).__name__}.')


def check_segmentation(segmentation: Any) -> None:
    """Validate a COCO segmentation (polygon list or RLE dict) without rasterising it.

    Raises:
        Sa2VAInputError: neither form.
    """
    if isinstance(segmentation, dict):
        check_rle(segmentation)
    else:
        check_polygons(segmentation)


def rle_mask(rle: dict[str, Any], height: int | None = None, width: int | None = None) -> np.ndarray:
    """Decode an RLE, checking its size against the image when one is given.

    Returns:
        `(height, width)` bool.

    Raises:
        Sa2VAInputError: a malformed RLE, or one whose size is not the image's.
    """
    check_rle(rle)
    if height is not None and width is not None and tuple(rle["size"]) != (height, width):
        raise Sa2VAInputError(
            f"RLE size {list(rle['size'])} (height, width) does not match the image size [{height}, {width}]."
        )
    return rle_to_mask(rle)


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO segmentation as a mask: polygons are unioned, an RLE is decoded (its size must be the image's).

    Args:
        segmentation: list of polygons, or an RLE dict (compressed or uncompressed counts).
        height, width: image size.

    Returns:
        `(height, width)` bool.

    Raises:
        Sa2VAInputError: malformed or wrongly sized.
    """
    if isinstance(segmentation, dict):
        return rle_mask(segmentation, height, width)
    return polygons_to_mask(segmentation, height, width)


def rle_counts(rle: dict[str, Any]) -> np.ndarray:
    """Uncompressed run lengths of an RLE (compressed string/bytes or list)."""
    raw = rle["counts"]
    counts = string_to_counts(raw) if isinstance(raw, (str, bytes)) else [int(c) for c in raw]
    return np.asarray(counts, dtype=np.int64)


def sample_counts(counts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Mask values at column-major flat `positions`, read straight from run lengths (no full decode)."""
    ends = np.cumsum(counts)
    run = np.searchsorted(ends, positions, side="right")
    return run % 2 == 1


__all__ = [
    "polygon_to_counts",
    "polygons_to_mask",
    "counts_to_mask",
    "check_polygons",
    "check_rle",
    "check_segmentation",
    "rle_mask",
    "segmentation_to_mask",
    "rle_counts",
    "sample_counts",
]
