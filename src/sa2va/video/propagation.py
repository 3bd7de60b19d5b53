"""SAM2 memory tracking of Sa2VA objects through a video, all objects in one batched pass.

The reference behaviour (REFERENCE_SPEC §2.3–§2.5), on transformers' `Sam2VideoModel` submodules:

- every key frame is decoded from its own features plus `no_memory_embedding` (no memory), with the sparse prompt
  `[not_a_point, not_a_point, language]`; the same language token is injected on every key frame;
- key-frame memories are encoded from `sigmoid(logits) * 20 - 10` of the 256→S upsampled logits (not binarised);
- other frames attend to the memories of all key frames (temporal slot 0) and of the 6 previous tracked frames,
  plus up to 16 object pointers (split into 4 tokens of 64) with no temporal encoding;
- tracked frames are decoded with the two not-a-point tokens only, multimask with the best predicted IoU kept;
- the object-score head never blanks a mask; it only gates the object pointer (`no_object_pointer`).

Unlike the reference, each frame's backbone features are computed once and shared by every object (objects are the
batch dimension), features are dropped as soon as the frame is done, and only the memories inside the attention
window are kept, so memory does not grow with the video length. Frames before the first key frame are tracked
backwards (the reference never needs this: its key frames are the first frames).

`Sa2VA-i` mode (`key_frame_masks=`): the key frames arrive as binary masks (decoded by Sa2VA's fine-tuned decoder)
and a separately loaded original SAM2 (v1 or 2.1) propagates them with its stock behaviour: masks used as outputs
(`±10` logits), object pointers from the single-mask token, absent objects blanked, and SAM2.1's occlusion embedding
and pointer temporal encoding when its config enables them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import Sam2VideoModel

from sa2va.modeling.sam2_prompt import (
    Sam2ImageFeatures,
    Sam2Prediction,
    decode_language_prompts,
    decode_masks,
    not_a_point_tokens,
)


@dataclass
class FrameFeatures:
    """Backbone output of one frame.

    Attributes:
        top: `(1, 256, S/16, S/16)` top FPN level, without `no_memory_embedding`.
        top_position: `(S/16 * S/16, 1, 256)` sine positional encoding of the top level.
        high_res: `(1, 32, S/4, S/4)` and `(1, 64, S/8, S/8)`, already through `conv_s0` / `conv_s1`.
    """

    top: torch.Tensor
    top_position: torch.Tensor
    high_res: list[torch.Tensor]


@dataclass
class MemoryEntry:
    """What a processed frame leaves for later frames.

    Attributes:
        features: `(S/16 * S/16, num_objects, 64)` spatial memory, stored in bfloat16 as the reference.
        object_pointer: `(num_objects, 256)`.
        low_res_logits: `(num_objects, S/4, S/4)` mask logits; dropped from tracked frames once yielded (later frames
            need only the memory and the pointer), kept for key frames until their turn comes.
    """

    features: torch.Tensor
    object_pointer: torch.Tensor
    low_res_logits: torch.Tensor | None = None


def encode_frame(sam2: Sam2VideoModel, pixel_values: torch.Tensor) -> FrameFeatures:
    """Run the image encoder on one frame `(1, 3, S, S)`."""
    weight = sam2.no_memory_embedding
    pixel_values = pixel_values.to(weight.device, weight.dtype)
    out = sam2.get_image_features(pixel_values, return_dict=True)
    maps = [m.permute(1, 2, 0).reshape(1, -1, *size) for m, size in zip(out.fpn_hidden_states, sam2.backbone_feature_sizes)]
    return FrameFeatures(top=maps[-1], top_position=out.fpn_position_encoding[-1], high_res=maps[:-1])


class Sa2VATracker:
    """Segments `num_objects` language-prompted objects through a video.

    Args:
        sam2: the SAM2 video model.
        num_frames: frames in the video, T.
        load_frame: `t -> (1, 3, S, S)` SAM2 input of frame `t`; called once per frame.
        key_frames: frames that receive the language prompts (sorted, unique).
        prompts: `(num_objects, 256)` projected `[SEG]` states, one per object (Sa2VA mode).
        window: how many tracked frames' memories to keep around the current frame (≥ 16 covers the reference's
            6 spatial memories and 15 past object pointers).
        key_frame_masks: Sa2VA-i mode instead of `prompts`: `t -> (num_objects, S, S)` bool masks of key frame `t`,
            propagated by `sam2` with stock SAM2 behaviour.
        num_objects: objects tracked (Sa2VA-i mode, where there are no prompts).
        multimask: how key frames decode the prompts (`Sa2VAConfig.multimask_output`).
    """

    def __init__(
        self,
        sam2: Sam2VideoModel,
        num_frames: int,
        load_frame: Callable[[int], torch.Tensor],
        key_frames: list[int],
        prompts: torch.Tensor | None = None,
        window: int = 16,
        key_frame_masks: Callable[[int], torch.Tensor] | None = None,
        num_objects: int | None = None,
        multimask: bool = True,
    ):
        if (prompts is None) == (key_frame_masks is None):
            raise ValueError("give language prompts (Sa2VA) or key-frame masks (Sa2VA-i), not both")
        self.sam2 = sam2
        self.num_frames = num_frames
        self.load_frame = load_frame
        self.key_frames = sorted(set(key_frames))
        self.prompts = prompts
        self.multimask = multimask
        self.key_frame_masks = key_frame_masks
        self.num_objects = prompts.shape[0] if prompts is not None else int(num_objects)
        # Sa2VA's override keeps every mask; a stock SAM2 propagator (Sa2VA-i) blanks objects it thinks are absent
        self.suppress_absent = key_frame_masks is not None
        self.window = window
        self.num_maskmem = sam2.config.num_maskmem
        self.max_pointers = min(num_frames, sam2.config.max_object_pointers_in_encoder)
        self.cond: dict[int, MemoryEntry] = {}
        self.tracked: dict[int, MemoryEntry] = {}
        self.memory_position: torch.Tensor | None = None  # (HW, B, 64): the same for every frame

    # ------------------------------------------------------------------ public
    @torch.inference_mode()
    def run(self) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield `(t, low_res_logits (num_objects, S/4, S/4))` for t = 0 … T-1 in increasing order."""
        yield from self.steps()

    def steps(self) -> Iterator[tuple[int, torch.Tensor]]:
        """:meth:`run` without inference mode: gradients flow through memories when the caller enables them
        (training with `video_key_frames`)."""
        for t in self.key_frames:
            self.cond[t] = self._key_frame(t)
        first = self.key_frames[0]
        # Frames before the first key frame: tracked backwards first, buffered (low-res logits only), then yielded.
        before: dict[int, torch.Tensor] = {}
        for t in range(first - 1, -1, -1):
            entry = self._track(t, reverse=True)
            before[t], entry.low_res_logits = entry.low_res_logits.half(), None
            self._evict(t)
        for t in range(first):
            yield t, before.pop(t).float()
        for t in range(first, self.num_frames):
            if t in self.cond:
                yield t, self.cond[t].low_res_logits
            else:
                entry = self._track(t, reverse=False)
                yield t, entry.low_res_logits
                entry.low_res_logits = None
                self._evict(t)

    # ------------------------------------------------------------------ steps
    def _key_frame(self, t: int) -> MemoryEntry:
        features = encode_frame(self.sam2, self.load_frame(t))
        if self.key_frame_masks is not None:
            return self._mask_key_frame(features, self.key_frame_masks(t))
        image = Sam2ImageFeatures(features.top + self.sam2.no_memory_embedding.reshape(1, -1, 1, 1), features.high_res)
        prediction = decode_language_prompts(self.sam2, image, self.prompts[None], self.multimask)  # prompts = objects
        prediction = Sam2Prediction(*(x[0] for x in (
            prediction.low_res_logits, prediction.iou_scores, prediction.object_score_logits, prediction.mask_tokens
        )))
        return self._memorise(features, prediction)

    def _track(self, t: int, reverse: bool) -> MemoryEntry:
        features = encode_frame(self.sam2, self.load_frame(t))
        conditioned = self._attend_memory(t, features, reverse)  # (B, 256, S/16, S/16)
        batch = self.num_objects
        image = Sam2ImageFeatures(conditioned, [h.expand(batch, -1, -1, -1) for h in features.high_res])
        prediction = decode_masks(self.sam2, image, not_a_point_tokens(self.sam2, batch, 1))
        prediction = Sam2Prediction(*(x[:, 0] for x in (
            prediction.low_res_logits, prediction.iou_scores, prediction.object_score_logits, prediction.mask_tokens
        )))
        entry = self._memorise(features, prediction)
        self.tracked[t] = entry
        return entry

    def _mask_key_frame(self, features: FrameFeatures, masks: torch.Tensor) -> MemoryEntry:
        """Sa2VA-i key frame: the given masks are the output (`±10` logits), as SAM2 does with mask inputs."""
        sam2, batch = self.sam2, self.num_objects
        size = sam2.config.image_size
        masks = masks.to(features.top.device, features.top.dtype)[:, None]  # (B, 1, S, S) in {0, 1}
        if masks.shape[-2:] != (size, size):
            masks = F.interpolate(masks.float(), size=(size, size), mode="bilinear", antialias=True).to(masks.dtype)
        high_res = masks * 20.0 - 10.0
        low_res = F.interpolate(
            high_res.float(), size=sam2.prompt_encoder.mask_input_size, mode="bilinear", antialias=True
        )[:, 0]
        # the object pointer comes from decoding the mask as a dense prompt (single-mask token) on the raw features
        # (no `no_memory_embedding` on this path), as stock SAM2's `_use_mask_as_output`
        dense = sam2.prompt_encoder.mask_embed(sam2.mask_downsample(masks))
        image = Sam2ImageFeatures(
            features.top.expand(batch, -1, -1, -1), [h.expand(batch, -1, -1, -1) for h in features.high_res]
        )
        decoded = decode_masks(sam2, image, not_a_point_tokens(sam2, batch, 1), dense, multimask=False)
        appearing = masks.flatten(1).gt(0).any(dim=1).to(features.top.dtype)
        prediction = Sam2Prediction(
            low_res_logits=low_res,
            iou_scores=torch.ones(batch, dtype=low_res.dtype, device=low_res.device),
            object_score_logits=appearing * 20.0 - 10.0,
            mask_tokens=decoded.mask_tokens[:, 0],
        )
        return self._memorise(features, prediction, high_res=high_res)

    def _memorise(
        self, features: FrameFeatures, prediction: Sam2Prediction, high_res: torch.Tensor | None = None
    ) -> MemoryEntry:
        """Object pointer and spatial memory of a decoded frame (all objects)."""
        sam2 = self.sam2
        appearing = (prediction.object_score_logits > 0)[:, None]  # (B, 1)
        low_res = prediction.low_res_logits
        if self.suppress_absent:  # stock SAM2: an absent object's mask is -1024 everywhere
            low_res = torch.where(appearing[..., None], low_res, torch.full_like(low_res, -1024.0))
        pointer = sam2.object_pointer_proj(prediction.mask_tokens)  # (B, 256)
        appearing = appearing.to(pointer.dtype)
        pointer = appearing * pointer + (1 - appearing) * sam2.no_object_pointer
        size = sam2.config.image_size
        if high_res is None:
            high_res = F.interpolate(low_res[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)
        mask_for_memory = torch.sigmoid(high_res.float()) * sam2.config.sigmoid_scale_for_mem_enc
        mask_for_memory = (mask_for_memory + sam2.config.sigmoid_bias_for_mem_enc).to(features.top.dtype)
        top = features.top.expand(self.num_objects, -1, -1, -1)
        memory, position = sam2.memory_encoder(top, mask_for_memory)  # (B, 64, h, w) each
        if sam2.occlusion_spatial_embedding_parameter is not None:  # SAM2.1 only
            occlusion = sam2.occlusion_spatial_embedding_parameter[..., None, None]  # (1, 64, 1, 1)
            memory = memory + (1 - appearing)[..., None, None] * occlusion
        if self.memory_position is None:
            self.memory_position = position.flatten(2).permute(2, 0, 1)
        return MemoryEntry(
            features=memory.to(torch.bfloat16).flatten(2).permute(2, 0, 1),
            object_pointer=pointer,
            low_res_logits=low_res.float(),
        )

    def _attend_memory(self, t: int, features: FrameFeatures, reverse: bool) -> torch.Tensor:
        """Memory attention over key-frame memories, recent tracked memories and object pointers."""
        sam2 = self.sam2
        direction = -1 if reverse else 1
        dtype = features.top.dtype
        temporal = sam2.memory_temporal_positional_encoding  # (num_maskmem, 1, 1, 64); slot -1 = key frames
        memories, positions = [], []
        for entry in self.cond.values():
            memories.append(entry.features)
            positions.append(self.memory_position + temporal[-1])
        for offset in range(self.num_maskmem - 1, 0, -1):  # oldest first, as the reference
            entry = self.tracked.get(t - direction * offset)
            if entry is not None:
                memories.append(entry.features)
                positions.append(self.memory_position + temporal[offset - 1])
        pointers, offsets = [], []
        for k, entry in self.cond.items():
            if k >= t if reverse else k <= t:
                pointers.append(entry.object_pointer)
                offsets.append((t - k) * direction)
        for offset in range(1, self.max_pointers):
            frame = t - direction * offset
            if frame < 0 or frame >= self.num_frames:
                break
            if frame in self.tracked:
                pointers.append(self.tracked[frame].object_pointer)
                offsets.append(offset)
        num_pointer_tokens = 0
        if pointers:
            stacked = torch.stack(pointers)  # (n, B, 256)
            mem_dim = sam2.mem_dim
            splits = stacked.shape[-1] // mem_dim
            position = self._pointer_position(offsets, stacked)  # (n, B, 64)
            stacked = stacked.reshape(-1, self.num_objects, splits, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            memories.append(stacked)  # (n * 4, B, 64)
            positions.append(position.repeat_interleave(splits, dim=0))
            num_pointer_tokens = stacked.shape[0]
        batch = self.num_objects
        current = features.top.flatten(2).permute(2, 0, 1).expand(-1, batch, -1)  # (HW, B, 256)
        current_position = features.top_position.expand(-1, batch, -1)
        out = sam2.memory_attention(
            current_vision_features=current,
            memory=torch.cat(memories).to(dtype),
            current_vision_position_embeddings=current_position,
            memory_posision_embeddings=torch.cat(positions).to(dtype),
            num_object_pointer_tokens=num_pointer_tokens,
        )  # (1, B, HW, 256) batch-first inside a leading singleton
        out = out.reshape(batch, -1, out.shape[-1])  # (B, HW, 256)
        return out.transpose(1, 2).reshape(batch, -1, *features.top.shape[-2:])

    def _pointer_position(self, offsets: list[int], pointers: torch.Tensor) -> torch.Tensor:
        """Zeros for SAM2 v1 (Sa2VA); SAM2.1's projected sine encoding of the frame distance otherwise."""
        sam2 = self.sam2
        count, batch = pointers.shape[:2]
        if not sam2.config.enable_temporal_pos_encoding_for_object_pointers:
            return pointers.new_zeros(count, batch, sam2.mem_dim)
        scale = float(max(self.max_pointers - 1, 1))
        normalised = torch.tensor(offsets, device=pointers.device, dtype=torch.float32) / scale
        sine = _sine_encoding(normalised, pointers.shape[-1]).to(pointers.dtype)
        projected = sam2.temporal_positional_encoding_projection_layer(sine)  # (n, 64)
        return projected[:, None].expand(-1, batch, -1)

    def _evict(self, t: int) -> None:
        """Forget tracked memories no later frame can reach (outside the window of `t` and of the first key frame)."""
        first = self.key_frames[0]
        for frame in [f for f in self.tracked if abs(f - t) > self.window and abs(f - first) > self.window]:
            del self.tracked[frame]


def _sine_encoding(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine/cosine encoding `(n,) -> (n, dim)`, as SAM2 encodes object-pointer distances."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=positions.device)
    scales = temperature ** (2 * (steps // 2) / half)
    angles = positions[:, None] / scales
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


__all__ = ["Sa2VATracker", "FrameFeatures", "MemoryEntry", "encode_frame"]
