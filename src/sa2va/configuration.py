"""`Sa2VAConfig`: one MLLM config and one SAM2 config, plus the few knobs Sa2VA adds on top of them."""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig, Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig
from transformers.configuration_utils import SubConfigSpec

from sa2va.errors import Sa2VAConfigError

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
    embed_dims = [144, 288, 576, 1152]
    backbone = Sam2HieraDetConfig(
        hidden_size=144,
        num_attention_heads=2,
        image_size=[1024, 1024],
        embed_dim_per_stage=embed_dims,
        num_attention_heads_per_stage=[2, 4, 8, 16],
        blocks_per_stage=[2, 6, 36, 4],
        global_attention_blocks=[23, 33, 43],
        window_positional_embedding_background_size=[7, 7],
        window_size_per_stage=[8, 4, 16, 8],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=list(reversed(embed_dims)),
        backbone_feature_sizes=[[256, 256], [128, 128], [64, 64]],
        fpn_hidden_size=256,
    )
    return sam2_v1_config(vision, image_size=1024)


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
    max_new_tokens: int = 2048
    max_dynamic_tiles: int = 12
    tile_size: int = 448
    use_thumbnail: bool = True
    min_pixels: int = 512 * 28 * 28
    max_pixels: int = 2048 * 28 * 28
    num_key_frames: int = 5
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


__all__ = ["Sa2VAConfig", "CHAT_TEMPLATES", "MLLM_FAMILIES", "sam2_v1_config", "sam2_hiera_large_config"]
