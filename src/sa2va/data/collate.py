"""Training samples → tokenised examples → padded batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sa2va.data.sample import TrainingSample
from sa2va.grounding.visual_prompts import region_cells
from sa2va.processing.images import sam2_pixel_values_batch
from sa2va.processing.processor import Sa2VAProcessor, TrainingInputs


@dataclass
class EncodedSample:
    """One tokenised sample.

    Attributes:
        inputs: ids, labels and MLLM visual inputs.
        sam2_pixels: `(num_frames, 3, S, S)` SAM2 input of the frames, or `None` for text-only samples.
        targets: `(num_seg, num_frames, S/4, S/4)` bool masks at SAM2's low-res logit size, or `None`.
    """

    inputs: TrainingInputs
    sam2_pixels: torch.Tensor | None
    targets: torch.Tensor | None


@dataclass
class TrainingBatch:
    """Right-padded batch.

    Attributes:
        input_ids, labels, attention_mask, mm_token_type_ids: `(batch, seq)`.
        pixel_values: all samples' MLLM pixels concatenated (InternVL tiles or Qwen-VL patches), or `None`.
        image_grid_thw: `(num_images, 3)` (Qwen-VL), or `None`.
        tiles: per sample, InternVL tiles in `pixel_values` (0 for text-only).
        region_cells: per sample, `(num_regions, 256)` or `None`.
        sam2_pixels, targets: per sample, as in :class:`EncodedSample`.
        seeds: per sample, the seed of its random draws in the mask loss (five-objects rule, points), so a sample
            is treated the same whichever process or batch it lands in.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    tiles: list[int]
    region_cells: list[torch.Tensor | None]
    sam2_pixels: list[torch.Tensor | None]
    targets: list[torch.Tensor | None]
    seeds: list[int]

    @property
    def num_samples(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> TrainingBatch:
        def move(x):
            return x.to(device) if isinstance(x, torch.Tensor) else x

        return TrainingBatch(
            **{k: [move(v) for v in value] if isinstance(value, list) else move(value) for k, value in vars(self).items()}
        )


def encode_sample(sample: TrainingSample, processor: Sa2VAProcessor, max_length: int = 8192) -> EncodedSample:
    """Tokenise one sample and prepare its SAM2 inputs and mask targets.

    Raises:
        ValueError: the sample's `[SEG]` count differs from its masks, or truncation would cut visual tokens.
    """
    frames = [sample.image] if sample.image is not None else sample.frames
    is_video = sample.frames is not None
    cells = None
    if sample.region_masks is not None:
        cells = region_cells(sample.region_masks.astype(bool), processor.region_grid)
    turns = [(turn.user, turn.assistant) for turn in sample.conversation]
    inputs = processor.encode_conversation(turns, frames, is_video=is_video, region_cells=cells)
    if inputs.input_ids.shape[0] > max_length:
        if (inputs.mm_token_type_ids[max_length:] != 0).any() or _cuts_internvl_image(inputs, processor, max_length):
            raise ValueError(f"{sample.source}: truncation to {max_length} tokens would cut the visual tokens")
        inputs.input_ids, inputs.labels = inputs.input_ids[:max_length], inputs.labels[:max_length]
        inputs.mm_token_type_ids = inputs.mm_token_type_ids[:max_length]
    num_seg = int((inputs.input_ids == processor.seg_token_id).sum())
    if num_seg > len(sample.masks):
        raise ValueError(f"{sample.source}: {num_seg} [SEG] tokens but {len(sample.masks)} masks")
    if frames is None:
        return EncodedSample(inputs, None, None)
    size = processor.config.sam2_image_size
    sam2_pixels = sam2_pixel_values_batch(frames, size)
    targets = None
    if num_seg:
        masks = np.stack([m if m.ndim == 3 else m[None] for m in sample.masks[:num_seg]]).astype(np.float32)
        low = size // 4
        targets = F.interpolate(torch.from_numpy(masks), size=(low, low), mode="nearest") > 0.5  # (n, T, h, w)
    return EncodedSample(inputs, sam2_pixels, targets)


def _cuts_internvl_image(inputs: TrainingInputs, processor: Sa2VAProcessor, max_length: int) -> bool:
    if not processor.config.is_internvl:
        return False
    context = processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    return bool((inputs.input_ids[max_length:] == context).any())


def collate(samples: list[EncodedSample], pad_token_id: int, seeds: list[int] | None = None) -> TrainingBatch:
    """Right-pad a list of encoded samples into one batch (`seeds`: per-sample loss seeds, default 0, 1, ...)."""
    length = max(s.inputs.input_ids.shape[0] for s in samples)
    batch = len(samples)
    input_ids = torch.full((batch, length), pad_token_id, dtype=torch.long)
    labels = torch.full((batch, length), -100, dtype=torch.long)
    attention = torch.zeros(batch, length, dtype=torch.long)
    token_types = torch.zeros(batch, length, dtype=torch.long)
    for i, s in enumerate(samples):
        n = s.inputs.input_ids.shape[0]
        input_ids[i, :n], labels[i, :n], attention[i, :n] = s.inputs.input_ids, s.inputs.labels, 1
        token_types[i, :n] = s.inputs.mm_token_type_ids
    pixels = [s.inputs.pixel_values for s in samples if s.inputs.pixel_values is not None]
    grids = [s.inputs.extra["image_grid_thw"] for s in samples if "image_grid_thw" in s.inputs.extra]
    return TrainingBatch(
        input_ids=input_ids,
        labels=labels,
        attention_mask=attention,
        mm_token_type_ids=token_types,
        pixel_values=torch.cat(pixels) if pixels else None,
        image_grid_thw=torch.cat(grids) if grids else None,
        tiles=[s.inputs.pixel_values.shape[0] if s.inputs.pixel_values is not None else 0 for s in samples],
        region_cells=[s.inputs.region_cells for s in samples],
        sam2_pixels=[s.sam2_pixels for s in samples],
        targets=[s.targets for s in samples],
        seeds=list(seeds) if seeds is not None else list(range(len(samples))),
    )


__all__ = ["EncodedSample", "TrainingBatch", "encode_sample", "collate"]
