"""Fake SAM2 weights laid out like an official Sa2VA checkpoint, for testing checkpoint conversion offline.

The names and shapes here are written from the ORIGINAL facebookresearch SAM2 v1 module tree (`SAM2Base` with the
`sam2_hiera_l.yaml` structure: Hiera trunk + FPN neck, memory attention, memory encoder, SAM prompt encoder and mask
decoder, object-pointer MLP), not by converting a transformers model, so a test that converts this fixture with
`sa2va.checkpoints.sam2_keys.sam2_rules` and loads it into `Sam2VideoModel` checks the rules against an independent
description of the checkpoint. Sizes come from the fields of a transformers `Sam2VideoConfig`, read with their
original meaning (e.g. `embed_dim_per_stage` is the original `embed_dim * dim_mul**stage`).

Only what the original creates as parameters or persistent buffers appears: q-pooling (`MaxPool2d`), activations,
dropouts, the sine position encodings and the RoPE frequencies have no tensors. SAM2 v1 has no `no_obj_embed_spatial`
and an `Identity` `obj_ptr_tpos_proj`; they are added only when the config asks for the SAM2.1 behaviour.
"""

from __future__ import annotations

import math

import torch
from transformers import Sam2VideoConfig

Shapes = dict[str, tuple[int, ...]]

SA2VA_PREFIX = "grounding_encoder.sam2_model."
"""Where the released Sa2VA checkpoints keep the original SAM2 model."""

_WEIGHT_SCALE = 0.05
"""Std of the random values: small enough that a forward pass through the whole model stays finite."""

# ----------------------------------------------------------------------------------------------------------------
# Shapes of the original building blocks (torch.nn layouts: Linear (out, in), Conv2d (out, in/groups, k, k),
# ConvTranspose2d (in, out, k, k), LayerNorm / LayerNorm2d (C,) weight and bias)
# ----------------------------------------------------------------------------------------------------------------


def _linear(name: str, in_features: int, out_features: int) -> Shapes:
    return {f"{name}.weight": (out_features, in_features), f"{name}.bias": (out_features,)}


def _conv(name: str, in_channels: int, out_channels: int, kernel: int, groups: int = 1) -> Shapes:
    return {f"{name}.weight": (out_channels, in_channels // groups, kernel, kernel), f"{name}.bias": (out_channels,)}


def _conv_transpose(name: str, in_channels: int, out_channels: int, kernel: int) -> Shapes:
    return {f"{name}.weight": (in_channels, out_channels, kernel, kernel), f"{name}.bias": (out_channels,)}


def _norm(name: str, channels: int) -> Shapes:
    return {f"{name}.weight": (channels,), f"{name}.bias": (channels,)}


def _embedding(name: str, rows: int, dim: int) -> Shapes:
    return {f"{name}.weight": (rows, dim)}


def _mlp(name: str, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> Shapes:
    """`sam2_utils.MLP`: `layers.0 .. layers.{n-1}`, in → hidden → ... → hidden → out."""
    dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    shapes: Shapes = {}
    for index in range(num_layers):
        shapes |= _linear(f"{name}.layers.{index}", dims[index], dims[index + 1])
    return shapes


def _attention(name: str, dim: int, downsample_rate: int = 1, kv_in_dim: int | None = None) -> Shapes:
    """`sam.transformer.Attention` (and `RoPEAttention`, which adds no tensors)."""
    internal = dim // downsample_rate
    kv_in = dim if kv_in_dim is None else kv_in_dim
    return (
        _linear(f"{name}.q_proj", dim, internal)
        | _linear(f"{name}.k_proj", kv_in, internal)
        | _linear(f"{name}.v_proj", kv_in, internal)
        | _linear(f"{name}.out_proj", internal, dim)
    )


# ----------------------------------------------------------------------------------------------------------------
# The modules of SAM2Base
# ----------------------------------------------------------------------------------------------------------------


def _hiera_trunk(config: Sam2VideoConfig) -> Shapes:
    """`backbones.hieradet.Hiera`: patch embed, the two position embeddings and `sum(stages)` blocks."""
    hiera = config.vision_config.backbone_config
    dims = list(hiera.embed_dim_per_stage)
    shapes: Shapes = {
        "pos_embed": (1, dims[0], *hiera.window_positional_embedding_background_size),
        # The window embedding is tiled over the first stage's windows, so it has that window's size.
        "pos_embed_window": (1, dims[0], hiera.window_size_per_stage[0], hiera.window_size_per_stage[0]),
    }
    kernel = hiera.patch_kernel_size[0] if isinstance(hiera.patch_kernel_size, list) else hiera.patch_kernel_size
    shapes |= _conv("patch_embed.proj", hiera.num_channels, dims[0], kernel)
    # Block i runs at the dim of the previous block (dim) and outputs its own stage's dim (dim_out): the first block
    # of stages 2-4 changes width, so it has a `proj` for the shortcut (and q-pools, which has no tensors).
    stage_of_block = [stage for stage, count in enumerate(hiera.blocks_per_stage) for _ in range(count)]
    dim = dims[0]
    for index, stage in enumerate(stage_of_block):
        dim_out = dims[stage]
        block = f"blocks.{index}"
        shapes |= _norm(f"{block}.norm1", dim)
        shapes |= _linear(f"{block}.attn.qkv", dim, 3 * dim_out)
        shapes |= _linear(f"{block}.attn.proj", dim_out, dim_out)
        shapes |= _norm(f"{block}.norm2", dim_out)
        shapes |= _mlp(f"{block}.mlp", dim_out, int(dim_out * hiera.mlp_ratio), dim_out, num_layers=2)
        if dim != dim_out:
            shapes |= _linear(f"{block}.proj", dim, dim_out)
        dim = dim_out
    return shapes


def _fpn_neck(config: Sam2VideoConfig) -> Shapes:
    """`backbones.image_encoder.FpnNeck`: one lateral conv per trunk stage, each inside `Sequential(conv=...)`."""
    vision = config.vision_config
    shapes: Shapes = {}
    for index, channels in enumerate(vision.backbone_channel_list):
        shapes |= _conv(f"convs.{index}.conv", channels, vision.fpn_hidden_size, vision.fpn_kernel_size)
    return shapes


def _memory_attention(config: Sam2VideoConfig) -> Shapes:
    """`memory_attention.MemoryAttention`: RoPE self-attention, RoPE cross-attention to 64-d memories, FFN, 3 norms."""
    dim = config.memory_attention_hidden_size
    rate = config.memory_attention_downsample_rate
    ffn = config.memory_attention_feed_forward_hidden_size
    shapes: Shapes = {}
    for index in range(config.memory_attention_num_layers):
        layer = f"layers.{index}"
        shapes |= _attention(f"{layer}.self_attn", dim, rate)
        shapes |= _attention(f"{layer}.cross_attn_image", dim, rate, kv_in_dim=config.memory_encoder_output_channels)
        shapes |= _linear(f"{layer}.linear1", dim, ffn) | _linear(f"{layer}.linear2", ffn, dim)
        for norm in (1, 2, 3):
            shapes |= _norm(f"{layer}.norm{norm}", dim)
    return shapes | _norm("norm", dim)


def _mask_downsampler(config: Sam2VideoConfig) -> Shapes:
    """`memory_encoder.MaskDownSampler`: `encoder` = (conv, LayerNorm2d, GELU) per step, then a 1x1 conv.

    Each step divides the side by `stride` and multiplies the channels by `stride**2`; there are
    `log(total_stride) / log(stride)` steps (4 for 16 / 2), so the final conv is at index `3 * steps`.
    """
    stride = config.mask_downsampler_stride
    steps = round(math.log(config.mask_downsampler_total_stride) / math.log(stride))
    kernel = config.mask_downsampler_kernel_size
    shapes: Shapes = {}
    channels = 1
    for step in range(steps):
        out_channels = channels * stride**2
        shapes |= _conv(f"encoder.{3 * step}", channels, out_channels, kernel)
        shapes |= _norm(f"encoder.{3 * step + 1}", out_channels)
        channels = out_channels
    return shapes | _conv(f"encoder.{3 * steps}", channels, config.mask_downsampler_embed_dim, 1)


def _memory_encoder(config: Sam2VideoConfig, layer_scale_name: str) -> Shapes:
    """`memory_encoder.MemoryEncoder`: mask downsampler, pixel projection, ConvNeXt fuser, output projection."""
    in_dim = config.memory_encoder_hidden_size
    out_dim = config.memory_encoder_output_channels
    fuser_dim = config.memory_fuser_embed_dim
    shapes: Shapes = {f"mask_downsampler.{name}": shape for name, shape in _mask_downsampler(config).items()}
    shapes |= _conv("pix_feat_proj", in_dim, in_dim, 1)
    for index in range(config.memory_fuser_num_layers):
        layer = f"fuser.layers.{index}"
        shapes |= _conv(f"{layer}.dwconv", fuser_dim, fuser_dim, config.memory_fuser_kernel_size, groups=fuser_dim)
        shapes |= _norm(f"{layer}.norm", fuser_dim)
        shapes |= _linear(f"{layer}.pwconv1", fuser_dim, config.memory_fuser_intermediate_dim)
        shapes |= _linear(f"{layer}.pwconv2", config.memory_fuser_intermediate_dim, fuser_dim)
        shapes[f"{layer}.{layer_scale_name}"] = (fuser_dim,)
    if out_dim != in_dim:  # otherwise the original's out_proj is an Identity
        shapes |= _conv("out_proj", in_dim, out_dim, 1)
    return shapes


def _prompt_encoder(config: Sam2VideoConfig) -> Shapes:
    """`sam.prompt_encoder.PromptEncoder`: Fourier matrix, 4 point embeddings, mask downscaling, no-mask embedding."""
    prompt = config.prompt_encoder_config
    dim, mask_channels = prompt.hidden_size, prompt.mask_input_channels
    # A persistent buffer of the original (so it is in the checkpoint): (2, dim / 2) random Fourier frequencies.
    shapes: Shapes = {"pe_layer.positional_encoding_gaussian_matrix": (2, dim // 2)}
    for index in range(prompt.num_point_embeddings):
        shapes |= _embedding(f"point_embeddings.{index}", 1, dim)
    shapes |= _embedding("not_a_point_embed", 1, dim)
    # mask_downscaling = Sequential(conv 2x2/2, LN2d, GELU, conv 2x2/2, LN2d, GELU, conv 1x1).
    shapes |= _conv("mask_downscaling.0", 1, mask_channels // 4, 2)
    shapes |= _norm("mask_downscaling.1", mask_channels // 4)
    shapes |= _conv("mask_downscaling.3", mask_channels // 4, mask_channels, 2)
    shapes |= _norm("mask_downscaling.4", mask_channels)
    shapes |= _conv("mask_downscaling.6", mask_channels, dim, 1)
    return shapes | _embedding("no_mask_embed", 1, dim)


def _two_way_transformer(config: Sam2VideoConfig) -> Shapes:
    """`sam.transformer.TwoWayTransformer`: blocks of self / token→image / image→token attention, plus a final one."""
    decoder = config.mask_decoder_config
    dim, rate = decoder.hidden_size, decoder.attention_downsample_rate
    shapes: Shapes = {}
    for index in range(decoder.num_hidden_layers):
        layer = f"layers.{index}"
        shapes |= _attention(f"{layer}.self_attn", dim)  # self-attention is never downsampled
        shapes |= _norm(f"{layer}.norm1", dim)
        shapes |= _attention(f"{layer}.cross_attn_token_to_image", dim, rate)
        shapes |= _norm(f"{layer}.norm2", dim)
        shapes |= _mlp(f"{layer}.mlp", dim, decoder.mlp_dim, dim, num_layers=2)
        shapes |= _norm(f"{layer}.norm3", dim) | _norm(f"{layer}.norm4", dim)
        shapes |= _attention(f"{layer}.cross_attn_image_to_token", dim, rate)
    shapes |= _attention("final_attn_token_to_image", dim, rate)
    return shapes | _norm("norm_final_attn", dim)


def _mask_decoder(config: Sam2VideoConfig) -> Shapes:
    """`sam.mask_decoder.MaskDecoder` with high-res features and the object-score MLP (both on in SAM2 v1 hiera-L)."""
    decoder = config.mask_decoder_config
    dim = decoder.hidden_size
    num_mask_tokens = decoder.num_multimask_outputs + 1
    shapes: Shapes = {f"transformer.{name}": shape for name, shape in _two_way_transformer(config).items()}
    shapes |= _embedding("iou_token", 1, dim)
    shapes |= _embedding("mask_tokens", num_mask_tokens, dim)
    shapes |= _embedding("obj_score_token", 1, dim)
    # output_upscaling = Sequential(convT 2x2/2, LN2d, GELU, convT 2x2/2, GELU): dim → dim/4 → dim/8.
    shapes |= _conv_transpose("output_upscaling.0", dim, dim // 4, 2)
    shapes |= _norm("output_upscaling.1", dim // 4)
    shapes |= _conv_transpose("output_upscaling.3", dim // 4, dim // 8, 2)
    # Projections of the stride-4 and stride-8 FPN levels to the widths of the two upscaling stages.
    shapes |= _conv("conv_s0", dim, dim // 8, 1) | _conv("conv_s1", dim, dim // 4, 1)
    for index in range(num_mask_tokens):
        shapes |= _mlp(f"output_hypernetworks_mlps.{index}", dim, dim, dim // 8, num_layers=3)
    shapes |= _mlp(
        "iou_prediction_head", dim, decoder.iou_head_hidden_dim, num_mask_tokens, num_layers=decoder.iou_head_depth
    )
    return shapes | _mlp("pred_obj_score_head", dim, dim, 1, num_layers=3)


def _with_prefix(prefix: str, shapes: Shapes) -> Shapes:
    return {f"{prefix}{name}": shape for name, shape in shapes.items()}


def official_sam2_shapes(
    sam2_config: Sam2VideoConfig, prefix: str = SA2VA_PREFIX, *, layer_scale_name: str = "g_weight"
) -> Shapes:
    """Names and shapes of every tensor of an original SAM2 checkpoint built with `sam2_config`'s sizes.

    Args:
        sam2_config: the transformers config whose sizes to use (e.g. `sam2_hiera_large_config()`).
        prefix: prepended to every original name (`""` for a bare SAM2 checkpoint).
        layer_scale_name: the memory-fuser layer scale: `g_weight` as Sa2VA exports it, `gamma` as SAM2 saves it.

    Returns:
        Original key → shape, in the order `SAM2Base.state_dict()` lists them (own tensors, then sub-modules).
    """
    hidden = sam2_config.vision_config.fpn_hidden_size  # SAM2Base.hidden_dim = neck.d_model
    mem_dim = sam2_config.memory_encoder_output_channels
    shapes: Shapes = {
        "maskmem_tpos_enc": (sam2_config.num_maskmem, 1, 1, mem_dim),
        "no_mem_embed": (1, 1, hidden),
        "no_mem_pos_enc": (1, 1, hidden),  # hidden_dim wide in the original too, not mem_dim
        "no_obj_ptr": (1, hidden),
    }
    if sam2_config.enable_occlusion_spatial_embedding:  # SAM2.1 only
        shapes["no_obj_embed_spatial"] = (1, mem_dim)
    shapes |= _with_prefix("image_encoder.trunk.", _hiera_trunk(sam2_config))
    shapes |= _with_prefix("image_encoder.neck.", _fpn_neck(sam2_config))
    shapes |= _conv("mask_downsample", 1, 1, 4)
    shapes |= _with_prefix("memory_attention.", _memory_attention(sam2_config))
    shapes |= _with_prefix("memory_encoder.", _memory_encoder(sam2_config, layer_scale_name))
    shapes |= _with_prefix("sam_prompt_encoder.", _prompt_encoder(sam2_config))
    shapes |= _with_prefix("sam_mask_decoder.", _mask_decoder(sam2_config))
    shapes |= _mlp("obj_ptr_proj", hidden, hidden, hidden, num_layers=3)
    if sam2_config.enable_temporal_pos_encoding_for_object_pointers:  # SAM2.1 only; an Identity in v1
        shapes |= _linear("obj_ptr_tpos_proj", hidden, mem_dim)
    return _with_prefix(prefix, shapes)


def official_sam2_state_dict(
    sam2_config: Sam2VideoConfig,
    generator: torch.Generator | None = None,
    prefix: str = SA2VA_PREFIX,
    *,
    device: torch.device | str = "cpu",
    layer_scale_name: str = "g_weight",
) -> dict[str, torch.Tensor]:
    """Random float32 tensors with the names and shapes of an official Sa2VA checkpoint's SAM2 part.

    Args:
        sam2_config: the transformers config whose sizes to use (`sa2va.testing.tiny_sam2_config()` for tests).
        generator: source of the random values (seed it for reproducible fixtures); ignored on the meta device.
        prefix: prepended to every original name.
        device: `"meta"` gives shape-only tensors, e.g. to check the ~900 MB hiera-L layout without allocating it.
        layer_scale_name: `g_weight` (Sa2VA exports) or `gamma` (facebookresearch checkpoint).

    Returns:
        Original key → tensor, see :func:`official_sam2_shapes`.
    """
    shapes = official_sam2_shapes(sam2_config, prefix, layer_scale_name=layer_scale_name)
    if torch.device(device).type == "meta":
        return {name: torch.empty(shape, dtype=torch.float32, device="meta") for name, shape in shapes.items()}
    return {
        name: (torch.randn(shape, generator=generator, dtype=torch.float32) * _WEIGHT_SCALE).to(device)
        for name, shape in shapes.items()
    }


__all__ = ["SA2VA_PREFIX", "official_sam2_shapes", "official_sam2_state_dict"]
