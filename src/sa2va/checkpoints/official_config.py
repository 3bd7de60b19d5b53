"""Official Sa2VA `config.json` (model_type `sa2va_chat`) ↔ our `Sa2VAConfig` (REFERENCE_SPEC §6.2–§6.4).

InternVL-based checkpoints describe InternViT (`vision_config`, an `InternVisionConfig`) and the LLM (`llm_config`,
Qwen2 / Llama / InternLM2) plus a few top-level InternVL knobs; we map them onto a transformers `InternVLConfig` with an
`InternVLVisionConfig` and a `Qwen2Config` / `LlamaConfig` (InternLM2 is loaded as Llama).

Qwen-based checkpoints are a full `Qwen2_5_VLConfig` / `Qwen3VLConfig` plus `template`, `auto_map` and
`model_type='sa2va_chat'`; we strip the wrapper fields and rebuild the stock config.

Both directions keep what the reference's remote code reads. Fields the reference ignores at inference (tiling
numbers, which it hard-codes; dropout and flash-attention switches) are not imported; export writes the values the
reference's own exports carry.
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import (
    InternVLConfig,
    InternVLVisionConfig,
    LlamaConfig,
    PreTrainedConfig,
    Qwen2_5_VLConfig,
    Qwen2Config,
    Qwen3VLConfig,
    Sam2VideoConfig,
)

from sa2va.checkpoints.mllm_keys import INTERNVL_LLM_ARCHS
from sa2va.configuration import Sa2VAConfig, resolve_sam2_config
from sa2va.errors import Sa2VACheckpointError

OFFICIAL_MODEL_TYPE = "sa2va_chat"

INTERNVL_ARCHITECTURES = ["Sa2VAChatModel"]
QWEN_ARCHITECTURES = ["Sa2VAChatModelQwen"]

# `auto_map` exactly as `tools/convert_to_hf.py` writes it next to the copied remote code.
INTERNVL_AUTO_MAP = {
    "AutoConfig": "configuration_sa2va_chat.Sa2VAChatConfig",
    "AutoModel": "modeling_sa2va_chat.Sa2VAChatModel",
    "AutoModelForCausalLM": "modeling_sa2va_chat.Sa2VAChatModel",
}
QWEN_AUTO_MAP = {
    "AutoConfig": "configuration_sa2va_chat.Sa2VAChatConfigQwen",
    "AutoModel": "modeling_sa2va_qwen.Sa2VAChatModelQwen",
    "AutoModelForCausalLM": "modeling_sa2va_qwen.Sa2VAChatModelQwen",
}
# InternVL's own llm_config for InternLM2 points at the InternLM2 remote code shipped in the same folder.
INTERNLM2_AUTO_MAP = {
    "AutoConfig": "configuration_internlm2.InternLM2Config",
    "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
    "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
}

# Defaults of the reference's `InternVisionConfig.__init__` / `InternLM2Config.__init__`, used when a field is absent
# from config.json (they differ from the transformers defaults of the classes we map onto).
INTERN_VIT_DEFAULTS: dict[str, Any] = {
    "num_channels": 3,
    "patch_size": 14,
    "image_size": 224,
    "qkv_bias": False,
    "hidden_size": 3200,
    "num_attention_heads": 25,
    "intermediate_size": 12800,
    "qk_normalization": True,
    "num_hidden_layers": 48,
    "hidden_act": "gelu",
    "norm_type": "rms_norm",
    "layer_norm_eps": 1e-6,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "initializer_factor": 0.1,
}
INTERNLM2_DEFAULTS: dict[str, Any] = {
    "vocab_size": 103168,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,  # → num_attention_heads
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "bias": True,
    "rope_theta": 10000,
    "rope_scaling": None,
}

# LLM config fields copied unchanged (when present) for every InternVL-side LLM.
_LLM_SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "attention_dropout",
)
_QWEN2_FIELDS = ("use_sliding_window", "sliding_window", "max_window_layers")
_LLAMA_FIELDS = ("attention_bias", "mlp_bias", "head_dim")

# InternVisionConfig field → InternVLVisionConfig field, for the fields that are a plain copy or rename.
_VISION_FIELDS = {
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "num_attention_heads": "num_attention_heads",
    "num_hidden_layers": "num_hidden_layers",
    "num_channels": "num_channels",
    "hidden_act": "hidden_act",
    "norm_type": "norm_type",
    "layer_norm_eps": "layer_norm_eps",
    "initializer_range": "initializer_range",
    "qkv_bias": "attention_bias",  # InternViT's bias covers q/k/v only; `attn.proj` always has one, as in ours
    "qk_normalization": "use_qk_norm",
    "initializer_factor": "layer_scale_init_value",  # initial value of ls1/ls2 (weights override it anyway)
    "dropout": "projection_dropout",  # InternViT applies `dropout` after `attn.proj` only
    "attention_dropout": "attention_dropout",
}

# Keys of an official Qwen config that belong to the Sa2VA wrapper or to the Hub, not to the stock Qwen config.
_QWEN_WRAPPER_KEYS = (
    "template",
    "auto_map",
    "architectures",
    "model_type",
    "_name_or_path",
    "_commit_hash",
    "transformers_version",
    "attn_implementation",
    "_attn_implementation_autoset",
)
_QWEN_TEXT_MODEL_TYPES = {"qwen2_5_vl": "qwen2_5_vl_text", "qwen3_vl": "qwen3_vl_text"}


# ------------------------------------------------------------------------------------------------ small helpers


def _require(mapping: dict, key: str, where: str) -> Any:
    if key not in mapping:
        raise Sa2VACheckpointError(f"Official config: {where} has no {key!r}.")
    return mapping[key]


def _square(value: int | list[int] | tuple[int, ...], name: str) -> int:
    """InternViT describes sizes with one int; transformers with a pair. Only square sizes map."""
    if isinstance(value, int):
        return value
    first, *rest = value
    if any(other != first for other in rest):
        raise Sa2VACheckpointError(f"{name} must be square for InternViT; got {list(value)}.")
    return int(first)


def _rope_parameters(llm: dict) -> dict[str, Any]:
    """transformers v5 `rope_parameters` from a v4-style config (`rope_theta` + `rope_scaling`).

    `rope_scaling` may name its kind `type` (InternLM2, old Qwen) or `rope_type`; Qwen-VL's `mrope` is the default
    rotary with sections, which v5 calls `default`.
    """
    if isinstance(llm.get("rope_parameters"), dict):  # already v5-style
        return dict(llm["rope_parameters"])
    scaling = dict(llm.get("rope_scaling") or {})
    kind = scaling.pop("rope_type", None) or scaling.pop("type", None) or "default"
    scaling.pop("type", None)
    if kind == "mrope":
        kind = "default"
    params: dict[str, Any] = {"rope_type": kind, **scaling}
    if llm.get("rope_theta") is not None:
        params["rope_theta"] = float(llm["rope_theta"])
    return params


def _legacy_rope(rope_parameters: dict[str, Any] | None, internlm2: bool = False) -> dict[str, Any]:
    """v4-style `rope_theta` + `rope_scaling` fields, which the reference's transformers 4.x code reads.

    InternLM2's config validation accepts exactly `{"type", "factor"}`; transformers 4.x configs accept `type` and
    `rope_type` (we write both, as 4.x itself saves them).
    """
    params = dict(rope_parameters or {})
    fields: dict[str, Any] = {}
    if "rope_theta" in params:
        fields["rope_theta"] = params.pop("rope_theta")
    kind = params.pop("rope_type", "default")
    params.pop("type", None)
    if kind == "default" and not params:
        fields["rope_scaling"] = None
    elif internlm2:
        if kind not in ("linear", "dynamic") or set(params) != {"factor"}:
            raise Sa2VACheckpointError(
                f"InternLM2 supports only linear/dynamic rope scaling with a factor; got {rope_parameters}."
            )
        fields["rope_scaling"] = {"type": kind, "factor": float(params["factor"])}
    else:
        fields["rope_scaling"] = {"type": kind, "rope_type": kind, **params}
    return fields


# ------------------------------------------------------------------------------------------------ InternVL


def official_llm_architecture(official: dict) -> str:
    """`llm_config.architectures[0]` of an InternVL-side official config, checked against what we can load."""
    llm = _require(official, "llm_config", "the top level")
    archs = llm.get("architectures") or []
    if not archs or archs[0] not in INTERNVL_LLM_ARCHS:
        raise Sa2VACheckpointError(
            f"Official config: unsupported llm_config.architectures {archs!r}; expected one of "
            f"{', '.join(INTERNVL_LLM_ARCHS)}."
        )
    return archs[0]


def _internvl_vision_config(vision: dict) -> InternVLVisionConfig:
    vision = {**INTERN_VIT_DEFAULTS, **vision}
    if vision["norm_type"] not in ("layer_norm", "rms_norm"):
        raise Sa2VACheckpointError(
            f"Official config: vision_config.norm_type {vision['norm_type']!r}; expected 'layer_norm' or 'rms_norm'."
        )
    fields = {native: vision[official] for official, native in _VISION_FIELDS.items()}
    return InternVLVisionConfig(
        **fields,
        image_size=_square(vision["image_size"], "vision_config.image_size"),
        patch_size=_square(vision["patch_size"], "vision_config.patch_size"),
        hidden_dropout_prob=0.0,  # InternViT has no dropout after its MLP
        # InternViT always has a learned absolute position table and no post-encoder norm (mean pooling = Identity)
        use_absolute_position_embeddings=True,
        use_mean_pooling=True,
        use_mask_token=False,
    )


def _internvl_text_config(llm: dict, arch: str) -> PreTrainedConfig:
    if arch == "InternLM2ForCausalLM":
        llm = {**INTERNLM2_DEFAULTS, **llm}
        if llm["num_key_value_heads"] is None:
            llm["num_key_value_heads"] = llm["num_attention_heads"]
    fields = {name: llm[name] for name in _LLM_SHARED_FIELDS if name in llm}
    fields.update(rope_parameters=_rope_parameters(llm), tie_word_embeddings=False)
    if arch == "Qwen2ForCausalLM":
        fields.update({name: llm[name] for name in _QWEN2_FIELDS if name in llm})
        return Qwen2Config(**fields)
    if arch == "InternLM2ForCausalLM":
        # InternLM2's single `bias` switch covers `wqkv` and `wo`, i.e. Llama's attention_bias; its MLP has none.
        return LlamaConfig(**fields, attention_bias=bool(llm["bias"]), mlp_bias=False)
    fields.update({name: llm[name] for name in _LLAMA_FIELDS if llm.get(name) is not None})
    return LlamaConfig(**fields)


def _internvl_mllm_config(official: dict, image_token_id: int | None) -> InternVLConfig:
    if image_token_id is None:
        raise Sa2VACheckpointError(
            "InternVL checkpoints store no image token id; pass image_token_id = the tokenizer's id of <IMG_CONTEXT>."
        )
    vision = _require(official, "vision_config", "the top level")
    arch = official_llm_architecture(official)
    # Absent ps_version means the reference default 'v1', whose pixel shuffle leaves the grid transposed.
    ps_version = official.get("ps_version", "v1")
    if ps_version != "v2":
        raise Sa2VACheckpointError(
            f"Official config: ps_version {ps_version!r}; only 'v2' pixel shuffle (what transformers InternVL does) "
            "is supported."
        )
    vision_config = _internvl_vision_config(vision)
    downsample_ratio = float(official.get("downsample_ratio", 0.5))
    # The reference sizes its tiles with force_image_size when set, else the ViT's image_size.
    tile = official.get("force_image_size") or vision_config.image_size[0]
    patch = vision_config.patch_size[0]
    image_seq_length = int((tile // patch) ** 2 * downsample_ratio**2)
    return InternVLConfig(
        vision_config=vision_config,
        text_config=_internvl_text_config(_require(official, "llm_config", "the top level"), arch),
        image_token_id=int(image_token_id),
        image_seq_length=image_seq_length,
        downsample_ratio=downsample_ratio,
        projector_hidden_act="gelu",  # mlp1's nn.GELU()
        # select_layer == -1 → last_hidden_state, else hidden_states[select_layer]: the same rule transformers uses
        vision_feature_layer=int(official.get("select_layer", -1)),
        vision_feature_select_strategy="default",  # drop the CLS token, as `extract_feature` does
        tie_word_embeddings=False,
    )


# ------------------------------------------------------------------------------------------------ Qwen


def official_qwen_family(official: dict) -> str:
    """`qwen2_5_vl` or `qwen3_vl`, from the model types, architectures and family-specific vision fields."""
    text = official.get("text_config") or {}
    vision = official.get("vision_config") or {}
    votes: set[str] = set()
    names = [text.get("model_type"), vision.get("model_type"), *(official.get("architectures") or [])]
    for name in filter(None, names):
        lowered = str(name).lower()
        if "qwen3_vl" in lowered or "qwen3vl" in lowered:
            votes.add("qwen3_vl")
        elif "qwen2_5_vl" in lowered:
            votes.add("qwen2_5_vl")
    if {"deepstack_visual_indexes", "num_position_embeddings"} & vision.keys():
        votes.add("qwen3_vl")
    if {"fullatt_block_indexes", "window_size"} & vision.keys():
        votes.add("qwen2_5_vl")
    if len(votes) != 1:
        raise Sa2VACheckpointError(
            "Official config: cannot tell Qwen2.5-VL from Qwen3-VL "
            f"(signals: {sorted(votes) or 'none'}); expected text_config.model_type 'qwen2_5_vl_text' or "
            "'qwen3_vl_text' and the matching vision_config."
        )
    return votes.pop()


def _use_rope_parameters(fields: dict) -> None:
    """Replace v4-style `rope_scaling` / `rope_theta` by v5 `rope_parameters`, in place."""
    if "rope_scaling" in fields or "rope_theta" in fields:
        fields["rope_parameters"] = _rope_parameters(fields)
        fields.pop("rope_scaling", None)
        fields.pop("rope_theta", None)


def _qwen_mllm_config(official: dict) -> PreTrainedConfig:
    family = official_qwen_family(official)
    fields = copy.deepcopy(official)
    for key in _QWEN_WRAPPER_KEYS:
        fields.pop(key, None)
    text = fields.get("text_config")
    if isinstance(text, dict):
        # transformers 4.5x also kept copies of text fields at the top level; the exporter updated only the
        # text_config copy (e.g. vocab_size = len(tokenizer)), so the top-level copies may be stale.
        for key in [key for key in fields if key in text or key in ("rope_scaling", "rope_theta")]:
            fields.pop(key)
        for key in _QWEN_WRAPPER_KEYS:
            text.pop(key, None)
        text["model_type"] = _QWEN_TEXT_MODEL_TYPES[family]
        _use_rope_parameters(text)
        text["tie_word_embeddings"] = False
    else:
        # Pre-text_config (transformers < 4.52) configs keep the text fields at the top level; the stock config
        # class collects them into its text_config.
        _use_rope_parameters(fields)
    fields["tie_word_embeddings"] = False
    config_class = Qwen3VLConfig if family == "qwen3_vl" else Qwen2_5_VLConfig
    return config_class(**fields)


# ------------------------------------------------------------------------------------------------ public API


def native_config_from_official(
    official: dict,
    sam2_config: Sam2VideoConfig | dict | None = None,
    seg_token_id: int | None = None,
    image_token_id: int | None = None,
) -> Sa2VAConfig:
    """Our `Sa2VAConfig` from an official Sa2VA `config.json` dict.

    Args:
        official: the parsed `config.json` (model_type `sa2va_chat`).
        sam2_config: the SAM2 config: a transformers `Sam2VideoConfig`, a dict of original SAM2 parameters (see
            `sa2va.configuration.sam2_config_from_original`), or `None` → SAM2 v1 hiera-large, as every released
            checkpoint.
        seg_token_id: the tokenizer's `[SEG]` id.
        image_token_id: InternVL only, required: the tokenizer's `<IMG_CONTEXT>` id (InternVL configs do not store
            it). Qwen configs carry their own `image_token_id`.

    Returns:
        The config (with `official_llm_architecture` set for InternVL); tiling and pixel-budget knobs keep our
        defaults, which are the reference's hard-coded values.

    Raises:
        Sa2VACheckpointError: not a `sa2va_chat` config, an unsupported LLM, ps_version other than 'v2', or a missing
            `image_token_id` for InternVL.
    """
    model_type = official.get("model_type")
    if model_type != OFFICIAL_MODEL_TYPE:
        raise Sa2VACheckpointError(
            f"Official config: model_type {model_type!r}; expected {OFFICIAL_MODEL_TYPE!r} (a released Sa2VA "
            "checkpoint)."
        )
    llm_arch = None
    if "llm_config" in official:
        mllm_config = _internvl_mllm_config(official, image_token_id)
        template = official.get("template")
        llm_arch = official_llm_architecture(official)  # export must restore it (InternLM2 is loaded as Llama)
    else:
        mllm_config = _qwen_mllm_config(official)
        template = None  # Qwen checkpoints are prompted with the processor's chat template
    return Sa2VAConfig(
        mllm_config=mllm_config,
        sam2_config=resolve_sam2_config(sam2_config),
        template=template,
        seg_token_id=seg_token_id,
        official_llm_architecture=llm_arch,
    )


def _official_vision_config(vision: InternVLVisionConfig) -> dict[str, Any]:
    if not vision.use_absolute_position_embeddings or not vision.use_mean_pooling or vision.use_mask_token:
        raise Sa2VACheckpointError(
            "InternViT needs use_absolute_position_embeddings=True, use_mean_pooling=True and use_mask_token=False; "
            "the native vision config differs."
        )
    fields = {official: getattr(vision, native) for official, native in _VISION_FIELDS.items()}
    return {
        "architectures": ["InternVisionModel"],
        "model_type": "intern_vit_6b",
        **fields,
        "image_size": _square(vision.image_size, "vision_config.image_size"),
        "patch_size": _square(vision.patch_size, "vision_config.patch_size"),
        "drop_path_rate": 0.0,
        "use_flash_attn": True,  # the reference switches it off itself when flash-attn is missing
    }


def _official_llm_config(text: PreTrainedConfig, llm_arch: str) -> dict[str, Any]:
    fields = {name: getattr(text, name) for name in _LLM_SHARED_FIELDS if hasattr(text, name)}
    internlm2 = llm_arch == "InternLM2ForCausalLM"
    fields.update(_legacy_rope(text.rope_parameters, internlm2=internlm2))
    fields["tie_word_embeddings"] = False
    if llm_arch == "Qwen2ForCausalLM":
        if text.model_type != "qwen2":
            raise Sa2VACheckpointError(f"llm_arch {llm_arch} needs a qwen2 text config; got {text.model_type!r}.")
        fields.update({name: getattr(text, name) for name in _QWEN2_FIELDS})
        return {"architectures": [llm_arch], "model_type": "qwen2", **fields}
    if text.model_type != "llama":
        raise Sa2VACheckpointError(f"llm_arch {llm_arch} needs a llama text config; got {text.model_type!r}.")
    if internlm2:
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        if text.mlp_bias or head_dim * text.num_attention_heads != text.hidden_size:
            raise Sa2VACheckpointError(
                "InternLM2 has no MLP bias and head_dim = hidden_size / num_attention_heads; the native Llama config "
                f"has mlp_bias={text.mlp_bias}, head_dim={head_dim}."
            )
        fields.pop("attention_dropout", None)  # not an InternLM2 field
        return {
            "architectures": [llm_arch],
            "auto_map": dict(INTERNLM2_AUTO_MAP),
            "model_type": "internlm2",
            **fields,
            "bias": bool(text.attention_bias),
        }
    fields.update({name: getattr(text, name) for name in _LLAMA_FIELDS})
    return {"architectures": [llm_arch], "model_type": "llama", **fields}


def _official_internvl_config(config: Sa2VAConfig, llm_arch: str | None) -> dict[str, Any]:
    mllm = config.mllm_config
    text = config.text_config
    if llm_arch is None:
        llm_arch = "Qwen2ForCausalLM" if text.model_type == "qwen2" else "LlamaForCausalLM"
    if llm_arch not in INTERNVL_LLM_ARCHS:
        raise Sa2VACheckpointError(f"llm_arch {llm_arch!r}; expected one of {', '.join(INTERNVL_LLM_ARCHS)}.")
    if mllm.vision_feature_select_strategy != "default" or mllm.projector_hidden_act != "gelu":
        raise Sa2VACheckpointError(
            "The reference drops the CLS token and uses a GELU projector; the native config has "
            f"vision_feature_select_strategy={mllm.vision_feature_select_strategy!r}, "
            f"projector_hidden_act={mllm.projector_hidden_act!r}."
        )
    if not isinstance(mllm.vision_feature_layer, int):
        raise Sa2VACheckpointError(
            f"The reference selects one ViT layer; vision_feature_layer is {mllm.vision_feature_layer!r}."
        )
    return {
        "architectures": list(INTERNVL_ARCHITECTURES),
        "auto_map": dict(INTERNVL_AUTO_MAP),
        "model_type": OFFICIAL_MODEL_TYPE,
        "template": config.template,
        "vision_config": _official_vision_config(mllm.vision_config),
        "llm_config": _official_llm_config(text, llm_arch),
        "downsample_ratio": mllm.downsample_ratio,
        "select_layer": mllm.vision_feature_layer,
        "ps_version": "v2",
        # The reference hard-codes these at inference; written as its exports carry them.
        "force_image_size": config.tile_size,
        "dynamic_image_size": True,
        "use_thumbnail": config.use_thumbnail,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": config.max_dynamic_tiles,
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "pad2square": False,
        "hidden_size": text.hidden_size,
        "tie_word_embeddings": False,
    }


def _official_qwen_config(config: Sa2VAConfig) -> dict[str, Any]:
    fields = config.mllm_config.to_dict()
    for key in ("transformers_version", "_name_or_path"):
        fields.pop(key, None)
    text = fields["text_config"]
    # The reference's transformers 4.5x reads rope_theta / rope_scaling (mrope_section lives there); v5 reads
    # rope_parameters and ignores the legacy pair when both agree. Write both.
    text.update(_legacy_rope(text.get("rope_parameters")))
    text["tie_word_embeddings"] = False
    # transformers 4.5x names the vision sub-config after the family; v5 maps that name back on load.
    fields["vision_config"]["model_type"] = config.family
    return {
        **fields,
        "architectures": list(QWEN_ARCHITECTURES),
        "auto_map": dict(QWEN_AUTO_MAP),
        "model_type": OFFICIAL_MODEL_TYPE,
        "template": config.template or "qwen_chat",  # the name the reference's Qwen training configs use
        "tie_word_embeddings": False,
    }


def official_config_from_native(config: Sa2VAConfig, llm_arch: str | None = None) -> dict[str, Any]:
    """An official `config.json` dict the reference remote code accepts, from our config.

    Args:
        config: our config.
        llm_arch: InternVL only (ignored for Qwen-VL): the official LLM class to describe, `Qwen2ForCausalLM`,
            `LlamaForCausalLM` or `InternLM2ForCausalLM` (the Llama text model of Sa2VA-8B/26B must be written back
            as InternLM2). `None` → `config.official_llm_architecture` when set, else `Qwen2ForCausalLM` for a qwen2
            text model and `LlamaForCausalLM` for llama.

    Raises:
        Sa2VACheckpointError: the native config has something the official layout cannot express.
    """
    if config.is_internvl:
        return _official_internvl_config(config, llm_arch or config.official_llm_architecture)
    return _official_qwen_config(config)  # a Qwen-VL config names its LLM itself; llm_arch does not apply


__all__ = [
    "INTERNVL_AUTO_MAP",
    "OFFICIAL_MODEL_TYPE",
    "QWEN_AUTO_MAP",
    "native_config_from_official",
    "official_config_from_native",
    "official_llm_architecture",
    "official_qwen_family",
]
