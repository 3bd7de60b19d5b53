"""Logits to masks (two-stage upsample), COCO RLE and atomic PNG writing."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sa2va.errors import Sa2VAInputError
from sa2va.grounding.masks import (
    counts_to_string,
    logits_to_masks,
    mask_to_counts,
    mask_to_rle,
    rle_to_mask,
    save_mask_png,
    string_to_counts,
)

# --------------------------------------------------------------------------------------------------------------------
# logits_to_masks
# --------------------------------------------------------------------------------------------------------------------


def _two_stage(logits: torch.Tensor, size: tuple[int, int], square: int) -> torch.Tensor:
    up = F.interpolate(logits.float()[:, None], size=(square, square), mode="bilinear", align_corners=False)
    return F.interpolate(up, size=size, mode="bilinear", align_corners=False)[:, 0] > 0


def test_two_stage_upsample_matches_explicit_computation_and_differs_from_one_stage():
    logits = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(0)) * 4
    size = (37, 51)
    masks = logits_to_masks(logits, size, 64)
    assert masks.shape == (4, 37, 51) and masks.dtype == torch.bool
    assert torch.equal(masks, _two_stage(logits, size, 64))
    one_stage = F.interpolate(logits[:, None], size=size, mode="bilinear", align_corners=False)[:, 0] > 0
    assert not torch.equal(masks, one_stage)


def test_accepts_channel_dim_and_low_precision():
    logits = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    masks = logits_to_masks(logits, (20, 10), 32)
    assert masks.shape == (2, 20, 10)
    assert torch.equal(masks, _two_stage(logits[:, 0], (20, 10), 32))


def test_threshold_is_the_reference_sigmoid_test():
    logits = torch.tensor([[[-1.0, 1e-9], [1e-3, 5.0]]])
    masks = logits_to_masks(logits, (2, 2), 2)  # same sizes: both resizes are the identity
    # sigmoid(1e-9) rounds to exactly 0.5 in float32, so the reference keeps that pixel off
    assert masks[0].tolist() == [[False, False], [True, True]]


def test_no_masks_and_bad_shapes():
    assert logits_to_masks(torch.zeros(0, 8, 8), (5, 6), 16).shape == (0, 5, 6)
    with pytest.raises(Sa2VAInputError, match="expected \\(num_masks, h, w\\)"):
        logits_to_masks(torch.zeros(2, 3, 8, 8), (5, 6), 16)
    with pytest.raises(Sa2VAInputError, match="positive"):
        logits_to_masks(torch.zeros(1, 8, 8), (0, 6), 16)


# --------------------------------------------------------------------------------------------------------------------
# RLE
# --------------------------------------------------------------------------------------------------------------------


def test_counts_are_column_major_and_start_with_background():
    mask = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)
    # column-major order: 0 0 | 1 1 | 1 0
    assert mask_to_counts(mask) == [2, 3, 1]
    assert mask_to_counts(np.ones((2, 2), bool)) == [0, 4]
    assert mask_to_counts(np.zeros((2, 3), bool)) == [6]
    rle = mask_to_rle(mask)
    assert rle == {"size": [2, 3], "counts": [2, 3, 1]}


def test_compressed_string_matches_pycocotools_known_values():
    # expected strings produced by pycocotools 2.x (mask.encode / mask.frPyObjects)
    mask = np.zeros((3, 5), dtype=bool)
    mask[:, 1:3] = True
    mask[1, 4] = True
    assert mask_to_counts(mask) == [3, 6, 4, 1, 1]
    # from the 4th count on, the count two places back is subtracted: 1 - 6 = -5 -> "K" (sign bit set)
    assert mask_to_rle(mask, compress=True) == {"size": [3, 5], "counts": "364KM"}
    counts = [100, 3, 50, 1, 7, 2000]  # multi-group numbers, positive and negative deltas
    assert counts_to_string(counts) == "T33b1NeN_n1"
    assert string_to_counts("T33b1NeN_n1") == counts
    assert string_to_counts(b"364KM") == [3, 6, 4, 1, 1]


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 48), (1, 300)])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.5, 1.0])
def test_rle_round_trip(shape, density):
    mask = np.random.default_rng(hash((shape, density)) % 2**32).random(shape) < density
    for compress in (False, True):
        rle = mask_to_rle(mask, compress=compress)
        assert rle["size"] == list(shape)
        decoded = rle_to_mask(rle)
        assert decoded.dtype == bool and np.array_equal(decoded, mask)
    bytes_rle = {"size": list(shape), "counts": mask_to_rle(mask, compress=True)["counts"].encode()}
    assert np.array_equal(rle_to_mask(bytes_rle), mask)


def test_rle_of_blocky_mask_round_trips_with_long_runs():
    mask = np.zeros((400, 300), dtype=bool)
    mask[10:390, 5:20] = True
    mask[:, 250:] = True
    rle = mask_to_rle(mask, compress=True)
    assert string_to_counts(rle["counts"]) == mask_to_counts(mask)
    assert np.array_equal(rle_to_mask(rle), mask)


def test_rle_errors():
    with pytest.raises(Sa2VAInputError, match="add up to"):
        rle_to_mask({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(Sa2VAInputError, match="keys"):
        rle_to_mask({"counts": [4]})
    with pytest.raises(Sa2VAInputError, match="truncated"):
        string_to_counts("P")  # 'P' = 32: continuation bit set, no next group
    with pytest.raises(Sa2VAInputError, match="Invalid character"):
        string_to_counts("3 4")
    with pytest.raises(Sa2VAInputError, match="expected \\(height, width\\)"):
        mask_to_rle(np.zeros((1, 2, 2), bool))


# --------------------------------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------------------------------


def test_save_mask_png_writes_atomically(tmp_path):
    mask = np.zeros((6, 9), dtype=bool)
    mask[2:4, 3:8] = True
    path = save_mask_png(mask, tmp_path / "mask.png")
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (9, 6)
        assert np.array_equal(np.asarray(image) == 255, mask)
        assert set(np.unique(np.asarray(image)).tolist()) == {0, 255}
    assert os.listdir(tmp_path) == ["mask.png"]  # no temporary file left behind
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # readable by others (umask decides), unlike mkstemp's 0600

    save_mask_png(~mask, path, mode="1")  # overwrites in place
    with Image.open(path) as image:
        assert image.mode == "1"
        assert np.array_equal(np.asarray(image), ~mask)
    assert os.listdir(tmp_path) == ["mask.png"]


def test_save_mask_png_errors(tmp_path):
    with pytest.raises(Sa2VAInputError, match="does not exist"):
        save_mask_png(np.ones((2, 2), bool), tmp_path / "missing" / "mask.png")
    with pytest.raises(Sa2VAInputError, match="empty mask"):
        save_mask_png(np.ones((0, 2), bool), tmp_path / "mask.png")
    assert os.listdir(tmp_path) == []
