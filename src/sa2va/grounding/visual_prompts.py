"""Visual prompts ("What is region1?"): region masks checked, and turned into the MLLM's 16×16 region cells.

Region masks come from the user directly, or from boxes / points sent through SAM2 first (an extension of the
reference, which only takes masks).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Sam2VideoModel

from sa2va.errors import Sa2VAInputError
from sa2va.grounding.masks import logits_to_masks
from sa2va.modeling.sam2_prompt import Sam2ImageFeatures, decode_geometric_prompts


def check_mask_prompts(mask_prompts, image_size: tuple[int, int]) -> np.ndarray:
    """Validate region masks for one image.

    Args:
        mask_prompts: `(num_regions, H, W)` or `(H, W)` array/tensor, or the reference's list holding one such array
            per image (only one image is supported, as in the reference).
        image_size: `(width, height)` of the image.

    Returns:
        `(num_regions, H, W)` bool array.

    Raises:
        Sa2VAInputError: wrong type, dimensionality or size, no region, or an empty region.
    """
    if isinstance(mask_prompts, (list, tuple)):
        if len(mask_prompts) != 1:
            raise Sa2VAInputError(
                f"mask_prompts holds {len(mask_prompts)} entries; expected one (num_regions, H, W) array for the "
                "single image of the request."
            )
        mask_prompts = mask_prompts[0]
    if isinstance(mask_prompts, torch.Tensor):
        mask_prompts = mask_prompts.detach().cpu().numpy()
    if not isinstance(mask_prompts, np.ndarray):
        raise Sa2VAInputError(
            f"mask_prompts must be a numpy array or torch tensor of shape (num_regions, H, W), got {type(mask_prompts)}."
        )
    if mask_prompts.ndim == 2:
        mask_prompts = mask_prompts[None]
    width, height = image_size
    if mask_prompts.ndim != 3 or mask_prompts.shape[1:] != (height, width):
        raise Sa2VAInputError(
            f"mask_prompts has shape {tuple(mask_prompts.shape)}; expected (num_regions, {height}, {width}) to match "
            f"the {width}x{height} image."
        )
    if mask_prompts.shape[0] == 0:
        raise Sa2VAInputError("mask_prompts holds no region; give at least one (H, W) mask.")
    masks = mask_prompts.astype(bool)
    empty = [i + 1 for i in range(masks.shape[0]) if not masks[i].any()]
    if empty:
        raise Sa2VAInputError(f"region(s) {empty} of mask_prompts are empty; every region needs at least one pixel.")
    return masks


def region_cells(masks: np.ndarray, grid: int) -> torch.Tensor:
    """Nearest-resize each region to the `grid × grid` feature grid of one tile, flattened row-major.

    Args:
        masks: `(num_regions, H, W)` bool, at the original image size.
        grid: cells per side (`tile_size / patch_size × downsample_ratio`, 16 for InternVL).

    Returns:
        `(num_regions, grid * grid)` bool; the count of `True` per row is the region's token count.
    """
    resized = F.interpolate(torch.from_numpy(masks).float()[None], size=(grid, grid), mode="nearest")[0]
    return resized.bool().reshape(masks.shape[0], -1)


def masks_from_geometry(
    sam2: Sam2VideoModel,
    features: Sam2ImageFeatures,
    image_size: tuple[int, int],
    boxes: np.ndarray | None = None,
    points: np.ndarray | None = None,
) -> np.ndarray:
    """Turn region boxes or points into region masks with SAM2's own prompt path.

    Args:
        sam2: the SAM2 model.
        features: SAM2 features of the image (`batch == 1`).
        image_size: `(width, height)` of the image.
        boxes: `(num_regions, 4)` xyxy pixel boxes on the original image.
        points: `(num_regions, 2)` xy pixel points (one foreground click per region) on the original image.

    Returns:
        `(num_regions, H, W)` bool masks.

    Raises:
        Sa2VAInputError: both or neither given, or wrong shapes.
    """
    if (boxes is None) == (points is None):
        raise Sa2VAInputError("give region boxes or region points, not both.")
    width, height = image_size
    size = sam2.prompt_encoder.input_image_size
    scale = np.array([size / width, size / height], dtype=np.float32)
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
            raise Sa2VAInputError(f"region boxes have shape {boxes.shape}; expected (num_regions, 4) xyxy pixels.")
        scaled = torch.from_numpy(boxes * np.tile(scale, 2))
        prediction = decode_geometric_prompts(sam2, features, boxes=scaled)
    else:
        points = np.asarray(points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
            raise Sa2VAInputError(f"region points have shape {points.shape}; expected (num_regions, 2) xy pixels.")
        scaled = torch.from_numpy(points * scale)[:, None, :]  # one click per region
        prediction = decode_geometric_prompts(sam2, features, points=scaled)
    masks = logits_to_masks(prediction.low_res_logits[0], (height, width), size)
    return masks.cpu().numpy()


__all__ = ["check_mask_prompts", "region_cells", "masks_from_geometry"]
