"""Tiny random-weight Sa2VA models for every family, built offline, for tests, docs and benchmarks.

```python
from sa2va.testing import tiny_model, teacher_forcing
model = tiny_model("internvl")                       # random weights, real architecture and prompt format
with teacher_forcing(model, "Sure, it is [SEG]."):   # make the untrained model answer this, token by token
    out = model.predict(image=image, text="<image>\\nPlease segment the cube.")
len(out.masks)  # 1: the [SEG] state (computed by the real forward pass) prompted SAM2
```

Families: `qwen2_5_vl`, `qwen3_vl`, `internvl` (Qwen2 LLM, `qwen_chat` template) and `internvl_llama` (Llama LLM
standing in for InternLM2, `internlm2_chat` template, a BOS-adding tokenizer).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from transformers import LogitsProcessor

from sa2va.configuration import Sa2VAConfig, sam2_hiera_large_config
from sa2va.errors import Sa2VAConfigError
from sa2va.modeling.sa2va import Sa2VAModel
from sa2va.processing.processor import Sa2VAProcessor
from sa2va.testing_parts import (
    build_processor,
    build_tokenizer,
    special_token_ids,
    tiny_mllm_config,
    tiny_sam2_config,
)

FAMILIES = ("qwen2_5_vl", "qwen3_vl", "internvl", "internvl_llama")


# Sizes a tiny model's `options` may set beyond the defaults (see `tiny_config`).
TINY_OPTIONS = (
    "text", "vision", "sam2", "mask_decoder", "min_pixels", "max_pixels", "num_key_frames", "max_new_tokens",
    "multimask_output",
)


def tiny_config(
    family: str, sam2_image_size: int = 256, options: Mapping[str, Any] | None = None
) -> tuple[Sa2VAConfig, Sa2VAProcessor]:
    """A tiny config and its offline-built processor (tokenizer with every special token and chat template).

    Args:
        family: one of :data:`FAMILIES`.
        sam2_image_size: SAM2 input side (multiple of 32); real checkpoints use 1024.
        options: size overrides (Qwen families for `text` / `vision`): `text` and `vision` (see
            `sa2va.testing_parts.tiny_mllm_config`), `sam2` (`Sam2VideoConfig` attributes such as
            `memory_attention_num_layers`), `mask_decoder` (its config's attributes, e.g. `mlp_dim`), and the
            `Sa2VAConfig` fields `min_pixels`, `max_pixels`, `num_key_frames`, `max_new_tokens`, `multimask_output`.

    Raises:
        Sa2VAConfigError: unknown family or option.
    """
    if family not in FAMILIES:
        raise Sa2VAConfigError(f"unknown tiny family {family!r}; expected one of {', '.join(FAMILIES)}.")
    options = dict(options or {})
    unknown = sorted(set(options) - set(TINY_OPTIONS))
    if unknown:
        raise Sa2VAConfigError(f"unknown tiny model option(s) {unknown}; expected some of {', '.join(TINY_OPTIONS)}.")
    tokenizer = build_tokenizer(family)
    ids = special_token_ids(tokenizer)
    mllm_config = tiny_mllm_config(family, len(tokenizer), ids, options.get("text"), options.get("vision"))
    sam2_config = tiny_sam2_config(sam2_image_size)
    for sub, overrides in ((sam2_config, options.get("sam2")), (sam2_config.mask_decoder_config, options.get("mask_decoder"))):
        for key, value in (overrides or {}).items():
            if not hasattr(sub, key):
                raise Sa2VAConfigError(f"{type(sub).__name__} has no attribute {key!r}.")
            setattr(sub, key, value)
    template = {"internvl": "qwen_chat", "internvl_llama": "internlm2_chat"}.get(family)
    fields = {k: options[k] for k in TINY_OPTIONS[4:] if k in options}
    config = Sa2VAConfig(
        mllm_config=mllm_config,
        sam2_config=sam2_config,
        template=template,
        seg_token_id=ids["[SEG]"],
        **{"max_new_tokens": 64, **fields},  # short by default: tiny tokenizers spend several tokens per word
    )
    return config, Sa2VAProcessor(config, tokenizer, build_processor(family, tokenizer))


def tiny_model(
    family: str, seed: int = 0, sam2_image_size: int = 256, options: Mapping[str, Any] | None = None
) -> Sa2VAModel:
    """A tiny random-init :class:`Sa2VAModel` of `family` with its processor attached, in eval mode on CPU.

    Args:
        family: one of :data:`FAMILIES`.
        seed: weight-initialisation seed; the same seed gives the same weights.
        sam2_image_size: SAM2 input side.
        options: size overrides, see :func:`tiny_config`.
    """
    config, processor = tiny_config(family, sam2_image_size, options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sa2VAModel(config)
    model.attach_processor(processor)
    return model.eval()


class ForcedAnswer(LogitsProcessor):
    """Forces generation to emit `token_ids` in order, then the first stop id.

    Only the choice of the next token is forced: every hidden state (including the `[SEG]` states that prompt SAM2)
    still comes from the model's real forward pass over the forced prefix, exactly as in teacher forcing.
    """

    def __init__(self, token_ids: list[int], stop_id: int):
        self.token_ids = [*token_ids, stop_id]
        self._start: int | None = None
        self._last_length = -1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        length = input_ids.shape[1]
        # within one generate call the sequence grows by exactly one token per step; anything else is a new call
        if self._start is None or length != self._last_length + 1:
            self._start = length
        self._last_length = length
        step = length - self._start
        forced = self.token_ids[min(step, len(self.token_ids) - 1)]
        out = torch.full_like(scores, float("-inf"))
        out[:, forced] = 0.0
        return out


@contextmanager
def teacher_forcing(model: Sa2VAModel, answer: str) -> Iterator[ForcedAnswer]:
    """Within the block, `model` answers exactly `answer` (then its stop token), whatever it would have said.

    Args:
        model: a model with a processor attached.
        answer: the answer text, e.g. `"Sure, it is [SEG]."` or a GCG caption with `<p> … </p> [SEG]`.
    """
    tokenizer = model.processor.tokenizer
    forced = ForcedAnswer(tokenizer.encode(answer, add_special_tokens=False), model.processor.stop_token_ids[0])
    model.logits_processors.append(forced)
    try:
        yield forced
    finally:
        model.logits_processors.remove(forced)


__all__ = ["FAMILIES", "tiny_config", "tiny_model", "teacher_forcing", "ForcedAnswer", "sam2_hiera_large_config"]


# ----------------------------------------------------------------------------------------------------------------
# Official-layout fixtures
# ----------------------------------------------------------------------------------------------------------------

# Our tiny families → (official MLLM fixture family, tokenizer family)
OFFICIAL_FIXTURES = {
    "internvl": ("internvl_qwen2", "internvl"),
    "internvl_internlm2": ("internvl_internlm2", "internvl_llama"),
    "qwen2_5_vl": ("qwen2_5_vl", "qwen2_5_vl"),
    "qwen3_vl": ("qwen3_vl", "qwen3_vl"),
}


def tiny_sam2_params(image_size: int = 256) -> dict:
    """The `sam2_config` dict (original SAM2 parameter names) that loads the tiny official fixtures."""
    from sa2va.testing_parts import TINY_SAM2_PARAMS

    return {**TINY_SAM2_PARAMS, "image_size": image_size}


def write_official_checkpoint(
    family: str,
    folder,
    seed: int = 0,
    sam2_image_size: int = 256,
    max_shard_bytes: int = 2 * 1024**2,
):
    """Write a tiny random checkpoint in the *official* Sa2VA layout, from the facts of that layout.

    Names, shapes and config fields follow the released checkpoints (REFERENCE_SPEC §6): InternViT / `mlp1` /
    `language_model.*` (Qwen2 or InternLM2) or the Qwen-VL wrapper, `text_hidden_fcs.*`,
    `grounding_encoder.sam2_model.*` with original SAM2 names (`g_weight`); sharded safetensors with an index; tokenizer / processor files.
    The SAM2 is tiny, so load it with `sam2_config=tiny_sam2_params()`, as one would a community checkpoint.

    Args:
        family: `internvl` (InternVL + Qwen2), `internvl_internlm2`, `qwen2_5_vl` or `qwen3_vl`.
        folder: destination (created).
        seed: tensor values seed.
        max_shard_bytes: shard size; small by default so the index path is exercised.

    Returns:
        The folder.
    """
    import json
    from pathlib import Path

    from sa2va.checkpoints.safe_io import write_safetensors
    from sa2va.testing_official_mllm import official_mllm_config, official_mllm_state_dict
    from sa2va.testing_official_sam2 import official_sam2_state_dict

    if family not in OFFICIAL_FIXTURES:
        raise Sa2VAConfigError(f"unknown official fixture {family!r}; expected one of {', '.join(OFFICIAL_FIXTURES)}.")
    mllm_family, tokenizer_family = OFFICIAL_FIXTURES[family]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    official = official_mllm_config(mllm_family)
    state = official_mllm_state_dict(official, generator=generator)
    sam2 = tiny_sam2_config(sam2_image_size)
    state.update(official_sam2_state_dict(sam2, generator=generator))
    write_safetensors(iter(sorted(state.items())), folder, max_shard_bytes=max_shard_bytes)
    (folder / "config.json").write_text(json.dumps(official, indent=2))
    tokenizer = build_tokenizer(tokenizer_family)
    processor = build_processor(tokenizer_family, tokenizer)
    (processor or tokenizer).save_pretrained(folder)
    return folder


__all__ += ["OFFICIAL_FIXTURES", "tiny_sam2_params", "write_official_checkpoint"]
