"""Images into model pixels: RGB normalisation, InternVL tiles, SAM2 1024² input and the Qwen-VL pre-resize.

Every entry point first goes through :func:`to_rgb`, so the MLLM side and the SAM2 side always see the same 8-bit RGB
picture whatever the user passed (grayscale, 16-bit, alpha, float or bool arrays).

The InternVL tiling (:func:`dynamic_tiles`) and the SAM2 resize (:func:`sam2_pixel_values`) reproduce the reference
Sa2VA remote code (``hf/models/modeling_sa2va_chat.py``) pixel for pixel; :func:`qwen_fetch_resize` reproduces what
``qwen_vl_utils.fetch_image`` does to a PIL image before the Qwen processor sees it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from sa2va.errors import Sa2VAInputError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# qwen_vl_utils constants (vision_process.py): aspect-ratio cap and default token budget per image.
QWEN_MAX_RATIO = 200
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 4 * 28 * 28
QWEN_MAX_PIXELS = 16384 * 28 * 28

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_WHITE = (255, 255, 255)


# --------------------------------------------------------------------------------------------------------------------
# Conversion to 8-bit RGB
# --------------------------------------------------------------------------------------------------------------------


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """Convert any supported image to an 8-bit RGB PIL image.

    Conversion rules:

    * PIL ``RGB`` is returned as is; ``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ... go through ``Image.convert("RGB")``.
    * Anything with transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a ``transparency`` entry, 4-channel
      arrays) is composited over a white background, as ``qwen_vl_utils.to_rgb`` does for RGBA. Note the InternVL
      reference code instead calls ``convert("RGB")``, which drops alpha and keeps whatever colour sits under
      transparent pixels; we composite so both model families see the same picture.
    * 16-bit data (PIL ``I;16*``/``I``, numpy ``uint16``) is reduced to 8 bits with ``value >> 8``. This is the exact
      inverse of the usual 8→16-bit expansion ``v * 257`` (so 8-bit content stored in a 16-bit file survives
      unchanged) and never rounds up past 255. PIL ``I`` is treated as 16-bit because that is what Pillow returns for
      16-bit grayscale PNGs; values outside ``[0, 65535]`` are rejected.
    * Float data (numpy floating arrays, PIL ``F``) must lie in ``[0, 1]`` and is mapped with ``round(value * 255)``.
    * ``bool`` arrays map ``False``/``True`` to 0/255.

    Args:
        image: A PIL image of any mode, or a numpy array of shape ``(height, width)``, ``(height, width, 1)``,
            ``(height, width, 3)`` (RGB) or ``(height, width, 4)`` (RGBA) with dtype ``uint8``, ``uint16``, ``bool``
            or a float dtype with values in ``[0, 1]``.

    Returns:
        An RGB PIL image of the same width and height.

    Raises:
        Sa2VAInputError: If ``image`` is not a PIL image or numpy array, has a zero width or height, has an
            unsupported shape, dtype or value range, or uses a PIL mode Pillow cannot convert to RGB.
    """
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    if isinstance(image, torch.Tensor):
        raise Sa2VAInputError(
            f"Expected a PIL image or a numpy array, got a torch.Tensor of shape {tuple(image.shape)}. Convert a "
            "(3, height, width) uint8 tensor with `tensor.permute(1, 2, 0).cpu().numpy()` first."
        )
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        raise Sa2VAInputError(
            f"Expected a PIL image or a numpy array, got a path-like {type(image).__name__}. "
            "Load the file first, e.g. with `PIL.Image.open(path)`."
        )
    raise Sa2VAInputError(
        f"Expected a PIL image or a numpy array of shape (height, width[, channels]), got {type(image).__name__}."
    )


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise Sa2VAInputError(
            f"Image has size width={width}, height={height}; both must be at least 1 pixel. "
            "Check that the file decoded correctly."
        )


def _pil_to_rgb(image: Image.Image) -> Image.Image:
    _check_size(*image.size)
    if image.mode in _HIGH_DEPTH_MODES:
        # Pillow's own I;16/I/F -> RGB conversion clips to 255 instead of rescaling, so go through numpy.
        array = np.asarray(image)
        if image.mode == "I":
            # int32 is what Pillow hands out for some 16-bit grayscale files: treat it as 16-bit data.
            low, high = int(array.min()), int(array.max())
            if low < 0 or high > 65535:
                raise Sa2VAInputError(
                    f"PIL image of mode 'I' has values in [{low}, {high}]; expected 16-bit data in [0, 65535]."
                )
            array = array.astype(np.uint16)
        return _array_to_rgb(array, source=f"PIL mode {image.mode!r}")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return _composite_on_white(image.convert("RGBA"))
    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise Sa2VAInputError(
            f"Cannot convert a PIL image of mode {image.mode!r} to RGB ({error}). Save it as RGB, L or RGBA first."
        ) from error


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    # Same operation as qwen_vl_utils.to_rgb (paste with the alpha band as mask), so the Qwen path is unchanged.
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _array_to_rgb(array: np.ndarray, source: str = "numpy array") -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise Sa2VAInputError(
            f"Image array has shape {array.shape}; expected (height, width), (height, width, 1), "
            "(height, width, 3) for RGB or (height, width, 4) for RGBA."
        )
    _check_size(width=array.shape[1], height=array.shape[0])
    pixels = np.ascontiguousarray(_to_uint8(array, source))
    if pixels.ndim == 2:
        return Image.fromarray(pixels).convert("RGB")
    if pixels.shape[2] == 4:
        return _composite_on_white(Image.fromarray(pixels))
    return Image.fromarray(pixels)


def _to_uint8(array: np.ndarray, source: str) -> np.ndarray:
    """Map the values of ``array`` to ``uint8`` following the rules of :func:`to_rgb`."""
    if array.dtype.byteorder not in ("=", "|"):
        # Big-endian data (e.g. PIL "I;16B") compares unequal to np.uint16; make it native first.
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise Sa2VAInputError(f"Float image ({source}) contains NaN or infinite values.")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise Sa2VAInputError(
                f"Float image ({source}) has values in [{low:g}, {high:g}]; expected [0, 1]. "
                "Divide 0-255 data by 255 or pass it as uint8."
            )
        return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    raise Sa2VAInputError(
        f"Image array has dtype {array.dtype}; expected uint8, uint16, bool or float in [0, 1]. "
        "Cast integer data with `.astype(np.uint8)` (values 0-255) or `.astype(np.uint16)` (0-65535)."
    )


# --------------------------------------------------------------------------------------------------------------------
# InternVL dynamic tiling
# --------------------------------------------------------------------------------------------------------------------


def _candidate_grids(min_num: int, max_num: int) -> list[tuple[int, int]]:
    """All ``(cols, rows)`` grids with ``min_num <= cols * rows <= max_num``, sorted by tile count.

    Grids with the same tile count keep the iteration order of a Python set filled tile count by tile count, row by
    row, which is how the reference builds the list. That order only decides ties between equal-count grids, which
    cannot win when ``min_num == 1`` but can for larger ``min_num``.
    """
    grids: set[tuple[int, int]] = set()
    for count in range(min_num, max_num + 1):
        for cols in range(1, count + 1):
            for rows in range(1, count + 1):
                if min_num <= cols * rows <= max_num:
                    grids.add((cols, rows))
    return sorted(grids, key=lambda grid: grid[0] * grid[1])


def find_closest_aspect_ratio(
    aspect_ratio: float,
    target_ratios: Sequence[tuple[int, int]],
    width: int,
    height: int,
    image_size: int,
) -> tuple[int, int]:
    """Pick the tiling grid whose aspect ratio is closest to the image's (InternVL ``find_closest_aspect_ratio``).

    Grids are scanned in the given order (ascending tile count). A strictly closer grid always replaces the current
    choice; an equally close grid (e.g. 2x2 after 1x1 for a square image) replaces it only when the image has more
    than half the pixels of that grid, ``width * height > 0.5 * image_size² * cols * rows``, so small images are not
    blown up into many tiles.

    Args:
        aspect_ratio: ``width / height`` of the image.
        target_ratios: Candidate ``(cols, rows)`` grids, sorted by ``cols * rows``.
        width: Image width in pixels.
        height: Image height in pixels.
        image_size: Tile side in pixels (448 for InternVL).

    Returns:
        The chosen ``(cols, rows)``; ``(1, 1)`` if ``target_ratios`` is empty.
    """
    best_diff = float("inf")
    best = (1, 1)
    area = width * height
    for cols, rows in target_ratios:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best_diff = diff
            best = (cols, rows)
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def _check_tiling_args(min_num: int, max_num: int, image_size: int) -> None:
    if min_num < 1 or max_num < min_num:
        raise Sa2VAInputError(
            f"Tile counts must satisfy 1 <= min_num <= max_num, got min_num={min_num}, max_num={max_num}."
        )
    if image_size < 1:
        raise Sa2VAInputError(f"Tile size must be a positive number of pixels, got {image_size}.")


def tile_grid(width: int, height: int, min_num: int = 1, max_num: int = 12, image_size: int = 448) -> tuple[int, int]:
    """The InternVL tiling grid chosen for an image of the given size.

    Args:
        width: Image width in pixels.
        height: Image height in pixels.
        min_num: Smallest allowed number of tiles.
        max_num: Largest allowed number of tiles (the reference hard-codes 12 at inference).
        image_size: Tile side in pixels.

    Returns:
        ``(cols, rows)``: the image is resized to ``(image_size * cols, image_size * rows)`` (width, height).

    Raises:
        Sa2VAInputError: If the size is not positive or the tile arguments are inconsistent.
    """
    _check_size(width, height)
    _check_tiling_args(min_num, max_num, image_size)
    return find_closest_aspect_ratio(width / height, _candidate_grids(min_num, max_num), width, height, image_size)


def dynamic_tiles(
    image: Image.Image | np.ndarray,
    min_num: int = 1,
    max_num: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
) -> list[Image.Image]:
    """Split an image into InternVL tiles (reference ``dynamic_preprocess``).

    The whole image is resized (bicubic, aspect not preserved) to the grid chosen by :func:`tile_grid` and cut into
    ``image_size`` squares in row-major order (left to right, then top to bottom). When the grid has more than one
    tile and ``use_thumbnail`` is set, the whole image resized to ``image_size²`` is appended as the last tile.

    Args:
        image: Any image accepted by :func:`to_rgb`.
        min_num: Smallest allowed number of tiles (thumbnail not counted).
        max_num: Largest allowed number of tiles (thumbnail not counted).
        image_size: Tile side in pixels.
        use_thumbnail: Append the thumbnail when there is more than one tile.

    Returns:
        ``cols * rows`` RGB tiles of ``image_size²`` pixels, plus the thumbnail if added.

    Raises:
        Sa2VAInputError: If the image cannot be converted (see :func:`to_rgb`) or the tile arguments are inconsistent.
    """
    rgb = to_rgb(image)
    cols, rows = tile_grid(rgb.width, rgb.height, min_num, max_num, image_size)
    resized = rgb.resize((image_size * cols, image_size * rows), Image.Resampling.BICUBIC)
    tiles = [
        resized.crop((col * image_size, row * image_size, (col + 1) * image_size, (row + 1) * image_size))
        for row in range(rows)
        for col in range(cols)
    ]
    if use_thumbnail and len(tiles) > 1:
        tiles.append(rgb.resize((image_size, image_size), Image.Resampling.BICUBIC))
    return tiles


def _normalize(image: Image.Image, compute_dtype: torch.dtype, constants_dtype: torch.dtype) -> torch.Tensor:
    """RGB image -> ``(3, height, width)``: ``/255`` then ImageNet mean/std, in ``compute_dtype``."""
    pixels = np.array(image, dtype=np.uint8)  # a writable copy: torch refuses to wrap read-only buffers silently
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).to(compute_dtype) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=constants_dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=constants_dtype)[:, None, None]
    # Subtract then divide, like torchvision Normalize and the reference SAM2 preprocess; the result keeps
    # compute_dtype (type promotion never lowers it below the constants' dtype for the combinations we document).
    return ((tensor - mean) / std).to(compute_dtype)


def internvl_pixel_values(
    image: Image.Image | np.ndarray,
    *,
    max_tiles: int = 12,
    tile_size: int = 448,
    use_thumbnail: bool = True,
    dynamic: bool = True,
) -> torch.Tensor:
    """InternVL vision input for one image or video frame.

    Each tile is resized to ``tile_size²`` (bicubic; a no-op for tiles), scaled to ``[0, 1]`` and normalised with the
    ImageNet mean/std, exactly like the reference ``Resize -> ToTensor -> Normalize`` transform. The reference casts
    the result to the model dtype afterwards; that is left to the caller.

    Args:
        image: Any image accepted by :func:`to_rgb`.
        max_tiles: Largest number of tiles (thumbnail not counted).
        tile_size: Tile side in pixels.
        use_thumbnail: Append the whole-image thumbnail when there is more than one tile.
        dynamic: Tile the image (still images). ``False`` gives a single resized tile, as the reference does for
            video frames.

    Returns:
        ``(num_tiles, 3, tile_size, tile_size)`` float32, ``num_tiles`` in ``[1, max_tiles + 1]``.

    Raises:
        Sa2VAInputError: If the image cannot be converted (see :func:`to_rgb`) or the tile arguments are inconsistent.
    """
    if dynamic:
        tiles = dynamic_tiles(image, 1, max_tiles, tile_size, use_thumbnail)
    else:
        _check_tiling_args(1, max_tiles, tile_size)
        tiles = [to_rgb(image)]
    resized = [tile.resize((tile_size, tile_size), Image.Resampling.BICUBIC) for tile in tiles]
    return torch.stack([_normalize(tile, torch.float32, torch.float32) for tile in resized])


# --------------------------------------------------------------------------------------------------------------------
# SAM2 input
# --------------------------------------------------------------------------------------------------------------------


def sam2_pixel_values(
    image: Image.Image | np.ndarray,
    size: int = 1024,
    *,
    compute_dtype: torch.dtype = torch.float32,
    constants_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """SAM2 image-encoder input: bicubic resize to ``size²`` (aspect not preserved, no padding), ``/255``, ImageNet.

    The reference does the arithmetic in two slightly different ways (spec §1.10). The defaults are plain float32;
    for bit-exact parity use ``compute_dtype=torch.bfloat16`` (image path: uint8 cast to bf16 before ``/255``) or
    ``constants_dtype=torch.bfloat16`` with float32 compute (video path: float32 arithmetic with bf16-rounded
    mean/std constants).

    Args:
        image: Any image accepted by :func:`to_rgb`.
        size: Output side in pixels (SAM2's ``image_size``).
        compute_dtype: Dtype of the scaling and normalisation arithmetic and of the result.
        constants_dtype: Dtype the mean/std constants are created in; defaults to ``compute_dtype``.

    Returns:
        ``(3, size, size)`` in ``compute_dtype``.

    Raises:
        Sa2VAInputError: If the image cannot be converted (see :func:`to_rgb`) or ``size`` is not positive.
    """
    if size < 1:
        raise Sa2VAInputError(f"SAM2 input size must be a positive number of pixels, got {size}.")
    rgb = to_rgb(image).resize((size, size), Image.Resampling.BICUBIC)
    return _normalize(rgb, compute_dtype, constants_dtype or compute_dtype)


def sam2_pixel_values_batch(
    frames: Sequence[Image.Image | np.ndarray],
    size: int = 1024,
    *,
    compute_dtype: torch.dtype = torch.float32,
    constants_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """:func:`sam2_pixel_values` for every frame of a clip.

    Args:
        frames: Non-empty sequence of images accepted by :func:`to_rgb`; sizes may differ.
        size: Output side in pixels.
        compute_dtype: See :func:`sam2_pixel_values`.
        constants_dtype: See :func:`sam2_pixel_values`.

    Returns:
        ``(num_frames, 3, size, size)`` in ``compute_dtype``.

    Raises:
        Sa2VAInputError: If ``frames`` is empty or a frame cannot be converted.
    """
    if len(frames) == 0:
        raise Sa2VAInputError("Expected at least one frame, got an empty sequence.")
    return torch.stack(
        [
            sam2_pixel_values(frame, size, compute_dtype=compute_dtype, constants_dtype=constants_dtype)
            for frame in frames
        ]
    )


# --------------------------------------------------------------------------------------------------------------------
# Qwen-VL pre-resize (qwen_vl_utils.fetch_image)
# --------------------------------------------------------------------------------------------------------------------


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """Target size of ``qwen_vl_utils.smart_resize`` (checked against qwen-vl-utils 0.0.14).

    Behaviour reproduced:

    1. Reject images whose long/short side ratio exceeds 200.
    2. Round each side to the nearest multiple of ``factor`` with Python's ``round`` (half to even, so a side of
       ``2.5 * factor`` rounds *down* to ``2 * factor``), with a floor of ``factor``.
    3. If that exceeds ``max_pixels``, scale both sides by ``beta = sqrt(height * width / max_pixels)`` and round
       each *down* to a multiple of ``factor``; elif it is below ``min_pixels``, scale by
       ``beta = sqrt(min_pixels / (height * width))`` and round each *up*.

    Args:
        height: Original height in pixels.
        width: Original width in pixels.
        factor: Both output sides are multiples of this (patch size 14 times spatial merge 2 = 28, the value
            ``process_vision_info`` uses unless given another ``image_patch_size``).
        min_pixels: Lower bound on ``height * width`` of the result.
        max_pixels: Upper bound on ``height * width`` of the result.

    Returns:
        ``(resized_height, resized_width)``.

    Raises:
        Sa2VAInputError: If a side is not positive, ``min_pixels > max_pixels`` or the aspect ratio exceeds 200.
    """
    _check_size(width, height)
    if factor < 1:
        raise Sa2VAInputError(f"factor must be a positive integer, got {factor}.")
    if min_pixels > max_pixels:
        raise Sa2VAInputError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels}).")
    ratio = max(height, width) / min(height, width)
    if ratio > QWEN_MAX_RATIO:
        raise Sa2VAInputError(
            f"Image aspect ratio {ratio:.1f} (height={height}, width={width}) exceeds {QWEN_MAX_RATIO}, the limit of "
            "the Qwen-VL preprocessing. Crop or pad the image first."
        )
    resized_height = max(factor, round(height / factor) * factor)
    resized_width = max(factor, round(width / factor) * factor)
    if resized_height * resized_width > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        resized_height = math.floor(height / beta / factor) * factor
        resized_width = math.floor(width / beta / factor) * factor
    elif resized_height * resized_width < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        resized_height = math.ceil(height * beta / factor) * factor
        resized_width = math.ceil(width * beta / factor) * factor
    return resized_height, resized_width


def qwen_fetch_resize(
    image: Image.Image | np.ndarray,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> Image.Image:
    """What ``qwen_vl_utils.fetch_image`` does to a PIL image before the Qwen-VL processor sees it.

    RGB conversion (:func:`to_rgb`), :func:`smart_resize`, then a PIL resize with the default (bicubic) filter. The
    reference Sa2VA Qwen code calls ``process_vision_info`` without pixel limits, so the defaults here (4 to 16384
    tokens of 28x28) are the ones in effect; its own ``min_pixels=512*28*28, max_pixels=2048*28*28`` go to the HF
    processor afterwards, not here.

    Args:
        image: Any image accepted by :func:`to_rgb`.
        factor: See :func:`smart_resize`.
        min_pixels: See :func:`smart_resize`.
        max_pixels: See :func:`smart_resize`.

    Returns:
        The resized RGB image; both sides are multiples of ``factor``.

    Raises:
        Sa2VAInputError: If the image cannot be converted or violates :func:`smart_resize`'s limits.
    """
    rgb = to_rgb(image)
    # Note the mixed argument orders: smart_resize is (height, width), PIL sizes are (width, height).
    resized_height, resized_width = smart_resize(rgb.height, rgb.width, factor, min_pixels, max_pixels)
    return rgb.resize((resized_width, resized_height), Image.Resampling.BICUBIC)


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "dynamic_tiles",
    "find_closest_aspect_ratio",
    "internvl_pixel_values",
    "qwen_fetch_resize",
    "sam2_pixel_values",
    "sam2_pixel_values_batch",
    "smart_resize",
    "tile_grid",
    "to_rgb",
]
