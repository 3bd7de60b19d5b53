"""`Sa2VAConfig`: one MLLM config and one SAM2 config, plus the few knobs Sa2VA adds on top of them."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig, Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig
from transformers.configuration_utils import SubConfigSpec

from sa2va.errors import Sa2VAConfigError

PROPAGATION_MODES = ("sa2va", "sa2va-i")

# MLLM families this library can drive, by the `model_type` of their transformers config.
MLLM_FAMILIES = ("qwen2_5_vl", "qwen3_vl", "internvl")

# InternVL chat templates of the reference (`hf/models/templates.py`): prompt format and the words that end an answer.
# Qwen-VL checkpoints use their processor's own chat template instead.
CHAT_TEMPLATES: dict[str, dict[str, object]] = {
    "qwen_chat": {
        "instruction": "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
        "suffix": "<|im_end|>",
        "stop_words": ("<|im_end|>", "<|endoftext|>"),
    },
    "internlm2_chat": {
        "instruction": "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
        "suffix": "<|im_end|>",
        "stop_words": ("<|im_end|>",),
    },
    "phi3_chat": {
        "instruction": "<|user|>\n{input}<|end|>\n<|assistant|>\n",
        "suffix": "<|end|>",
        "stop_words": ("<|end|>",),
    },
}


def sam2_v1_config(
    vision_config: Sam2VisionConfig | dict, image_size: int = 1024, mask_decoder_config: dict | None = None
) -> Sam2VideoConfig:
    """A transformers SAM2 (video) config with the SAM2 **v1** behaviour Sa2VA was trained with.

    v1 differs from the SAM2.1 defaults of transformers: no occlusion spatial embedding and no temporal encoding of
    object pointers (REFERENCE_SPEC §1.8, §2.5). The prompt encoder sees `image_size`, and memory-attention RoPE is
    sized for the S/16 feature map.

    Args:
        vision_config: the image encoder (Hiera trunk + FPN) config.
        image_size: SAM2 input side S.
        mask_decoder_config: overrides of the default 256-d mask decoder.
    """
    return Sam2VideoConfig(
        vision_config=vision_config,
        prompt_encoder_config={"hidden_size": 256, "image_size": image_size, "patch_size": 16},
        mask_decoder_config=mask_decoder_config or {},
        image_size=image_size,
        memory_attention_rope_feat_sizes=[image_size // 16, image_size // 16],
        enable_occlusion_spatial_embedding=False,
        enable_temporal_pos_encoding_for_object_pointers=False,
    )


def sam2_hiera_large_config() -> Sam2VideoConfig:
    """SAM2 v1 hiera-large at 1024 px, the grounding model of every released Sa2VA checkpoint (REFERENCE_SPEC §1.8)."""
    return sam2_config_from_original({})


# The original SAM2 image-encoder parameters a `sam2_config` dict may override, with SAM2 v1 hiera-L's values.
ORIGINAL_SAM2_DEFAULTS: dict[str, object] = {
    "embed_dim": 144,
    "num_heads": 2,
    "stages": [2, 6, 36, 4],
    "global_att_blocks": [23, 33, 43],
    "window_pos_embed_bkg_spatial_size": [7, 7],
    "window_spec": [8, 4, 16, 8],
    "backbone_channel_list": None,  # derived: the stage widths, coarsest first
    "image_size": 1024,
}


def sam2_config_from_original(params: dict | None = None) -> Sam2VideoConfig:
    """SAM2 v1 config from original SAM2 image-encoder parameter names, on top of hiera-L's values.

    Args:
        params: any of :data:`ORIGINAL_SAM2_DEFAULTS`' keys, as in SAM2's YAML configs (`embed_dim`, `num_heads`,
            `stages`, `global_att_blocks`, `window_pos_embed_bkg_spatial_size`, `window_spec`,
            `backbone_channel_list`, `image_size`). Hiera doubles width and heads at every stage.

    Raises:
        Sa2VAConfigError: an unknown parameter name or inconsistent lengths.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(ORIGINAL_SAM2_DEFAULTS))
    if unknown:
        raise Sa2VAConfigError(
            f"unknown SAM2 parameter(s) {unknown}; expected some of {', '.join(ORIGINAL_SAM2_DEFAULTS)}."
        )
    p = {**ORIGINAL_SAM2_DEFAULTS, **params}
    stages = list(p["stages"])
    if len(stages) != 4 or len(p["window_spec"]) != 4:
        raise Sa2VAConfigError(f"stages and window_spec need 4 entries, got {stages} and {p['window_spec']}.")
    dims = [int(p["embed_dim"]) * 2**i for i in range(4)]
    channels = list(p["backbone_channel_list"] or reversed(dims))
    if channels != list(reversed(dims)):
        raise Sa2VAConfigError(f"backbone_channel_list {channels} must be the stage widths coarsest first: {dims[::-1]}.")
    size = int(p["image_size"])
    backbone = Sam2HieraDetConfig(
        hidden_size=dims[0],
        num_attention_heads=int(p["num_heads"]),
        image_size=[size, size],
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[int(p["num_heads"]) * 2**i for i in range(4)],
        blocks_per_stage=stages,
        global_attention_blocks=list(p["global_att_blocks"]),
        window_positional_embedding_background_size=list(p["window_pos_embed_bkg_spatial_size"]),
        window_size_per_stage=list(p["window_spec"]),
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=channels,
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        fpn_hidden_size=256,
    )
    return sam2_v1_config(vision, image_size=size)


def resolve_sam2_config(sam2_config: PreTrainedConfig | dict | None) -> Sam2VideoConfig:
    """`None` → SAM2 v1 hiera-L; a transformers SAM2 video config → itself; a dict → :func:`sam2_config_from_original`."""
    if sam2_config is None:
        return sam2_hiera_large_config()
    if isinstance(sam2_config, Sam2VideoConfig):
        return sam2_config
    if isinstance(sam2_config, dict):
        return sam2_config_from_original(sam2_config)
    raise Sa2VAConfigError(
        f"sam2_config must be a transformers Sam2VideoConfig or a dict of original SAM2 parameters, got {type(sam2_config)}."
    )


class Sa2VAConfig(PreTrainedConfig):
    r"""Configuration of a [`Sa2VAModel`].

    Args:
        mllm_config (`dict` or `PreTrainedConfig`):
            Config of the multimodal LLM: a `Qwen2_5_VLConfig`, `Qwen3VLConfig` or `InternVLConfig` (whose text model
            is Qwen2 or Llama). Its `model_type` selects the family.
        sam2_config (`dict` or `Sam2Config`):
            Config of the SAM2 grounding model (a transformers `Sam2VideoConfig`: image encoder, prompt encoder,
            mask decoder and memory modules). Defaults to SAM2 v1 hiera-L at 1024 px, as every released checkpoint.
        template (`str`, *optional*):
            InternVL only: the chat template name (`qwen_chat`, `internlm2_chat`, `phi3_chat`). Qwen-VL families use
            their processor's chat template and leave this `None`.
        seg_token_id (`int`, *optional*):
            Id of the `[SEG]` token in the tokenizer shipped with the checkpoint.
        max_new_tokens (`int`, defaults to 2048):
            Generation budget per answer, as the reference.
        max_dynamic_tiles (`int`, defaults to 12), tile_size (`int`, defaults to 448), use_thumbnail (`bool`):
            InternVL dynamic tiling (hard-coded in the reference regardless of the checkpoint config).
        min_pixels (`int`, defaults to 512*28*28), max_pixels (`int`, defaults to 2048*28*28):
            Qwen-VL processor pixel budget used by the reference.
        num_key_frames (`int`, defaults to 5):
            How many video frames the MLLM sees.
        multimask_output (`bool`, defaults to `True`):
            Decode three mask candidates per `[SEG]` prompt (images and video key frames) and keep the one with the
            highest predicted IoU (the reference), or decode SAM2's single-mask token. Tracked video frames keep
            SAM2's own rule. A SAM2 trained from scratch by our mask losses, which never train the IoU head, needs
            `False`: its untrained IoU head keeps switching candidates and training stalls.
        propagation (`str`, defaults to `"sa2va"`):
            Video tracking mode: `"sa2va"` (the reference) or `"sa2va-i"` (see `Sa2VAModel.set_propagator`).
    """

    model_type = "sa2va"
    sub_configs_defaults = {
        "mllm_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2_5_vl"),
        "sam2_config": Sam2VideoConfig,
    }

    mllm_config: dict | PreTrainedConfig | None = None
    sam2_config: dict | PreTrainedConfig | None = None
    template: str | None = None
    seg_token_id: int | None = None
    # The official checkpoint's LLM class (e.g. InternLM2ForCausalLM, loaded here as Llama), so export restores it.
    official_llm_architecture: str | None = None
    max_new_tokens: int = 2048
    max_dynamic_tiles: int = 12
    tile_size: int = 448
    use_thumbnail: bool = True
    min_pixels: int = 512 * 28 * 28
    max_pixels: int = 2048 * 28 * 28
    num_key_frames: int = 5
    multimask_output: bool = True
    # "sa2va": the reference (language-prompted key frames, Sa2VA's own SAM2 tracks); "sa2va-i": key-frame masks from
    # Sa2VA, propagated by a separately loaded original SAM2 (`Sa2VAModel.set_propagator`), uniform key frames.
    propagation: str = "sa2va"
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if self.sam2_config is None:
            self.sam2_config = sam2_hiera_large_config()
        super().__post_init__(**kwargs)
        if self.mllm_config.model_type not in MLLM_FAMILIES:
            raise Sa2VAConfigError(
                f"Unsupported MLLM config of model_type {self.mllm_config.model_type!r}; "
                f"expected one of {', '.join(MLLM_FAMILIES)}."
            )
        if self.is_internvl:
            if self.template is None:
                self.template = "internlm2_chat" if self.text_config.model_type == "llama" else "qwen_chat"
            self.template = self.template.replace("-", "_")
            if self.template not in CHAT_TEMPLATES:
                raise Sa2VAConfigError(
                    f"Unknown chat template {self.template!r}; expected one of {', '.join(CHAT_TEMPLATES)}."
                )
        if self.propagation not in PROPAGATION_MODES:
            raise Sa2VAConfigError(
                f"unknown propagation {self.propagation!r}; expected one of {', '.join(PROPAGATION_MODES)}."
            )
        # Sa2VA checkpoints are exported with an independent lm_head (embeddings and head are trained separately).
        self.mllm_config.tie_word_embeddings = False
        if hasattr(self.mllm_config, "text_config"):
            self.mllm_config.text_config.tie_word_embeddings = False

    @property
    def family(self) -> str:
        """`qwen2_5_vl`, `qwen3_vl` or `internvl`."""
        return self.mllm_config.model_type

    @property
    def is_internvl(self) -> bool:
        return self.family == "internvl"

    @property
    def text_config(self) -> PreTrainedConfig:
        """Config of the language model inside the MLLM."""
        return self.mllm_config.get_text_config()

    @property
    def hidden_size(self) -> int:
        """LLM hidden size D, the input width of `text_hidden_fcs`."""
        return self.text_config.hidden_size

    @property
    def prompt_dim(self) -> int:
        """Width of the SAM2 prompt token (256 for every SAM2)."""
        return self.sam2_config.mask_decoder_config.hidden_size

    @property
    def sam2_image_size(self) -> int:
        """Side of SAM2's square input (1024 for real checkpoints)."""
        return int(self.sam2_config.prompt_encoder_config.image_size)

    @property
    def chat_template(self) -> dict[str, object] | None:
        """The InternVL template entry of :data:`CHAT_TEMPLATES`, or `None` for Qwen-VL families."""
        return CHAT_TEMPLATES[self.template] if self.is_internvl else None


__all__ = [
    "Sa2VAConfig",
    "CHAT_TEMPLATES",
    "MLLM_FAMILIES",
    "ORIGINAL_SAM2_DEFAULTS",
    "sam2_v1_config",
    "sam2_hiera_large_config",
    "sam2_config_from_original",
    "resolve_sam2_config",
]
