"""Prompt SAM2's mask decoder with Sa2VA language tokens, on image features encoded once per frame.

Reference behaviour (REFERENCE_SPEC §1.9): the sparse prompt is two "not-a-point" tokens followed by the 256-d
language token; the dense prompt is `no_mask_embed`; the decoder always runs in multimask mode and the candidate with
the highest predicted IoU is kept; the object-score head never suppresses the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Sam2VideoModel


@dataclass
class Sam2ImageFeatures:
    """SAM2 backbone output for a batch of frames, ready for the mask decoder.

    Attributes:
        image_embeddings: `(batch, 256, S/16, S/16)` top FPN level with `no_memory_embedding` added (the
            "initial conditioning frame" path of SAM2).
        high_res_features: the two finer FPN levels already projected by `conv_s0`/`conv_s1`:
            `(batch, 32, S/4, S/4)` and `(batch, 64, S/8, S/8)`.
    """

    image_embeddings: torch.Tensor
    high_res_features: list[torch.Tensor]

    @property
    def batch_size(self) -> int:
        return self.image_embeddings.shape[0]

    def select(self, index: int | slice) -> Sam2ImageFeatures:
        """Features of some frames only, keeping the batch dimension."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Sam2ImageFeatures(self.image_embeddings[index], [f[index] for f in self.high_res_features])


@dataclass
class Sam2Prediction:
    """Best-of-three decoder output per prompt.

    Attributes:
        low_res_logits: `(batch, num_prompts, S/4, S/4)` float mask logits of the chosen candidate.
        iou_scores: `(batch, num_prompts)` predicted IoU of the chosen candidate.
        object_score_logits: `(batch, num_prompts)` occlusion-head logits (reported, never used to blank a mask).
        mask_tokens: `(batch, num_prompts, 256)` decoder output token of the chosen candidate (object pointer input).
    """

    low_res_logits: torch.Tensor
    iou_scores: torch.Tensor
    object_score_logits: torch.Tensor
    mask_tokens: torch.Tensor


def encode_images(sam2: Sam2VideoModel, pixel_values: torch.Tensor) -> Sam2ImageFeatures:
    """Run SAM2's image encoder once; gradients flow (unlike `Sam2Model.get_image_embeddings`).

    Args:
        sam2: the SAM2 model.
        pixel_values: `(batch, 3, S, S)` normalised SAM2 input (see `sa2va.processing.images.sam2_pixel_values`).

    Returns:
        The features of every frame.
    """
    batch_size = pixel_values.shape[0]
    pixel_values = pixel_values.to(device=sam2.no_memory_embedding.device, dtype=sam2.no_memory_embedding.dtype)
    feature_maps = sam2.get_image_features(pixel_values, return_dict=True).fpn_hidden_states  # each (HW, B, C)
    feature_maps = list(feature_maps)
    feature_maps[-1] = feature_maps[-1] + sam2.no_memory_embedding
    maps = [
        feat.permute(1, 2, 0).reshape(batch_size, -1, *size)
        for feat, size in zip(feature_maps, sam2.backbone_feature_sizes)
    ]
    return Sam2ImageFeatures(image_embeddings=maps[-1], high_res_features=maps[:-1])


def not_a_point_tokens(sam2: Sam2VideoModel, batch_size: int, num_prompts: int) -> torch.Tensor:
    """The reference's empty point prompt: a dummy point with label -1 plus the encoder's own padding point.

    Returns:
        `(batch, num_prompts, 2, 256)` sparse embeddings, both equal to `not_a_point_embed`.
    """
    weight = sam2.prompt_encoder.not_a_point_embed.weight
    points = torch.zeros(batch_size, num_prompts, 1, 2, device=weight.device, dtype=weight.dtype)
    labels = -torch.ones(batch_size, num_prompts, 1, dtype=torch.int32, device=weight.device)
    sparse, _ = sam2.prompt_encoder(input_points=points, input_labels=labels, input_boxes=None, input_masks=None)
    return sparse


def decode_masks(
    sam2: Sam2VideoModel,
    features: Sam2ImageFeatures,
    sparse_embeddings: torch.Tensor,
    dense_embeddings: torch.Tensor | None = None,
    multimask: bool = True,
) -> Sam2Prediction:
    """Run the mask decoder with arbitrary sparse tokens and keep the best-IoU candidate (multimask) or token 0.

    Args:
        sam2: the SAM2 model.
        features: features of `batch` frames.
        sparse_embeddings: `(batch, num_prompts, num_tokens, 256)` prompt tokens; each prompt is decoded separately
            against the same frame features (SAM2's "point batch").
        dense_embeddings: `(batch, 256, S/16, S/16)` dense prompt; default `no_mask_embed` (no mask input).
        multimask: three candidates and the best predicted IoU (Sa2VA always), or the single-mask token.

    Returns:
        The chosen candidate per prompt. No object-score suppression is applied (REFERENCE_SPEC §1.9 step 6).
    """
    batch_size, num_prompts = sparse_embeddings.shape[:2]
    if dense_embeddings is None:
        dense_embeddings = sam2.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense_embeddings = dense_embeddings.expand(batch_size, -1, *features.image_embeddings.shape[-2:])
    positional = sam2.get_image_wide_positional_embeddings().repeat(batch_size, 1, 1, 1)
    masks, iou, mask_tokens, object_scores = sam2.mask_decoder(
        image_embeddings=features.image_embeddings,
        image_positional_embeddings=positional,
        sparse_prompt_embeddings=sparse_embeddings.to(features.image_embeddings.dtype),
        dense_prompt_embeddings=dense_embeddings,
        multimask_output=multimask,
        high_resolution_features=features.high_res_features,
    )
    # masks: (B, P, 3, h, w); iou: (B, P, 3); mask_tokens: (B, P, 3, C); object_scores: (B, P, 1)
    best = iou.argmax(dim=-1)  # (B, P)
    low_res = torch.gather(masks, 2, best[..., None, None, None].expand(-1, -1, 1, *masks.shape[-2:])).squeeze(2)
    best_iou = torch.gather(iou, 2, best[..., None]).squeeze(2)
    best_tokens = torch.gather(mask_tokens, 2, best[..., None, None].expand(-1, -1, 1, mask_tokens.shape[-1]))
    return Sam2Prediction(
        low_res_logits=low_res,
        iou_scores=best_iou,
        object_score_logits=object_scores.squeeze(-1),
        mask_tokens=best_tokens.squeeze(2),
    )


def decode_language_prompts(
    sam2: Sam2VideoModel, features: Sam2ImageFeatures, prompt_embeddings: torch.Tensor, multimask: bool = True
) -> Sam2Prediction:
    """Decode one mask per language token: sparse = `[not_a_point, not_a_point, language]`.

    Args:
        sam2: the SAM2 model.
        features: features of `batch` frames.
        prompt_embeddings: `(batch, num_prompts, 256)` projected `[SEG]` states; prompt `j` of frame `b` is decoded
            on frame `b`.
        multimask: best of three candidates (the reference) or the single-mask token (`Sa2VAConfig.multimask_output`).

    Returns:
        Best-of-three logits `(batch, num_prompts, S/4, S/4)` and scores.
    """
    batch_size, num_prompts = prompt_embeddings.shape[:2]
    padding = not_a_point_tokens(sam2, batch_size, num_prompts)  # (B, P, 2, C)
    language = prompt_embeddings[:, :, None, :].to(padding.device, padding.dtype)
    sparse = torch.cat([padding, language], dim=2)  # (B, P, 3, C)
    return decode_masks(sam2, features, sparse, multimask=multimask)


def decode_geometric_prompts(
    sam2: Sam2VideoModel,
    features: Sam2ImageFeatures,
    points: torch.Tensor | None = None,
    point_labels: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
) -> Sam2Prediction:
    """Plain SAM2 prompting with clicks or boxes, in SAM2 input coordinates (pixels of the S×S resized frame).

    Args:
        sam2: the SAM2 model.
        features: features of one frame (`batch == 1`).
        points: `(num_prompts, num_points, 2)` xy points, or `None`.
        point_labels: `(num_prompts, num_points)` 1 = foreground, 0 = background; defaults to all ones.
        boxes: `(num_prompts, 4)` xyxy boxes, or `None`.

    Returns:
        Best-of-three logits `(1, num_prompts, S/4, S/4)`.
    """
    weight = sam2.prompt_encoder.not_a_point_embed.weight
    if points is not None:
        points = points[None].to(weight.device, weight.dtype)
        if point_labels is None:
            point_labels = torch.ones(points.shape[:-1], dtype=torch.int32, device=weight.device)
        else:
            point_labels = point_labels[None].to(weight.device, torch.int32)
    if boxes is not None:
        boxes = boxes[None].to(weight.device, weight.dtype)
    sparse, _ = sam2.prompt_encoder(input_points=points, input_labels=point_labels, input_boxes=boxes, input_masks=None)
    return decode_masks(sam2, features, sparse)


__all__ = [
    "Sam2ImageFeatures",
    "Sam2Prediction",
    "encode_images",
    "not_a_point_tokens",
    "decode_masks",
    "decode_language_prompts",
    "decode_geometric_prompts",
]
