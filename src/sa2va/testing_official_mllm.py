"""Tiny stand-ins for the MLLM part of *official* Sa2VA checkpoints (config.json + tensors), for conversion tests.

Everything here is written from the facts of the official layout (REFERENCE_SPEC §1.3, §6.2–§6.4 and the reference's
`modeling_intern_vit.py` / `modeling_internlm2.py` / `modeling_sa2va_chat.py`), never by converting one of our models,
so a test that converts these fixtures checks our rules against an independent description of the layout.

Families:

* `internvl_qwen2`: InternVL + Qwen2 LLM (Sa2VA-1B/4B, Sa2VA-InternVL3-*), InternViT-300M style (LayerNorm, q/k/v
  bias, no qk-norm).
* `internvl_internlm2`: InternVL + InternLM2 LLM (Sa2VA-8B/26B), InternViT-6B style (RMSNorm, no q/k/v bias,
  qk-norm), fused head-interleaved `wqkv`, dynamic-NTK rope as internlm2_5-chat.
* `qwen2_5_vl`, `qwen3_vl`: the stock Qwen-VL config plus Sa2VA's wrapper fields; tensors under the wrapper `model.`.

Sizes match the tiny tokenizers of :mod:`sa2va.testing_parts` (`vocab_size = len(tokenizer)`), and InternViT keeps the
real tile geometry (448 px, 14 px patches → 32x32 patches → 256 tokens per tile after the 0.5 pixel shuffle).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from sa2va.errors import Sa2VAConfigError
from sa2va.testing_parts import _TEXT_SIZES, build_tokenizer, special_token_ids

OFFICIAL_FAMILIES: tuple[str, ...] = ("internvl_qwen2", "internvl_internlm2", "qwen2_5_vl", "qwen3_vl")

# Tokenizer family of sa2va.testing_parts for each official fixture family.
TOKENIZER_FAMILY: dict[str, str] = {
    "internvl_qwen2": "internvl",
    "internvl_internlm2": "internvl_llama",
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
}

# Same LLM geometry as the native tiny models: head_dim 16, 2 query heads per KV head.
_LLM = _TEXT_SIZES
_PROMPT_DIM = 256  # SAM2's prompt width: text_hidden_fcs maps D → 256

_INTERNVL_AUTO_MAP = {
    "AutoConfig": "configuration_sa2va_chat.Sa2VAChatConfig",
    "AutoModel": "modeling_sa2va_chat.Sa2VAChatModel",
    "AutoModelForCausalLM": "modeling_sa2va_chat.Sa2VAChatModel",
}
_QWEN_AUTO_MAP = {
    "AutoConfig": "configuration_sa2va_chat.Sa2VAChatConfigQwen",
    "AutoModel": "modeling_sa2va_qwen.Sa2VAChatModelQwen",
    "AutoModelForCausalLM": "modeling_sa2va_qwen.Sa2VAChatModelQwen",
}


def _intern_vit_config(six_b_style: bool) -> dict[str, Any]:
    """An `InternVisionConfig` dict: 300M style (LayerNorm, qkv bias) or 6B style (RMSNorm, qk-norm, no qkv bias)."""
    return {
        "architectures": ["InternVisionModel"],
        "model_type": "intern_vit_6b",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "num_channels": 3,
        "image_size": 448,
        "patch_size": 14,
        "qkv_bias": not six_b_style,
        "qk_normalization": six_b_style,
        "norm_type": "rms_norm" if six_b_style else "layer_norm",
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
        "initializer_range": 0.02,
        "initializer_factor": 0.1,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "drop_path_rate": 0.0,
        "use_flash_attn": True,
    }


def _internvl_config(family: str, ids: dict[str, int], vocab_size: int) -> dict[str, Any]:
    if family == "internvl_qwen2":
        llm = {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            **_LLM,
            "vocab_size": vocab_size,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-6,
            "initializer_range": 0.02,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "use_sliding_window": False,
            "sliding_window": None,
            "max_window_layers": 2,
            "attention_dropout": 0.0,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": False,
        }
        template, vision = "qwen_chat", _intern_vit_config(six_b_style=False)
    else:
        llm = {
            "architectures": ["InternLM2ForCausalLM"],
            "auto_map": {
                "AutoConfig": "configuration_internlm2.InternLM2Config",
                "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
                "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
            },
            "model_type": "internlm2",
            **_LLM,
            "vocab_size": vocab_size,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "initializer_range": 0.02,
            "bias": False,  # internlm2_5-chat: no bias on wqkv / wo
            "rope_theta": 1000000,
            "rope_scaling": {"type": "dynamic", "factor": 2.0},
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["</s>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": False,
            "attn_implementation": "eager",
        }
        template, vision = "internlm2_chat", _intern_vit_config(six_b_style=True)
    return {
        "architectures": ["Sa2VAChatModel"],
        "auto_map": _INTERNVL_AUTO_MAP,
        "model_type": "sa2va_chat",
        "template": template,
        "vision_config": vision,
        "llm_config": llm,
        "downsample_ratio": 0.5,
        "select_layer": -1,
        "ps_version": "v2",
        "force_image_size": 448,
        "dynamic_image_size": True,
        "use_thumbnail": True,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": 12,
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "pad2square": False,
        "hidden_size": _LLM["hidden_size"],
        "tie_word_embeddings": False,
    }


def _qwen_config(family: str, ids: dict[str, int], vocab_size: int) -> dict[str, Any]:
    """A Qwen-VL config as transformers 4.5x writes it (`rope_scaling` + `rope_theta`), with Sa2VA's fields."""
    text: dict[str, Any] = {
        **_LLM,
        "vocab_size": vocab_size,  # shrunk to len(tokenizer) by the exporter
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": False,
    }
    vision: dict[str, Any] = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "in_channels": 3,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": _LLM["hidden_size"],
        "initializer_range": 0.02,
    }
    if family == "qwen2_5_vl":
        text.update(
            model_type="qwen2_5_vl_text",
            rope_theta=1000000.0,
            rope_scaling={"type": "default", "rope_type": "default", "mrope_section": [2, 3, 3]},
            use_sliding_window=False,
            sliding_window=None,
            max_window_layers=2,
        )
        vision.update(
            model_type="qwen2_5_vl",
            patch_size=14,
            hidden_act="silu",
            window_size=112,
            fullatt_block_indexes=[1],
            tokens_per_second=2,
        )
    else:
        text.update(
            model_type="qwen3_vl_text",
            head_dim=16,
            attention_bias=False,
            rope_theta=5000000.0,
            rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True},
        )
        vision.update(
            model_type="qwen3_vl",
            patch_size=16,
            hidden_act="gelu_pytorch_tanh",
            num_position_embeddings=256,
            deepstack_visual_indexes=[0],
        )
    return {
        "architectures": ["Sa2VAChatModelQwen"],
        "auto_map": _QWEN_AUTO_MAP,
        "model_type": "sa2va_chat",
        "template": "qwen_chat",
        "text_config": text,
        "vision_config": vision,
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "tie_word_embeddings": False,
    }


def official_mllm_config(family: str) -> dict[str, Any]:
    """A tiny official Sa2VA `config.json` dict (model_type `sa2va_chat`) for `family`.

    Args:
        family: one of :data:`OFFICIAL_FAMILIES`.

    Raises:
        Sa2VAConfigError: unknown family.
    """
    if family not in OFFICIAL_FAMILIES:
        raise Sa2VAConfigError(f"Unknown official fixture family {family!r}; expected one of {OFFICIAL_FAMILIES}.")
    tokenizer = build_tokenizer(TOKENIZER_FAMILY[family])
    ids, vocab_size = special_token_ids(tokenizer), len(tokenizer)
    if family.startswith("internvl"):
        return copy.deepcopy(_internvl_config(family, ids, vocab_size))
    return copy.deepcopy(_qwen_config(family, ids, vocab_size))


# ------------------------------------------------------------------------------------------------ tensors


def _intern_vit_shapes(vision: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """InternViT parameter names and shapes (`modeling_intern_vit.py`: embeddings, encoder layers)."""
    c, inter, patch = vision["hidden_size"], vision["intermediate_size"], vision["patch_size"]
    positions = 1 + (vision["image_size"] // patch) ** 2  # CLS + one per patch
    norm_params = ("weight", "bias") if vision["norm_type"] == "layer_norm" else ("weight",)  # RMSNorm: no bias
    shapes: dict[str, tuple[int, ...]] = {
        "vision_model.embeddings.class_embedding": (1, 1, c),
        "vision_model.embeddings.patch_embedding.weight": (c, vision.get("num_channels", 3), patch, patch),
        "vision_model.embeddings.patch_embedding.bias": (c,),
        "vision_model.embeddings.position_embedding": (1, positions, c),
    }
    for i in range(vision["num_hidden_layers"]):
        layer = f"vision_model.encoder.layers.{i}."
        shapes.update({layer + f"norm1.{p}": (c,) for p in norm_params})
        shapes[layer + "attn.qkv.weight"] = (3 * c, c)
        if vision["qkv_bias"]:
            shapes[layer + "attn.qkv.bias"] = (3 * c,)
        if vision["qk_normalization"]:  # InternRMSNorm over all heads at once
            shapes[layer + "attn.q_norm.weight"] = (c,)
            shapes[layer + "attn.k_norm.weight"] = (c,)
        shapes[layer + "attn.proj.weight"] = (c, c)
        shapes[layer + "attn.proj.bias"] = (c,)
        shapes[layer + "ls1"] = (c,)
        shapes.update({layer + f"norm2.{p}": (c,) for p in norm_params})
        shapes[layer + "mlp.fc1.weight"] = (inter, c)
        shapes[layer + "mlp.fc1.bias"] = (inter,)
        shapes[layer + "mlp.fc2.weight"] = (c, inter)
        shapes[layer + "mlp.fc2.bias"] = (c,)
        shapes[layer + "ls2"] = (c,)
    return shapes


def _mlp1_shapes(vision_hidden: int, llm_hidden: int, downsample_ratio: float) -> dict[str, tuple[int, ...]]:
    """`mlp1 = Sequential(LayerNorm(4C), Linear(4C, D), GELU, Linear(D, D))` for ratio 0.5."""
    shuffled = vision_hidden * int(1 / downsample_ratio) ** 2
    return {
        "mlp1.0.weight": (shuffled,),
        "mlp1.0.bias": (shuffled,),
        "mlp1.1.weight": (llm_hidden, shuffled),
        "mlp1.1.bias": (llm_hidden,),
        "mlp1.3.weight": (llm_hidden, llm_hidden),
        "mlp1.3.bias": (llm_hidden,),
    }


def _qwen2_llm_shapes(llm: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Qwen2ForCausalLM / LlamaForCausalLM under `language_model.` (q/k/v bias: always for Qwen2)."""
    d, inter, vocab = llm["hidden_size"], llm["intermediate_size"], llm["vocab_size"]
    head_dim = llm.get("head_dim") or d // llm["num_attention_heads"]
    q_rows, kv_rows = llm["num_attention_heads"] * head_dim, llm["num_key_value_heads"] * head_dim
    qwen2 = llm["architectures"][0] == "Qwen2ForCausalLM"
    qkv_bias = qwen2 or llm.get("attention_bias", False)
    shapes: dict[str, tuple[int, ...]] = {"language_model.model.embed_tokens.weight": (vocab, d)}
    for i in range(llm["num_hidden_layers"]):
        layer = f"language_model.model.layers.{i}."
        for name, rows in (("q", q_rows), ("k", kv_rows), ("v", kv_rows)):
            shapes[layer + f"self_attn.{name}_proj.weight"] = (rows, d)
            if qkv_bias:
                shapes[layer + f"self_attn.{name}_proj.bias"] = (rows,)
        shapes[layer + "self_attn.o_proj.weight"] = (d, q_rows)
        if not qwen2 and llm.get("attention_bias", False):
            shapes[layer + "self_attn.o_proj.bias"] = (d,)
        shapes[layer + "mlp.gate_proj.weight"] = (inter, d)
        shapes[layer + "mlp.up_proj.weight"] = (inter, d)
        shapes[layer + "mlp.down_proj.weight"] = (d, inter)
        shapes[layer + "input_layernorm.weight"] = (d,)
        shapes[layer + "post_attention_layernorm.weight"] = (d,)
    shapes["language_model.model.norm.weight"] = (d,)
    shapes["language_model.lm_head.weight"] = (vocab, d)
    return shapes


def _internlm2_shapes(llm: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """InternLM2ForCausalLM (`modeling_internlm2.py`): fused `wqkv` of (heads + 2 kv heads) x head_dim rows."""
    d, inter, vocab = llm["hidden_size"], llm["intermediate_size"], llm["vocab_size"]
    heads = llm["num_attention_heads"]
    kv_heads = llm.get("num_key_value_heads") or heads
    head_dim = d // heads
    bias = llm.get("bias", True)  # InternLM2Config's default
    shapes: dict[str, tuple[int, ...]] = {"language_model.model.tok_embeddings.weight": (vocab, d)}
    for i in range(llm["num_hidden_layers"]):
        layer = f"language_model.model.layers.{i}."
        shapes[layer + "attention.wqkv.weight"] = ((heads + 2 * kv_heads) * head_dim, d)
        if bias:
            shapes[layer + "attention.wqkv.bias"] = ((heads + 2 * kv_heads) * head_dim,)
        shapes[layer + "attention.wo.weight"] = (d, heads * head_dim)
        if bias:
            shapes[layer + "attention.wo.bias"] = (d,)
        shapes[layer + "feed_forward.w1.weight"] = (inter, d)
        shapes[layer + "feed_forward.w3.weight"] = (inter, d)
        shapes[layer + "feed_forward.w2.weight"] = (d, inter)
        shapes[layer + "attention_norm.weight"] = (d,)
        shapes[layer + "ffn_norm.weight"] = (d,)
    shapes["language_model.model.norm.weight"] = (d,)
    shapes["language_model.output.weight"] = (vocab, d)
    return shapes


def _qwen_shapes(official_config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The stock Qwen-VL module names (they are the official ones, under Sa2VA's wrapper attribute `model`).

    The stock model is built on the meta device from the official config with only Sa2VA's wrapper fields removed,
    so no weights are allocated and no Sa2VA conversion code is involved.
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
    )

    fields = {
        k: v
        for k, v in copy.deepcopy(official_config).items()
        if k not in ("architectures", "auto_map", "model_type", "template")
    }
    qwen3 = fields["text_config"]["model_type"].startswith("qwen3_vl")
    config_class = Qwen3VLConfig if qwen3 else Qwen2_5_VLConfig
    model_class = Qwen3VLForConditionalGeneration if qwen3 else Qwen2_5_VLForConditionalGeneration
    with torch.device("meta"):
        model = model_class(config_class(**fields))
    return {"model." + name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def official_mllm_shapes(official_config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Official tensor names → shapes of the MLLM part and `text_hidden_fcs` (no SAM2) for an official config."""
    if "llm_config" in official_config:
        vision, llm = official_config["vision_config"], official_config["llm_config"]
        shapes = _intern_vit_shapes(vision)
        shapes.update(_mlp1_shapes(vision["hidden_size"], llm["hidden_size"], official_config["downsample_ratio"]))
        internlm2 = llm["architectures"][0] == "InternLM2ForCausalLM"
        shapes.update(_internlm2_shapes(llm) if internlm2 else _qwen2_llm_shapes(llm))
        hidden = llm["hidden_size"]
    else:
        shapes = _qwen_shapes(official_config)
        hidden = official_config["text_config"]["hidden_size"]
    # text_hidden_fcs = Sequential(Linear(D, D), ReLU, Linear(D, 256), Dropout): same names in every checkpoint.
    shapes.update(
        {
            "text_hidden_fcs.0.weight": (hidden, hidden),
            "text_hidden_fcs.0.bias": (hidden,),
            "text_hidden_fcs.2.weight": (_PROMPT_DIM, hidden),
            "text_hidden_fcs.2.bias": (_PROMPT_DIM,),
        }
    )
    return shapes


def official_mllm_state_dict(
    official_config: dict[str, Any], generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Random float32 tensors with the official names and shapes (MLLM part + `text_hidden_fcs`, no SAM2).

    Every tensor, norms and layer scales included, is drawn from N(0, 0.02²) so that any mix-up of two tensors of the
    same shape is visible.

    Args:
        official_config: an official config dict, e.g. from :func:`official_mllm_config`.
        generator: source of randomness; `None` → a generator seeded with 0.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    return {
        name: torch.randn(shape, generator=generator) * 0.02
        for name, shape in official_mllm_shapes(official_config).items()
    }


__all__ = [
    "OFFICIAL_FAMILIES",
    "TOKENIZER_FAMILY",
    "official_mllm_config",
    "official_mllm_shapes",
    "official_mllm_state_dict",
]
