"""SAM2 key rules: official Sa2VA / original SAM2 names ↔ transformers `Sam2VideoModel` (REFERENCE_SPEC §6.5, §6.6).

The official side comes from `sa2va.testing_official_sam2`, written from the original SAM2 module tree, so these tests
check the rules against an independent description of the checkpoint rather than against themselves.
"""

from __future__ import annotations

import re

import pytest
import torch
from transformers import Sam2VideoConfig, Sam2VideoModel

from sa2va.checkpoints.rules import KeyRule
from sa2va.checkpoints.sam2_keys import original_sam2_name, sam2_rules
from sa2va.configuration import sam2_hiera_large_config
from sa2va.errors import Sa2VACheckpointError
from sa2va.modeling.sam2_prompt import decode_language_prompts, encode_images
from sa2va.testing_official_sam2 import official_sam2_shapes, official_sam2_state_dict
from sa2va.testing_parts import tiny_sam2_config

PREFIX = "grounding_encoder.sam2_model."

# §6.6: original key (Sa2VA key without its prefix) → Sam2VideoModel key. `g_weight` is Sa2VA's name for `gamma`.
WORKED_EXAMPLES: dict[str, str] = {
    "image_encoder.trunk.pos_embed": "vision_encoder.backbone.pos_embed",
    "image_encoder.trunk.patch_embed.proj.weight": "vision_encoder.backbone.patch_embed.projection.weight",
    "image_encoder.trunk.blocks.2.norm1.weight": "vision_encoder.backbone.blocks.2.layer_norm1.weight",
    "image_encoder.trunk.blocks.2.attn.qkv.weight": "vision_encoder.backbone.blocks.2.attn.qkv.weight",
    "image_encoder.trunk.blocks.2.proj.weight": "vision_encoder.backbone.blocks.2.proj.weight",
    "image_encoder.trunk.blocks.2.mlp.layers.1.weight": "vision_encoder.backbone.blocks.2.mlp.proj_out.weight",
    "image_encoder.neck.convs.3.conv.weight": "vision_encoder.neck.convs.3.weight",
    "memory_attention.layers.0.self_attn.out_proj.weight": "memory_attention.layers.0.self_attn.o_proj.weight",
    "memory_attention.layers.0.cross_attn_image.k_proj.weight": "memory_attention.layers.0.cross_attn_image.k_proj.weight",
    "memory_attention.layers.0.linear1.weight": "memory_attention.layers.0.linear1.weight",
    "memory_attention.layers.0.norm3.weight": "memory_attention.layers.0.layer_norm3.weight",
    "memory_attention.norm.weight": "memory_attention.layer_norm.weight",
    "memory_encoder.mask_downsampler.encoder.12.weight": "memory_encoder.mask_downsampler.final_conv.weight",
    "memory_encoder.mask_downsampler.encoder.4.weight": "memory_encoder.mask_downsampler.layers.1.layer_norm.weight",
    "memory_encoder.pix_feat_proj.weight": "memory_encoder.feature_projection.weight",
    "memory_encoder.fuser.layers.1.g_weight": "memory_encoder.memory_fuser.layers.1.scale",
    "memory_encoder.fuser.layers.1.pwconv2.weight": "memory_encoder.memory_fuser.layers.1.pointwise_conv2.weight",
    "memory_encoder.out_proj.weight": "memory_encoder.projection.weight",
    "sam_prompt_encoder.mask_downscaling.4.weight": "prompt_encoder.mask_embed.layer_norm2.weight",
    "sam_mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.weight": (
        "mask_decoder.transformer.layers.1.cross_attn_image_to_token.o_proj.weight"
    ),
    "sam_mask_decoder.transformer.layers.1.mlp.layers.1.weight": "mask_decoder.transformer.layers.1.mlp.proj_out.weight",
    "sam_mask_decoder.transformer.layers.1.norm4.weight": "mask_decoder.transformer.layers.1.layer_norm4.weight",
    "sam_mask_decoder.transformer.norm_final_attn.weight": "mask_decoder.transformer.layer_norm_final_attn.weight",
    "sam_mask_decoder.output_upscaling.1.weight": "mask_decoder.upscale_layer_norm.weight",
    "sam_mask_decoder.output_hypernetworks_mlps.2.layers.2.weight": "mask_decoder.output_hypernetworks_mlps.2.proj_out.weight",
    "sam_mask_decoder.iou_prediction_head.layers.1.weight": "mask_decoder.iou_prediction_head.layers.0.weight",
    "sam_mask_decoder.pred_obj_score_head.layers.0.weight": "mask_decoder.pred_obj_score_head.proj_in.weight",
    "obj_ptr_proj.layers.2.weight": "object_pointer_proj.proj_out.weight",
    "maskmem_tpos_enc": "memory_temporal_positional_encoding",
    "no_mem_embed": "no_memory_embedding",
    "no_obj_ptr": "no_object_pointer",
    "mask_downsample.weight": "mask_downsample.weight",
}

# §6.6 shapes to assert after converting a hiera-L checkpoint (Sam2VideoModel keys).
HIERA_L_SHAPES: dict[str, tuple[int, ...]] = {
    "vision_encoder.backbone.pos_embed": (1, 144, 7, 7),
    "vision_encoder.backbone.pos_embed_window": (1, 144, 8, 8),
    "memory_temporal_positional_encoding": (7, 1, 1, 64),
    "no_memory_embedding": (1, 1, 256),
    "no_object_pointer": (1, 256),
    "prompt_encoder.point_embed.weight": (4, 256),
    "shared_image_embedding.positional_embedding": (2, 128),
    "mask_decoder.mask_tokens.weight": (4, 256),
    "mask_decoder.conv_s0.weight": (32, 256, 1, 1),
    "mask_decoder.conv_s1.weight": (64, 256, 1, 1),
}


def meta_state_dict(config: Sam2VideoConfig) -> dict[str, torch.Tensor]:
    """Native state dict with shapes only (hiera-L would be ~900 MB of real tensors)."""
    with torch.device("meta"):
        return Sam2VideoModel(config).state_dict()


def to_native(rules: list[KeyRule], official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    native: dict[str, torch.Tensor] = {}
    for rule in rules:
        native.update(zip(rule.native, rule.to_native([official[key] for key in rule.official]), strict=True))
    return native


def to_official(rules: list[KeyRule], native: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    official: dict[str, torch.Tensor] = {}
    for rule in rules:
        official.update(zip(rule.official, rule.to_official([native[key] for key in rule.native]), strict=True))
    return official


def shapes_of(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in tensors.items()}


def sam21_tiny_config() -> Sam2VideoConfig:
    """Tiny config with the SAM2.1 extras on (occlusion embedding, object-pointer temporal projection)."""
    config = tiny_sam2_config(256)
    config.enable_occlusion_spatial_embedding = True
    config.enable_temporal_pos_encoding_for_object_pointers = True
    return config


CONFIGS = {"hiera_l": sam2_hiera_large_config, "tiny": lambda: tiny_sam2_config(256), "tiny_sam21": sam21_tiny_config}


@pytest.fixture(scope="module")
def hiera_l_native() -> dict[str, torch.Tensor]:
    return {f"sam2.{name}": tensor for name, tensor in meta_state_dict(sam2_hiera_large_config()).items()}


@pytest.fixture(scope="module")
def hiera_l_rules(hiera_l_native) -> list[KeyRule]:
    return sam2_rules(hiera_l_native)


# ----------------------------------------------------------------------------------------------------------------
# (a) worked examples
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("official, native", WORKED_EXAMPLES.items())
def test_worked_example_maps_exactly(hiera_l_rules, official, native):
    by_native = {rule.native: rule.official for rule in hiera_l_rules}
    assert by_native[(f"sam2.{native}",)] == (PREFIX + official,)


def test_point_embeddings_are_the_rows_of_point_embed(hiera_l_rules):
    (rule,) = [r for r in hiera_l_rules if r.native == ("sam2.prompt_encoder.point_embed.weight",)]
    assert rule.official == tuple(f"{PREFIX}sam_prompt_encoder.point_embeddings.{k}.weight" for k in range(4))
    rows = [torch.full((1, 256), float(k)) for k in range(4)]
    (stacked,) = rule.to_native(rows)
    assert stacked.shape == (4, 256) and torch.equal(stacked[:, 0], torch.arange(4.0))
    back = rule.to_official([stacked])
    assert all(torch.equal(a, b) for a, b in zip(back, rows, strict=True))
    # Separate storage per row, so the official state dict can be saved with safetensors.
    assert len({t.untyped_storage().data_ptr() for t in back}) == 4


def test_fourier_matrix_feeds_both_native_copies(hiera_l_rules):
    (rule,) = [r for r in hiera_l_rules if len(r.native) == 2]
    assert rule.official == (f"{PREFIX}sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",)
    assert rule.native == (
        "sam2.prompt_encoder.shared_embedding.positional_embedding",
        "sam2.shared_image_embedding.positional_embedding",
    )
    matrix = torch.randn(2, 128)
    first, second = rule.to_native([matrix])
    assert torch.equal(first, matrix) and torch.equal(second, matrix)
    assert first.untyped_storage().data_ptr() != second.untyped_storage().data_ptr()
    (back,) = rule.to_official([first, second])
    assert torch.equal(back, matrix)


# ----------------------------------------------------------------------------------------------------------------
# (b) coverage and (d) shapes
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
def test_rules_cover_each_native_key_once_and_name_exactly_the_original_tensors(config_name):
    config = CONFIGS[config_name]()
    native = meta_state_dict(config)
    rules = sam2_rules(native, native_prefix="")
    native_in_rules = [key for rule in rules for key in rule.native]
    official_in_rules = [key for rule in rules for key in rule.official]
    assert sorted(native_in_rules) == sorted(native)  # every key, and each exactly once
    assert len(official_in_rules) == len(set(official_in_rules))
    assert set(official_in_rules) == set(official_sam2_shapes(config))


@pytest.mark.parametrize("config_name", CONFIGS)
def test_converted_fixture_has_the_native_shapes(config_name):
    config = CONFIGS[config_name]()
    native = meta_state_dict(config)
    official = official_sam2_state_dict(config, device="meta")
    converted = to_native(sam2_rules(native, native_prefix=""), official)
    assert shapes_of(converted) == shapes_of(native)


def test_hiera_l_shapes_after_conversion(hiera_l_native, hiera_l_rules):
    converted = to_native(hiera_l_rules, official_sam2_state_dict(sam2_hiera_large_config(), device="meta"))
    for name, shape in HIERA_L_SHAPES.items():
        assert tuple(converted[f"sam2.{name}"].shape) == shape, name


def test_hiera_l_original_layout_facts():
    shapes = official_sam2_shapes(sam2_hiera_large_config(), prefix="")
    assert sum(torch.Size(shape).numel() for shape in shapes.values()) == 224_430_386  # SAM2 hiera-L: 224.4M
    assert shapes["no_mem_pos_enc"] == (1, 1, 256)  # hidden_dim wide, like no_mem_embed (not mem_dim)
    assert shapes["maskmem_tpos_enc"] == (7, 1, 1, 64)
    assert shapes["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] == (2, 128)
    # Stage transitions after blocks 1, 7 and 43 (stages [2, 6, 36, 4]) are the only blocks with a shortcut proj.
    block_proj = re.compile(r"image_encoder\.trunk\.blocks\.(\d+)\.proj\.weight")
    with_proj = sorted(int(m[1]) for name in shapes if (m := block_proj.fullmatch(name)))
    assert with_proj == [2, 8, 44]
    downsampler = sorted({int(n.split(".")[3]) for n in shapes if n.startswith("memory_encoder.mask_downsampler.")})
    assert downsampler == [0, 1, 3, 4, 6, 7, 9, 10, 12]
    # SAM2 v1: no occlusion embedding, and obj_ptr_tpos_proj is an Identity.
    assert not any(name.startswith(("no_obj_embed_spatial", "obj_ptr_tpos_proj")) for name in shapes)


# ----------------------------------------------------------------------------------------------------------------
# (c) real tensors: load strictly, convert back bit-identically, run the model
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_loaded() -> tuple[Sam2VideoModel, dict[str, torch.Tensor], list[KeyRule]]:
    config = tiny_sam2_config(256)
    model = Sam2VideoModel(config).eval()
    official = official_sam2_state_dict(config, torch.Generator().manual_seed(0))
    rules = sam2_rules([f"sam2.{key}" for key in model.state_dict()])
    converted = to_native(rules, official)
    model.load_state_dict({key.removeprefix("sam2."): tensor for key, tensor in converted.items()}, strict=True)
    return model, official, rules


def test_tiny_fixture_loads_strictly_and_lands_where_expected(tiny_loaded):
    model, official, _ = tiny_loaded
    assert torch.equal(
        model.memory_encoder.memory_fuser.layers[1].scale, official[f"{PREFIX}memory_encoder.fuser.layers.1.g_weight"]
    )
    assert torch.equal(
        model.mask_decoder.iou_prediction_head.layers[0].weight,
        official[f"{PREFIX}sam_mask_decoder.iou_prediction_head.layers.1.weight"],
    )
    assert torch.equal(
        model.memory_encoder.mask_downsampler.final_conv.weight,
        official[f"{PREFIX}memory_encoder.mask_downsampler.encoder.12.weight"],
    )
    matrix = official[f"{PREFIX}sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    assert torch.equal(model.shared_image_embedding.positional_embedding, matrix)
    assert torch.equal(model.prompt_encoder.shared_embedding.positional_embedding, matrix)
    assert torch.equal(
        model.prompt_encoder.point_embed.weight[2], official[f"{PREFIX}sam_prompt_encoder.point_embeddings.2.weight"][0]
    )


def test_tiny_round_trip_is_bit_identical(tiny_loaded):
    model, official, rules = tiny_loaded
    native = {f"sam2.{key}": tensor for key, tensor in model.state_dict().items()}
    back = to_official(rules, native)
    assert back.keys() == official.keys()
    for key, tensor in official.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key


def test_tiny_model_with_converted_weights_segments(tiny_loaded):
    model, _, _ = tiny_loaded
    pixels = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    prompts = torch.randn(1, 2, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        prediction = decode_language_prompts(model, encode_images(model, pixels), prompts)
    assert prediction.low_res_logits.shape == (1, 2, 64, 64)
    assert torch.isfinite(prediction.low_res_logits).all() and torch.isfinite(prediction.iou_scores).all()


# ----------------------------------------------------------------------------------------------------------------
# (e) errors, prefixes and options
# ----------------------------------------------------------------------------------------------------------------


def test_unknown_native_key_raises_naming_it():
    with pytest.raises(Sa2VACheckpointError, match=r"sam2\.vision_encoder\.backbone\.bogus\.weight"):
        sam2_rules(["sam2.no_memory_embedding", "sam2.vision_encoder.backbone.bogus.weight"])
    with pytest.raises(Sa2VACheckpointError, match="mask_decoder.bogus"):
        original_sam2_name("mask_decoder.bogus", [])


def test_keys_outside_the_native_prefix_are_ignored():
    rules = sam2_rules(["mllm.lm_head.weight", "text_hidden_fcs.0.weight", "sam2.no_object_pointer"])
    assert [(rule.official, rule.native) for rule in rules] == [((f"{PREFIX}no_obj_ptr",), ("sam2.no_object_pointer",))]


def test_raw_sam2_checkpoint_names_with_gamma():
    config = tiny_sam2_config(256)
    rules = sam2_rules(meta_state_dict(config), native_prefix="", official_prefix="", layer_scale_name="gamma")
    official = {key for rule in rules for key in rule.official}
    assert "memory_encoder.fuser.layers.0.gamma" in official
    assert official == set(official_sam2_shapes(config, prefix="", layer_scale_name="gamma"))
