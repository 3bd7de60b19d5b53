"""Image conversion, InternVL tiling, SAM2 input and the Qwen pre-resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sa2va.errors import Sa2VAInputError
from sa2va.processing.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    dynamic_tiles,
    find_closest_aspect_ratio,
    internvl_pixel_values,
    qwen_fetch_resize,
    sam2_pixel_values,
    sam2_pixel_values_batch,
    smart_resize,
    tile_grid,
    to_rgb,
)

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _quadrants(width: int, height: int) -> Image.Image:
    """Top-left red, top-right green, bottom-left blue, bottom-right yellow."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[: height // 2, : width // 2] = RED
    array[: height // 2, width // 2 :] = GREEN
    array[height // 2 :, : width // 2] = BLUE
    array[height // 2 :, width // 2 :] = YELLOW
    return Image.fromarray(array)


def _center_colour(image: Image.Image) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(image)[image.height // 2, image.width // 2])


# --------------------------------------------------------------------------------------------------------------------
# to_rgb
# --------------------------------------------------------------------------------------------------------------------


def test_rgb_pil_passes_through_unchanged():
    image = _noise(5, 4)
    assert np.array_equal(np.asarray(to_rgb(image)), np.asarray(image))


def test_grayscale_pil_is_replicated_to_three_channels():
    gray = Image.fromarray(np.array([[0, 128, 255]], dtype=np.uint8))
    out = to_rgb(gray)
    assert out.mode == "RGB" and out.size == (3, 1)
    assert np.asarray(out)[0].tolist() == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]


def test_rgba_is_composited_over_white():
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    out = np.asarray(to_rgb(Image.fromarray(rgba)))
    assert out[0, 0].tolist() == [255, 0, 0]  # opaque: unchanged
    assert out[0, 1].tolist() == [255, 255, 255]  # transparent: white, not the hidden red
    assert all(120 <= v <= 135 for v in out[0, 2])  # half-transparent black: mid gray
    # a numpy RGBA array takes the same path
    assert np.array_equal(np.asarray(to_rgb(rgba)), out)


def test_palette_with_transparency_is_composited():
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    assert np.asarray(to_rgb(palette))[0].tolist() == [[255, 255, 255], [10, 20, 30]]


def test_16_bit_pil_is_shifted_to_8_bit():
    values = np.array([[0, 255, 257 * 128, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    out = np.asarray(to_rgb(image))
    assert out[0, :, 0].tolist() == [0, 0, 128, 255]  # value >> 8
    assert (out[..., 0] == out[..., 2]).all()
    # mode "I" (what Pillow gives for some 16-bit PNGs) follows the same rule
    as_int = Image.fromarray(values.astype(np.int32))
    assert as_int.mode == "I"
    assert np.array_equal(np.asarray(to_rgb(as_int)), out)


def test_uint16_numpy_rgb_is_shifted_and_8_bit_content_survives():
    eight_bit = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint16)
    sixteen = eight_bit * 257  # the usual 8 -> 16 bit expansion
    assert np.array_equal(np.asarray(to_rgb(sixteen)), eight_bit.astype(np.uint8))


def test_bool_and_float_arrays():
    mask = np.array([[True, False]])
    assert np.asarray(to_rgb(mask))[0].tolist() == [[255, 255, 255], [0, 0, 0]]
    floats = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    assert np.asarray(to_rgb(floats))[0, :, 1].tolist() == [0, 128, 255]
    single_channel = np.full((2, 3, 1), 7, dtype=np.uint8)
    assert np.asarray(to_rgb(single_channel)).shape == (2, 3, 3)


@pytest.mark.parametrize(
    "bad",
    [
        Image.new("RGB", (0, 5)),
        Image.new("L", (5, 0)),
        np.zeros((0, 4, 3), dtype=np.uint8),
        np.zeros((4, 0), dtype=np.uint8),
    ],
)
def test_zero_sized_images_are_rejected(bad):
    with pytest.raises(Sa2VAInputError, match="at least 1 pixel"):
        to_rgb(bad)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((4, 4, 2), dtype=np.uint8), "expected \\(height, width\\)"),
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), "expected \\(height, width\\)"),
        (np.zeros(4, dtype=np.uint8), "expected \\(height, width\\)"),
        (np.zeros((4, 4), dtype=np.int64), "dtype int64"),
        (np.full((4, 4), 2.0), "expected \\[0, 1\\]"),
        (np.full((4, 4), np.nan), "NaN"),
        ("image.png", "path-like"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), "torch.Tensor"),
        ([[0, 1]], "list"),
    ],
)
def test_bad_inputs_raise_typed_errors(bad, message):
    with pytest.raises(Sa2VAInputError, match=message):
        to_rgb(bad)


# --------------------------------------------------------------------------------------------------------------------
# InternVL tiling
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "grid"),
    [
        ((640, 480), (4, 3)),  # 4:3 exactly representable within 12 tiles
        ((480, 640), (3, 4)),
        ((1920, 1080), (4, 2)),  # 2:1 and 4:2 tie; the image is big enough for the larger grid
        ((100, 2000), (1, 12)),
        ((448, 448), (1, 1)),  # 1x1, 2x2, 3x3 tie; too small for 2x2 (needs > 2 * 448² pixels)
        ((800, 800), (2, 2)),  # big enough for 2x2, not for 3x3 (needs > 4.5 * 448²)
        ((1024, 1024), (3, 3)),
        ((896, 448), (2, 1)),
    ],
)
def test_tile_grid_choice(size, grid):
    assert tile_grid(*size) == grid


def test_tie_rule_prefers_later_grid_only_for_large_images():
    grids = [(1, 1), (2, 2)]
    assert find_closest_aspect_ratio(1.0, grids, 633, 634, 448) == (1, 1)  # 401322 <= 0.5 * 448² * 4
    assert find_closest_aspect_ratio(1.0, grids, 634, 634, 448) == (2, 2)  # 401956 > 401408
    # a strictly closer grid always wins, whatever the area
    assert find_closest_aspect_ratio(2.0, [(1, 1), (2, 1)], 2, 1, 448) == (2, 1)


def test_single_tile_has_no_thumbnail():
    tiles = dynamic_tiles(_noise(448, 448))
    assert len(tiles) == 1 and tiles[0].size == (448, 448)


def test_thumbnail_is_last_and_is_the_whole_image():
    image = _quadrants(896, 448)
    tiles = dynamic_tiles(image)
    assert [tile.size for tile in tiles] == [(448, 448)] * 3
    expected = np.asarray(image.resize((448, 448), Image.Resampling.BICUBIC))
    assert np.array_equal(np.asarray(tiles[-1]), expected)
    assert len(dynamic_tiles(image, use_thumbnail=False)) == 2


def test_tiles_are_cropped_row_major():
    tiles = dynamic_tiles(_quadrants(896, 896), use_thumbnail=False)  # 2x2 grid, one quadrant per tile
    assert len(tiles) == 4
    assert [_center_colour(tile) for tile in tiles] == [RED, GREEN, BLUE, YELLOW]
    # a 4x3 grid: tile k sits at column k % 4, row k // 4
    tiles = dynamic_tiles(_quadrants(640, 480))
    assert len(tiles) == 13
    assert _center_colour(tiles[0]) == RED and _center_colour(tiles[3]) == GREEN
    assert _center_colour(tiles[8]) == BLUE and _center_colour(tiles[11]) == YELLOW


def test_internvl_pixel_values_match_torchvision_pipeline():
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.Resize((448, 448), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    image = _noise(900, 500)
    pixels = internvl_pixel_values(image)
    assert pixels.dtype == torch.float32
    assert pixels.shape == (len(dynamic_tiles(image)), 3, 448, 448)
    assert torch.equal(pixels, torch.stack([transform(tile) for tile in dynamic_tiles(image)]))
    frame = internvl_pixel_values(image, dynamic=False)
    assert frame.shape == (1, 3, 448, 448)
    assert torch.equal(frame[0], transform(image))


def test_internvl_pixel_values_respects_max_tiles():
    assert internvl_pixel_values(_noise(100, 2000), max_tiles=4).shape[0] == 5  # 1x4 grid + thumbnail


# --------------------------------------------------------------------------------------------------------------------
# SAM2 input
# --------------------------------------------------------------------------------------------------------------------


def test_sam2_pixel_values_resize_without_keeping_aspect():
    image = _noise(300, 100)
    pixels = sam2_pixel_values(image, size=64)
    assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.float32
    resized = torch.from_numpy(np.array(image.resize((64, 64), Image.Resampling.BICUBIC))).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    assert torch.equal(pixels, (resized.float() / 255.0 - mean) / std)


def test_sam2_reference_dtype_modes():
    image = _noise(50, 40)
    exact = sam2_pixel_values(image, size=32)
    bf16 = sam2_pixel_values(image, size=32, compute_dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    assert 0 < (bf16.float() - exact).abs().max() < 0.05
    rounded_constants = sam2_pixel_values(image, size=32, constants_dtype=torch.bfloat16)
    assert rounded_constants.dtype == torch.float32
    assert 0 < (rounded_constants - exact).abs().max() < 0.05


def test_sam2_batch_stacks_frames():
    frames = [_noise(40, 30, seed=s) for s in range(3)]
    batch = sam2_pixel_values_batch(frames, size=16)
    assert batch.shape == (3, 3, 16, 16)
    assert torch.equal(batch[2], sam2_pixel_values(frames[2], size=16))
    with pytest.raises(Sa2VAInputError, match="at least one frame"):
        sam2_pixel_values_batch([], size=16)


# --------------------------------------------------------------------------------------------------------------------
# Qwen smart_resize
# --------------------------------------------------------------------------------------------------------------------


def test_smart_resize_rounds_half_to_even_like_python_round():
    # 70 / 28 = 2.5 rounds to 2 (not 3); 1000 / 28 = 35.7 rounds to 36
    assert smart_resize(70, 1000) == (56, 1008)


def test_smart_resize_pixel_bounds():
    assert smart_resize(10, 10) == (56, 56)  # below 4 * 28²: scaled up, rounded up
    height, width = smart_resize(8000, 6000)  # above 16384 * 28²: scaled down, rounded down
    assert (height, width) == (4116, 3080)
    assert height % 28 == 0 and width % 28 == 0 and height * width <= 16384 * 28 * 28
    height, width = smart_resize(480, 640, min_pixels=512 * 28 * 28, max_pixels=2048 * 28 * 28)
    assert height * width >= 512 * 28 * 28 and height % 28 == 0 and width % 28 == 0


def test_smart_resize_rejects_extreme_aspect_and_bad_bounds():
    with pytest.raises(Sa2VAInputError, match="exceeds 200"):
        smart_resize(10, 2010)
    with pytest.raises(Sa2VAInputError, match="must not exceed"):
        smart_resize(100, 100, min_pixels=10, max_pixels=5)


def test_qwen_fetch_resize_converts_and_resizes():
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (333, 517, 4), dtype=np.uint8))
    out = qwen_fetch_resize(image)
    assert out.mode == "RGB" and out.size == (504, 336)  # PIL size is (width, height)
    expected = to_rgb(image).resize((504, 336), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_out_of_range_mode_i_is_rejected():
    with pytest.raises(Sa2VAInputError, match="16-bit data"):
        to_rgb(Image.fromarray(np.array([[-1, 70000]], dtype=np.int32)))
