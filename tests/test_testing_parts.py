"""Tests for the offline tiny tokenizers, processors and configs in ``sa2va.testing_parts``."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoProcessor,
    AutoTokenizer,
    InternVLForConditionalGeneration,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
    Sam2VideoConfig,
    Sam2VideoModel,
)

from sa2va.configuration import sam2_hiera_large_config
from sa2va.errors import Sa2VAConfigError
from sa2va.modeling.sam2_prompt import decode_language_prompts, encode_images
from sa2va.testing_parts import (
    FAMILIES,
    SA2VA_SPECIAL_TOKENS,
    build_processor,
    build_tokenizer,
    special_token_ids,
    tiny_mllm_config,
    tiny_sam2_config,
    training_corpus,
)

QWEN = ("qwen2_5_vl", "qwen3_vl")
MODEL_CLASSES = {
    "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
    "qwen3_vl": Qwen3VLForConditionalGeneration,
    "internvl": InternVLForConditionalGeneration,
    "internvl_llama": InternVLForConditionalGeneration,
}
ROUND_TRIP_TEXTS = (
    "Please segment the red circle in this image.",
    "Sure, it is [SEG].<|im_end|>",
    "<p> a blue square </p> [SEG] and <p>two stars</p>[SEG]",
    "  leading and trailing spaces \t\n\n  ",
    "Zürich, naïve café — 東京 😀 Ω≈ç√ 12345.678",
    "region1<vp></vp>, region2<vp></vp>.\n",
    "[SEG][SEG]<vp><p></p></vp>",
    "",
)


@pytest.fixture(scope="module")
def tokenizers() -> dict:
    """One tokenizer per family, built once for the module (each build trains a BPE)."""
    return {family: build_tokenizer(family) for family in FAMILIES}


@pytest.fixture(scope="module")
def image() -> Image.Image:
    """A small non-square RGB image (60 high, 90 wide)."""
    return Image.fromarray(np.random.RandomState(0).randint(0, 255, (60, 90, 3), dtype=np.uint8))


def _one_image_messages(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


# ------------------------------------------------------------------------------------------------ errors


def test_unknown_family_raises_typed_error() -> None:
    for call in (
        lambda: build_tokenizer("llava"),
        lambda: build_processor("llava", None),
        lambda: tiny_mllm_config("llava", 100, {}),
    ):
        with pytest.raises(Sa2VAConfigError, match="qwen2_5_vl"):
            call()


def test_missing_special_ids_and_bad_sizes_raise(tokenizers: dict) -> None:
    ids = special_token_ids(tokenizers["internvl"])
    with pytest.raises(Sa2VAConfigError, match=re.escape("<|image_pad|>")):
        tiny_mllm_config("qwen2_5_vl", 600, ids)  # InternVL ids lack the Qwen vision tokens
    with pytest.raises(Sa2VAConfigError, match="<s>"):
        tiny_mllm_config("internvl_llama", 600, ids)
    with pytest.raises(Sa2VAConfigError):
        tiny_mllm_config("internvl", 0, ids)
    with pytest.raises(Sa2VAConfigError):
        tiny_sam2_config(100)


# ------------------------------------------------------------------------------------------------ tokenizers


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_round_trips_any_text(tokenizers: dict, family: str) -> None:
    tokenizer = tokenizers[family]
    for text in ROUND_TRIP_TEXTS:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text
    for sentence in training_corpus()[:50]:
        assert tokenizer.decode(tokenizer.encode(sentence, add_special_tokens=False)) == sentence


@pytest.mark.parametrize("family", FAMILIES)
def test_special_tokens_are_single_and_sa2va_tokens_are_last(tokenizers: dict, family: str) -> None:
    tokenizer = tokenizers[family]
    vocab_len = len(tokenizer)
    assert vocab_len < 1024
    # [SEG], <p>, </p>, <vp>, </vp> take the five highest ids, in the reference order.
    assert tokenizer.convert_tokens_to_ids(list(SA2VA_SPECIAL_TOKENS)) == list(range(vocab_len - 5, vocab_len))
    family_tokens = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    family_tokens += (
        ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
        if family in QWEN
        else ["<img>", "</img>", "<IMG_CONTEXT>"]
    )
    for token in [*family_tokens, *SA2VA_SPECIAL_TOKENS]:
        token_id = tokenizer.convert_tokens_to_ids(token)
        # Never split, even glued to other text.
        ids = tokenizer.encode(f"x{token}y", add_special_tokens=False)
        assert token_id in ids and len(ids) == 3, token
    assert tokenizer.pad_token == "<|endoftext|>"
    if family == "internvl_llama":
        assert (tokenizer.bos_token, tokenizer.eos_token) == ("<s>", "</s>")
        assert tokenizer.encode("hi")[0] == tokenizer.bos_token_id
        assert tokenizer.encode("hi", add_special_tokens=False)[0] != tokenizer.bos_token_id
    else:
        assert tokenizer.eos_token == "<|im_end|>"
        assert tokenizer.bos_token is None
        assert tokenizer.encode("hi") == tokenizer.encode("hi", add_special_tokens=False)
    # Skipping special tokens drops [SEG] as in the reference (which therefore decodes with skip=False).
    assert tokenizer.decode(tokenizer.encode("Sure, [SEG].<|im_end|>"), skip_special_tokens=True) == "Sure, ."


def test_tokenizer_build_is_deterministic(tokenizers: dict) -> None:
    again = build_tokenizer("qwen2_5_vl")
    assert again.get_vocab() == tokenizers["qwen2_5_vl"].get_vocab()
    assert again.backend_tokenizer.to_str() == tokenizers["qwen2_5_vl"].backend_tokenizer.to_str()


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_save_load_round_trip(tokenizers: dict, family: str, tmp_path: Path) -> None:
    tokenizer = tokenizers[family]
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\nPlease segment the cube.<|im_end|>\nSure, it is [SEG].</vp>"
    assert loaded.encode(text) == tokenizer.encode(text)
    assert loaded.get_added_vocab() == tokenizer.get_added_vocab()
    assert (loaded.eos_token, loaded.pad_token, loaded.bos_token) == (
        tokenizer.eos_token,
        tokenizer.pad_token,
        tokenizer.bos_token,
    )
    assert loaded.chat_template == tokenizer.chat_template


# ------------------------------------------------------------------------------------------------ chat templates


def test_qwen2_5_vl_chat_template_adds_default_system(tokenizers: dict) -> None:
    tokenizer = tokenizers["qwen2_5_vl"]
    rendered = tokenizer.apply_chat_template(
        _one_image_messages("Please segment the red circle."), tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Please segment the red circle.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]},
        {"role": "assistant", "content": "The ball [SEG]."},
    ]
    assert tokenizer.apply_chat_template(conversation, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What moves?<|im_end|>\n"
        "<|im_start|>assistant\nThe ball [SEG].<|im_end|>\n"
    )


def test_qwen3_vl_chat_template_has_no_default_system(tokenizers: dict) -> None:
    tokenizer = tokenizers["qwen3_vl"]
    rendered = tokenizer.apply_chat_template(
        _one_image_messages("Please segment the red circle."), tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Please segment the red circle.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert tokenizer.apply_chat_template(with_system, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )


def test_internvl_tokenizers_have_no_chat_template(tokenizers: dict) -> None:
    assert tokenizers["internvl"].chat_template is None
    assert tokenizers["internvl_llama"].chat_template is None


# ------------------------------------------------------------------------------------------------ processors


@pytest.mark.parametrize("family", QWEN)
def test_processor_expands_image_pads(tokenizers: dict, image: Image.Image, family: str) -> None:
    tokenizer = tokenizers[family]
    processor = build_processor(family, tokenizer)
    unit = processor.image_processor.patch_size * processor.image_processor.merge_size  # 28 or 32 px per token
    prompt = processor.apply_chat_template(
        _one_image_messages("Segment it."), tokenize=False, add_generation_prompt=True
    )
    assert prompt.count("<|image_pad|>") == 1
    inputs = processor(
        text=[prompt],
        images=[image],
        return_tensors="pt",
        size={"shortest_edge": unit * unit * 4, "longest_edge": unit * unit * 16},
        return_mm_token_type_ids=True,
    )
    # 60x90 px rounds to 2x3 tokens of `unit` px, i.e. a 4x6 patch grid.
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 6]]
    pad_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    n_pads = int((inputs["input_ids"] == pad_id).sum())
    assert n_pads == 6
    assert inputs["mm_token_type_ids"][inputs["input_ids"] == pad_id].eq(1).all()
    assert int(inputs["mm_token_type_ids"].sum()) == n_pads
    assert inputs["pixel_values"].shape[0] == 24  # one row per 14/16 px patch (t=1 repeated to temporal patch 2)
    # The reference's (deprecated) min_pixels / max_pixels spelling gives the same result.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        legacy = processor(
            text=[prompt],
            images=[image],
            return_tensors="pt",
            min_pixels=unit * unit * 4,
            max_pixels=unit * unit * 16,
            return_mm_token_type_ids=True,
        )
    assert torch.equal(legacy["input_ids"], inputs["input_ids"])


def test_processor_is_none_for_internvl(tokenizers: dict) -> None:
    assert build_processor("internvl", tokenizers["internvl"]) is None
    assert build_processor("internvl_llama", tokenizers["internvl_llama"]) is None


@pytest.mark.parametrize("family", QWEN)
def test_processor_save_load_round_trip(tokenizers: dict, image: Image.Image, family: str, tmp_path: Path) -> None:
    processor = build_processor(family, tokenizers[family])
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is type(processor)
    assert loaded.chat_template == processor.chat_template
    assert loaded.image_processor.patch_size == processor.image_processor.patch_size
    prompt = processor.apply_chat_template(_one_image_messages("Hi"), tokenize=False, add_generation_prompt=True)
    expected = processor(text=[prompt], images=[image], return_tensors="pt")
    got = loaded(text=[prompt], images=[image], return_tensors="pt")
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


# ------------------------------------------------------------------------------------------------ MLLM configs


def _tiny_inputs(family: str, tokenizer, image: Image.Image, num_tiles: int = 2) -> dict:
    """Processor inputs for Qwen, hand-built InternVL inputs with 256 <IMG_CONTEXT> ids per 448 px tile."""
    if family in QWEN:
        processor = build_processor(family, tokenizer)
        unit = processor.image_processor.patch_size * processor.image_processor.merge_size
        prompt = processor.apply_chat_template(_one_image_messages("Hi"), tokenize=False, add_generation_prompt=True)
        return dict(
            processor(
                text=[prompt],
                images=[image],
                return_tensors="pt",
                size={"shortest_edge": unit * unit * 4, "longest_edge": unit * unit * 16},
                return_mm_token_type_ids=True,
            )
        )
    placeholder = "<img>" + "<IMG_CONTEXT>" * (256 * num_tiles) + "</img>"
    prompt = f"<|im_start|>user\n{placeholder}\nPlease segment the cube.<|im_end|>\n<|im_start|>assistant\n"
    encoded = tokenizer(prompt, return_tensors="pt")
    return dict(encoded, pixel_values=torch.randn(num_tiles, 3, 448, 448))


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_mllm_forward_on_cpu(tokenizers: dict, image: Image.Image, family: str) -> None:
    tokenizer = tokenizers[family]
    config = tiny_mllm_config(family, len(tokenizer), special_token_ids(tokenizer))
    torch.manual_seed(0)
    model = MODEL_CLASSES[family](config).eval()
    # Sa2VA exports an untied lm_head.
    assert model.lm_head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    inputs = _tiny_inputs(family, tokenizer, image)
    start = time.perf_counter()
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    assert time.perf_counter() - start < 2.0
    seq_len = inputs["input_ids"].shape[1]
    assert out.logits.shape == (1, seq_len, len(tokenizer))
    assert out.hidden_states[-1].shape == (1, seq_len, 64)
    assert torch.isfinite(out.logits).all()


def test_internvl_keeps_256_tokens_per_tile(tokenizers: dict) -> None:
    tokenizer = tokenizers["internvl"]
    config = tiny_mllm_config("internvl", len(tokenizer), special_token_ids(tokenizer))
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    model = InternVLForConditionalGeneration(config).eval()
    with torch.no_grad():
        features = model.get_image_features(torch.randn(3, 3, 448, 448), return_dict=True).pooler_output
    assert tuple(features.shape) == (3, 256, 64)


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_config_json_round_trip(tokenizers: dict, family: str, tmp_path: Path) -> None:
    tokenizer = tokenizers[family]
    ids = special_token_ids(tokenizer)
    config = tiny_mllm_config(family, len(tokenizer), ids)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is type(config)
    assert loaded.to_json_string() == config.to_json_string()
    assert loaded.tie_word_embeddings is False
    assert loaded.get_text_config().vocab_size == len(tokenizer)
    if family in QWEN:
        assert loaded.image_token_id == ids["<|image_pad|>"]
        assert loaded.video_token_id == ids["<|video_pad|>"]
        assert loaded.vision_start_token_id == ids["<|vision_start|>"]
        assert loaded.text_config.eos_token_id == ids["<|im_end|>"]
    else:
        assert loaded.image_token_id == ids["<IMG_CONTEXT>"]
        assert loaded.text_config.model_type == ("qwen2" if family == "internvl" else "llama")
        assert tuple(loaded.vision_config.image_size) == (448, 448)
        assert tuple(loaded.vision_config.patch_size) == (14, 14)
        assert loaded.downsample_ratio == 0.5


# ------------------------------------------------------------------------------------------------ SAM2 configs


def test_tiny_sam2_builds_and_keeps_256d_prompt(tmp_path: Path) -> None:
    config = tiny_sam2_config(256)
    assert config.vision_config.backbone_channel_list == list(
        reversed(config.vision_config.backbone_config.embed_dim_per_stage)
    )
    assert config.enable_occlusion_spatial_embedding is False  # SAM2 v1
    assert config.enable_temporal_pos_encoding_for_object_pointers is False
    assert config.memory_attention_rope_feat_sizes == [16, 16]
    torch.manual_seed(0)
    model = Sam2VideoModel(config).eval()
    pixels = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        features = model.get_image_features(pixels, return_dict=True).fpn_hidden_states
        out = decode_language_prompts(model, encode_images(model, pixels), torch.randn(1, 1, 256))
    # (H*W, batch, channels) per level: S/4 with 32 ch (conv_s0 input), S/8 with 64 ch, S/16 with 256 ch.
    assert [tuple(f.shape) for f in features] == [(64 * 64, 1, 32), (32 * 32, 1, 64), (16 * 16, 1, 256)]
    assert tuple(model.get_image_wide_positional_embeddings().shape) == (1, 256, 16, 16)
    assert tuple(out.low_res_logits.shape) == (1, 1, 64, 64)
    config.save_pretrained(tmp_path)
    assert Sam2VideoConfig.from_pretrained(tmp_path).to_json_string() == config.to_json_string()


def test_sam2_hiera_large_parameter_count() -> None:
    config = sam2_hiera_large_config()
    # Meta device: count parameters without allocating ~870 MB or running anything.
    with torch.device("meta"):
        model = Sam2VideoModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    # SAM2 hiera-L: 224.4M with the memory modules (216.9M for the image part alone)
    assert 222e6 < n_params < 226e6
    assert model.occlusion_spatial_embedding_parameter is None
    assert tuple(model.vision_encoder.backbone.pos_embed.shape) == (1, 144, 7, 7)
    assert tuple(model.vision_encoder.backbone.pos_embed_window.shape) == (1, 144, 8, 8)
    assert tuple(model.mask_decoder.conv_s0.weight.shape) == (32, 256, 1, 1)
    assert tuple(model.mask_decoder.conv_s1.weight.shape) == (64, 256, 1, 1)


@pytest.mark.parametrize("family", QWEN)
def test_text_rope_theta_option(tokenizers: dict, family: str) -> None:
    ids = special_token_ids(tokenizers[family])
    default = tiny_mllm_config(family, len(tokenizers[family]), ids)
    low = tiny_mllm_config(family, len(tokenizers[family]), ids, text_sizes={"rope_theta": 10.0})
    assert low.text_config.rope_parameters["rope_theta"] == 10.0
    assert default.text_config.rope_parameters["rope_theta"] > 1e5
