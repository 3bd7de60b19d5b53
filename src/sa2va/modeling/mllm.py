"""The multimodal LLM half of Sa2VA, on transformers' own InternVL, Qwen2.5-VL and Qwen3-VL classes.

One job: turn prepared inputs into generated token ids plus, for every generated token, the LLM's last-layer
post-norm hidden state computed when that token was the *input* (REFERENCE_SPEC §1.6). Those states are captured by a
hook on the final norm while `generate` runs, so no layer other than the last is ever kept.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    GenerationConfig,
    InternVLForConditionalGeneration,
    LogitsProcessorList,
    PreTrainedModel,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
)

MLLM_CLASSES: dict[str, type[PreTrainedModel]] = {
    "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
    "qwen3_vl": Qwen3VLForConditionalGeneration,
    "internvl": InternVLForConditionalGeneration,
}


def build_mllm(config) -> PreTrainedModel:
    """Instantiate the transformers MLLM class named by `config.model_type` (random weights)."""
    return MLLM_CLASSES[config.model_type](config)


def final_norm(mllm: PreTrainedModel) -> nn.Module:
    """The LLM's final norm: its output is the hidden state fed to `lm_head` (every supported family)."""
    return mllm.model.language_model.norm


@dataclass
class GenerationResult:
    """Greedy generation output.

    Attributes:
        sequences: `(batch, num_new)` generated ids (prompt excluded), padded with `pad_token_id` after the end.
        input_states: `(batch, num_new, hidden)` last-layer post-norm state computed with `sequences[:, i]` as the
            input token. The state of the final generated token is never computed (it would only predict what comes
            after the answer); its row is zero.
    """

    sequences: torch.Tensor
    input_states: torch.Tensor


@contextmanager
def record_decoding_states(mllm: PreTrainedModel) -> Iterator[list[torch.Tensor]]:
    """Collect the final-norm outputs of every decoding step after the prompt pass.

    Yields a list that fills with one `(batch, 1, hidden)` tensor per decoding step; step `t` (from 0) is the state
    whose input was the `t`-th generated token.
    """
    steps: list[torch.Tensor] = []
    seen_prompt = False

    def hook(module, args, output):
        nonlocal seen_prompt
        if not seen_prompt:  # the first call is the prompt pass: not needed, not kept
            seen_prompt = True
            return
        steps.append(output[:, -1:].detach())

    handle = final_norm(mllm).register_forward_hook(hook)
    try:
        yield steps
    finally:
        handle.remove()


@torch.inference_mode()
def generate_with_states(
    mllm: PreTrainedModel,
    model_inputs: dict[str, torch.Tensor],
    generation_config: GenerationConfig,
    logits_processor: LogitsProcessorList | None = None,
) -> GenerationResult:
    """Greedy generation that also returns the post-norm state of each generated token as input.

    Args:
        mllm: the MLLM.
        model_inputs: keyword inputs of `mllm.generate`: either `input_ids` (+ vision inputs, Qwen-VL) or
            `inputs_embeds` (InternVL, image features already spliced), with `attention_mask` `(batch, seq)`.
        generation_config: greedy config with the stop ids as `eos_token_id`.
        logits_processor: extra processors (e.g. the teacher-forcing hook of `sa2va.testing`).

    Returns:
        The generated ids and their input states.
    """
    prompt_len = model_inputs["input_ids"].shape[1] if "input_ids" in model_inputs else 0
    generation_config = copy.deepcopy(generation_config)
    generation_config.return_dict_in_generate = True
    with record_decoding_states(mllm) as steps:
        output = mllm.generate(**model_inputs, generation_config=generation_config, logits_processor=logits_processor)
    sequences = output.sequences if "input_ids" not in model_inputs else output.sequences[:, prompt_len:]
    if "inputs_embeds" in model_inputs and output.sequences.shape[1] > sequences.shape[1]:
        sequences = output.sequences[:, -sequences.shape[1] :]
    batch, num_new = sequences.shape
    hidden = final_norm(mllm).weight.shape[0]
    states = torch.zeros(batch, num_new, hidden, dtype=final_norm(mllm).weight.dtype, device=sequences.device)
    if steps:
        recorded = torch.cat(steps, dim=1)[:, : max(num_new - 1, 0)]
        states[:, : recorded.shape[1]] = recorded.to(states.device)
    return GenerationResult(sequences=sequences, input_states=states)


def internvl_image_features(mllm: InternVLForConditionalGeneration, pixel_values: torch.Tensor) -> torch.Tensor:
    """ViT → drop CLS → pixel shuffle (v2) → `mlp1`, per 448² tile.

    Args:
        pixel_values: `(num_tiles, 3, 448, 448)` normalised tiles.

    Returns:
        `(num_tiles, 256, hidden)` LLM-space visual tokens.
    """
    pixel_values = pixel_values.to(mllm.device, mllm.dtype)
    return mllm.model.get_image_features(pixel_values=pixel_values, return_dict=True).pooler_output


def internvl_splice(
    mllm: InternVLForConditionalGeneration,
    input_ids: torch.Tensor,
    image_features: torch.Tensor | None,
    region_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Embed `input_ids` and write visual tokens into the `<IMG_CONTEXT>` slots, in order.

    Args:
        input_ids: `(seq,)` ids of one prompt.
        image_features: `(num_tiles, 256, hidden)` from :func:`internvl_image_features`, or `None` for text only.
        region_masks: `(num_regions, 256)` bool, visual-prompt cells on the last tile's 16×16 grid (REFERENCE_SPEC §3);
            after that tile's 256 tokens, each region's selected tokens follow, region by region.

    Returns:
        `(seq, hidden)` input embeddings.

    Raises:
        ValueError: if the number of `<IMG_CONTEXT>` slots differs from the number of visual tokens (the reference
            silently ignores this case, a no-op "repair", §3.7).
    """
    embeds = mllm.get_input_embeddings()(input_ids.to(mllm.device))  # (seq, hidden)
    if image_features is None:
        return embeds
    tokens = [image_features[i] for i in range(image_features.shape[0])]
    if region_masks is not None:
        last = image_features[-1]  # (256, hidden): the thumbnail, or the single tile
        tokens += [last[mask.to(last.device)] for mask in region_masks]
    visual = torch.cat(tokens, dim=0).to(embeds.dtype)
    slots = input_ids.to(embeds.device) == mllm.config.image_token_id
    if int(slots.sum()) != visual.shape[0]:
        raise ValueError(f"prompt has {int(slots.sum())} <IMG_CONTEXT> slots but {visual.shape[0]} visual tokens")
    embeds = embeds.clone()
    embeds[slots] = visual
    return embeds


__all__ = [
    "MLLM_CLASSES",
    "GenerationResult",
    "build_mllm",
    "final_norm",
    "record_decoding_states",
    "generate_with_states",
    "internvl_image_features",
    "internvl_splice",
]
