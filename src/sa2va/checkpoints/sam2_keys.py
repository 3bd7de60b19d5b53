"""SAM2 tensors of the official Sa2VA checkpoints ↔ transformers `Sam2VideoModel` tensors.

A released Sa2VA checkpoint stores SAM2 as `grounding_encoder.sam2_model.` + the key of the original
facebookresearch SAM2 v1 state dict (`sam2_hiera_large.pt['model']`), except that each memory-fuser layer scale
`memory_encoder.fuser.layers.{i}.gamma` is saved as `...g_weight` (REFERENCE_SPEC §6.1, §6.5). `Sa2VAModel` holds
a transformers `Sam2VideoModel` under `sam2.`.

The mapping is a table of module-level templates (native name → original name, `{i}`-style placeholders for layer
indices), read top to bottom like the two module trees side by side. Every native key must match exactly one row, so
the table has no ordering subtleties. A few rows compute an index instead of copying it:

* the original `MLP` numbers its linears `layers.0 .. layers.{n-1}`; transformers' feed-forward names them `proj_in`,
  `layers.0 .. layers.{n-3}`, `proj_out` (so the hidden linears shift by one and `proj_out` is the last index);
* the original mask downsampler is one `nn.Sequential` of (conv, LayerNorm2d, GELU) triples and a final 1×1 conv, so
  native `layers.{k}.conv` / `layers.{k}.layer_norm` / `final_conv` are `encoder.{3k}` / `encoder.{3k+1}` /
  `encoder.{3·num_layers}`.

Two tensors are not plain renames:

* the four original `sam_prompt_encoder.point_embeddings.{0..3}.weight` (each `(1, 256)`) are the rows of the
  native `prompt_encoder.point_embed.weight` `(4, 256)`;
* the original has one random-Fourier matrix `sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix`
  `(2, 128)` shared by the prompt encoder and the image-wide positional encoding; transformers keeps two copies,
  `prompt_encoder.shared_embedding.positional_embedding` and `shared_image_embedding.positional_embedding`.

Buffers: those two native copies are persistent buffers (in `state_dict`), as the original matrix is. The other native
buffers (`memory_attention.rotary_emb.inv_freq`, `.original_inv_freq`, `memory_attention.position_ids`) are
non-persistent and never appear in a state dict; the original computes RoPE frequencies as a plain attribute.

SAM2 v1 versus SAM2.1: a v1 checkpoint (every Sa2VA release) has no `no_obj_embed_spatial` and `obj_ptr_tpos_proj` is
an `Identity` (no tensors), matching a native model built with `enable_occlusion_spatial_embedding=False` and
`enable_temporal_pos_encoding_for_object_pointers=False` (`sa2va.configuration.sam2_v1_config`). The table still maps
the SAM2.1 tensors, so a native model built with 2.1 flags gets rules too (and then expects them in the checkpoint).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

import torch

from sa2va.checkpoints.rules import KeyRule, Tensors, rename
from sa2va.errors import Sa2VACheckpointError

NATIVE_PREFIX = "sam2."
"""Where `Sa2VAModel` keeps its `Sam2VideoModel`."""

OFFICIAL_PREFIX = "grounding_encoder.sam2_model."
"""Where the released Sa2VA checkpoints keep the original SAM2 model."""

SA2VA_LAYER_SCALE_NAME = "g_weight"
"""Name of the memory-fuser layer scale in Sa2VA checkpoints (the original SAM2 checkpoint calls it `gamma`)."""

NUM_POINT_EMBEDDINGS = 4
"""Original SAM2 hard-codes 4 point embeddings: negative point, positive point, two box corners."""

# The single Fourier matrix of the original, and the native copies it feeds (in the order `to_native` returns them).
_ORIGINAL_FOURIER_MATRIX = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_NATIVE_FOURIER_COPIES = (
    "prompt_encoder.shared_embedding.positional_embedding",
    "shared_image_embedding.positional_embedding",
)
_NATIVE_POINT_EMBED = "prompt_encoder.point_embed.weight"
_ORIGINAL_POINT_EMBED = "sam_prompt_encoder.point_embeddings.{}.weight"

# What each template placeholder may match. Indices never contain a dot, so rows cannot overlap across depths.
_PLACEHOLDERS: dict[str, str] = {
    "i": r"\d+",  # a layer / block / level index, copied unchanged
    "n": r"\d+",  # a numbered sibling (norm1..norm4, linear1/2, conv_s0/1), copied unchanged
    "h": r"\d+",  # a hidden linear of a feed-forward, shifted by one (see `_feed_forward`)
    "x": r"q|k|v",  # attention input projections
    "t": r"weight|bias",
}

Fields = dict[str, str]


class _NativeLayout:
    """Counts that some original indices depend on, read off the native key set (no config needed)."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = frozenset(names)
        self._counts: dict[str, int] = {}

    def count(self, pattern: str) -> int:
        """How many native names fully match the regex `pattern` (memoised: asked once per sibling tensor)."""
        if pattern not in self._counts:
            compiled = re.compile(pattern)
            self._counts[pattern] = sum(1 for name in self._names if compiled.fullmatch(name))
        return self._counts[pattern]

    def hidden_linears(self, module: str) -> int:
        """Number of hidden linears (`layers.{k}`) of the native feed-forward at `module`."""
        return self.count(re.escape(module) + r"\.layers\.\d+\.weight")


OfficialName = str | Callable[[Fields, _NativeLayout], str]
"""The original name of a row: a template formatted with the matched fields, or a function of them."""


@dataclass(frozen=True)
class _Row:
    """One line of the name table: a native template and its original counterpart."""

    native: str
    official: OfficialName
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(_template_regex(self.native)))

    def official_name(self, fields: Fields, layout: _NativeLayout) -> str:
        if isinstance(self.official, str):
            return self.official.format(**fields)
        return self.official(fields, layout)


def _template_regex(template: str) -> str:
    """`a.{i}.b{n}.{t}` → a regex with one named group per placeholder, everything else literal."""
    parts = re.split(r"\{(\w+)\}", template)
    regex = []
    for position, part in enumerate(parts):
        if position % 2 == 0:
            regex.append(re.escape(part))
        else:
            regex.append(f"(?P<{part}>{_PLACEHOLDERS[part]})")
    return "".join(regex)


# ----------------------------------------------------------------------------------------------------------------
# Row builders for module kinds that repeat
# ----------------------------------------------------------------------------------------------------------------


def _same(native: str, official: str, *names: str) -> list[_Row]:
    """Rows for sub-modules whose last part is identical on both sides (e.g. `attn.qkv`)."""
    return [_Row(f"{native}.{name}", f"{official}.{name}") for name in names]


def _attention(native: str, official: str) -> list[_Row]:
    """SAM2 `Attention` / `RoPEAttention`: only the output projection is renamed (`out_proj` → `o_proj`)."""
    return [
        _Row(f"{native}.{{x}}_proj.{{t}}", f"{official}.{{x}}_proj.{{t}}"),
        _Row(f"{native}.o_proj.{{t}}", f"{official}.out_proj.{{t}}"),
    ]


def _feed_forward(native: str, official: str) -> list[_Row]:
    """Original `MLP` (`layers.0 .. layers.{n-1}`) ↔ transformers feed-forward (`proj_in`, `layers.{h}`, `proj_out`).

    The index of `proj_out` depends on the depth, which is read off the native keys (the iou head's depth is a config
    field; every other SAM2 MLP has 2 or 3 layers).
    """

    def hidden(fields: Fields, layout: _NativeLayout) -> str:
        return f"{official.format(**fields)}.layers.{int(fields['h']) + 1}.{fields['t']}"

    def last(fields: Fields, layout: _NativeLayout) -> str:
        depth = layout.hidden_linears(native.format(**fields)) + 2
        return f"{official.format(**fields)}.layers.{depth - 1}.{fields['t']}"

    return [
        _Row(f"{native}.proj_in.{{t}}", f"{official}.layers.0.{{t}}"),
        _Row(f"{native}.layers.{{h}}.{{t}}", hidden),
        _Row(f"{native}.proj_out.{{t}}", last),
    ]


def _downsampler_conv(fields: Fields, layout: _NativeLayout) -> str:
    # (conv, LayerNorm2d, GELU) per step: the k-th conv sits at 3k.
    return f"memory_encoder.mask_downsampler.encoder.{3 * int(fields['i'])}.{fields['t']}"


def _downsampler_norm(fields: Fields, layout: _NativeLayout) -> str:
    return f"memory_encoder.mask_downsampler.encoder.{3 * int(fields['i']) + 1}.{fields['t']}"


def _downsampler_final_conv(fields: Fields, layout: _NativeLayout) -> str:
    # The final 1x1 conv follows the last GELU: index 3 * num_layers (12 for total stride 16, stride 2).
    steps = layout.count(r"memory_encoder\.mask_downsampler\.layers\.\d+\.conv\.weight")
    return f"memory_encoder.mask_downsampler.encoder.{3 * steps}.{fields['t']}"


# ----------------------------------------------------------------------------------------------------------------
# The table, one block per top-level module of the original `SAM2Base`
# ----------------------------------------------------------------------------------------------------------------


@cache
def _rows(layer_scale_name: str) -> tuple[_Row, ...]:
    """All name rows (native template, original template), relative to the two prefixes."""
    trunk, backbone = "image_encoder.trunk", "vision_encoder.backbone"
    block, native_block = f"{trunk}.blocks.{{i}}", f"{backbone}.blocks.{{i}}"
    ma_layer = "memory_attention.layers.{i}"
    fuser, native_fuser = "memory_encoder.fuser.layers.{i}", "memory_encoder.memory_fuser.layers.{i}"
    two_way, native_two_way = "sam_mask_decoder.transformer", "mask_decoder.transformer"
    tw_layer, native_tw_layer = f"{two_way}.layers.{{i}}", f"{native_two_way}.layers.{{i}}"
    return (
        # SAM2Base's own tensors.
        _Row("memory_temporal_positional_encoding", "maskmem_tpos_enc"),
        _Row("no_memory_embedding", "no_mem_embed"),
        _Row("no_memory_positional_encoding", "no_mem_pos_enc"),
        _Row("no_object_pointer", "no_obj_ptr"),
        _Row("mask_downsample.{t}", "mask_downsample.{t}"),
        *_feed_forward("object_pointer_proj", "obj_ptr_proj"),
        # SAM2.1 only (absent with v1 flags): occlusion embedding and the object-pointer temporal projection.
        _Row("occlusion_spatial_embedding_parameter", "no_obj_embed_spatial"),
        _Row("temporal_positional_encoding_projection_layer.{t}", "obj_ptr_tpos_proj.{t}"),
        # Hiera trunk. Only stage-transition blocks have `proj` (dim != dim_out); q-pooling is a parameter-free MaxPool.
        _Row(f"{backbone}.pos_embed", f"{trunk}.pos_embed"),
        _Row(f"{backbone}.pos_embed_window", f"{trunk}.pos_embed_window"),
        _Row(f"{backbone}.patch_embed.projection.{{t}}", f"{trunk}.patch_embed.proj.{{t}}"),
        _Row(f"{native_block}.layer_norm{{n}}.{{t}}", f"{block}.norm{{n}}.{{t}}"),
        *_same(native_block, block, "attn.qkv.{t}", "attn.proj.{t}", "proj.{t}"),
        *_feed_forward(f"{native_block}.mlp", f"{block}.mlp"),
        # FPN neck: the original wraps each lateral conv in `nn.Sequential(conv=...)`.
        _Row("vision_encoder.neck.convs.{i}.{t}", "image_encoder.neck.convs.{i}.conv.{t}"),
        # Memory attention (self-attention and cross-attention to memories use RoPEAttention).
        *_attention(f"{ma_layer}.self_attn", f"{ma_layer}.self_attn"),
        *_attention(f"{ma_layer}.cross_attn_image", f"{ma_layer}.cross_attn_image"),
        _Row(f"{ma_layer}.linear{{n}}.{{t}}", f"{ma_layer}.linear{{n}}.{{t}}"),
        _Row(f"{ma_layer}.layer_norm{{n}}.{{t}}", f"{ma_layer}.norm{{n}}.{{t}}"),
        _Row("memory_attention.layer_norm.{t}", "memory_attention.norm.{t}"),
        # Memory encoder.
        _Row("memory_encoder.mask_downsampler.layers.{i}.conv.{t}", _downsampler_conv),
        _Row("memory_encoder.mask_downsampler.layers.{i}.layer_norm.{t}", _downsampler_norm),
        _Row("memory_encoder.mask_downsampler.final_conv.{t}", _downsampler_final_conv),
        _Row("memory_encoder.feature_projection.{t}", "memory_encoder.pix_feat_proj.{t}"),
        _Row(f"{native_fuser}.depthwise_conv.{{t}}", f"{fuser}.dwconv.{{t}}"),
        _Row(f"{native_fuser}.layer_norm.{{t}}", f"{fuser}.norm.{{t}}"),
        _Row(f"{native_fuser}.pointwise_conv{{n}}.{{t}}", f"{fuser}.pwconv{{n}}.{{t}}"),
        # ConvNeXt layer scale: `gamma` in the original, `g_weight` in Sa2VA exports (dodges transformers' renaming).
        _Row(f"{native_fuser}.scale", f"{fuser}.{layer_scale_name}"),
        _Row("memory_encoder.projection.{t}", "memory_encoder.out_proj.{t}"),
        # Prompt encoder (point_embed and the Fourier matrix are special rules, see `sam2_rules`).
        *_same("prompt_encoder", "sam_prompt_encoder", "not_a_point_embed.weight", "no_mask_embed.weight"),
        # mask_downscaling = Sequential(conv, LN2d, GELU, conv, LN2d, GELU, conv).
        _Row("prompt_encoder.mask_embed.conv1.{t}", "sam_prompt_encoder.mask_downscaling.0.{t}"),
        _Row("prompt_encoder.mask_embed.layer_norm1.{t}", "sam_prompt_encoder.mask_downscaling.1.{t}"),
        _Row("prompt_encoder.mask_embed.conv2.{t}", "sam_prompt_encoder.mask_downscaling.3.{t}"),
        _Row("prompt_encoder.mask_embed.layer_norm2.{t}", "sam_prompt_encoder.mask_downscaling.4.{t}"),
        _Row("prompt_encoder.mask_embed.conv3.{t}", "sam_prompt_encoder.mask_downscaling.6.{t}"),
        # Mask decoder heads. output_upscaling = Sequential(convT, LN2d, GELU, convT, GELU).
        *_same("mask_decoder", "sam_mask_decoder", "iou_token.weight", "mask_tokens.weight", "obj_score_token.weight"),
        _Row("mask_decoder.upscale_conv1.{t}", "sam_mask_decoder.output_upscaling.0.{t}"),
        _Row("mask_decoder.upscale_layer_norm.{t}", "sam_mask_decoder.output_upscaling.1.{t}"),
        _Row("mask_decoder.upscale_conv2.{t}", "sam_mask_decoder.output_upscaling.3.{t}"),
        _Row("mask_decoder.conv_s{n}.{t}", "sam_mask_decoder.conv_s{n}.{t}"),
        *_feed_forward("mask_decoder.output_hypernetworks_mlps.{i}", "sam_mask_decoder.output_hypernetworks_mlps.{i}"),
        *_feed_forward("mask_decoder.iou_prediction_head", "sam_mask_decoder.iou_prediction_head"),
        *_feed_forward("mask_decoder.pred_obj_score_head", "sam_mask_decoder.pred_obj_score_head"),
        # Mask decoder two-way transformer.
        *_attention(f"{native_tw_layer}.self_attn", f"{tw_layer}.self_attn"),
        *_attention(f"{native_tw_layer}.cross_attn_token_to_image", f"{tw_layer}.cross_attn_token_to_image"),
        *_attention(f"{native_tw_layer}.cross_attn_image_to_token", f"{tw_layer}.cross_attn_image_to_token"),
        _Row(f"{native_tw_layer}.layer_norm{{n}}.{{t}}", f"{tw_layer}.norm{{n}}.{{t}}"),
        *_feed_forward(f"{native_tw_layer}.mlp", f"{tw_layer}.mlp"),
        *_attention(f"{native_two_way}.final_attn_token_to_image", f"{two_way}.final_attn_token_to_image"),
        _Row(f"{native_two_way}.layer_norm_final_attn.{{t}}", f"{two_way}.norm_final_attn.{{t}}"),
    )


# ----------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------


def original_sam2_name(
    native_name: str, native_names: Iterable[str], layer_scale_name: str = SA2VA_LAYER_SCALE_NAME
) -> str:
    """The original SAM2 name of one renamed native tensor (both without prefixes).

    Args:
        native_name: a `Sam2VideoModel` state-dict key, e.g. `vision_encoder.backbone.blocks.2.proj.weight`.
        native_names: all keys of that state dict (some original indices depend on how many siblings exist).
        layer_scale_name: original name of the memory-fuser layer scale (`g_weight` for Sa2VA, `gamma` for SAM2).

    Returns:
        The original key, e.g. `image_encoder.trunk.blocks.2.proj.weight`.

    Raises:
        Sa2VACheckpointError: if no row of the table matches `native_name` (including the two special cases, which
            are not plain renames and are handled by :func:`sam2_rules`).
    """
    official = _original_name(native_name, _NativeLayout(native_names), layer_scale_name)
    if official is None:
        raise Sa2VACheckpointError(f"No SAM2 checkpoint name is known for the native tensor {native_name!r}.")
    return official


def _original_name(native_name: str, layout: _NativeLayout, layer_scale_name: str) -> str | None:
    """The original name from the one matching row, or `None` when no row matches."""
    matches = [(row, m) for row in _rows(layer_scale_name) if (m := row.pattern.fullmatch(native_name))]
    if not matches:
        return None
    if len(matches) > 1:  # a bug of the table, not of the user's input: name the colliding rows
        rows = ", ".join(row.native for row, _ in matches)
        raise RuntimeError(f"Native SAM2 tensor {native_name!r} matches several name rows: {rows}.")
    row, match = matches[0]
    return row.official_name(match.groupdict(), layout)


def _point_embed_rule(native: str, official_prefix: str, num_point_embeddings: int) -> KeyRule:
    """Original `point_embeddings.{k}.weight` (each `(1, C)`) ↔ the rows of native `point_embed.weight` `(N, C)`."""

    def to_native(tensors: Tensors) -> Tensors:
        return [torch.cat(tensors, dim=0)]

    def to_official(tensors: Tensors) -> Tensors:
        (stacked,) = tensors
        if stacked.shape[0] != num_point_embeddings:
            raise Sa2VACheckpointError(
                f"{native} has {stacked.shape[0]} rows; expected {num_point_embeddings} point embeddings."
            )
        # Clones: row views would share storage, which safetensors refuses to save.
        return [row.clone() for row in stacked.split(1, dim=0)]

    official = tuple(official_prefix + _ORIGINAL_POINT_EMBED.format(k) for k in range(num_point_embeddings))
    return KeyRule(official, (native,), to_native, to_official)


def _fourier_matrix_rule(natives: tuple[str, ...], official_prefix: str) -> KeyRule:
    """The original's one Fourier matrix ↔ every native copy of it (prompt encoder first, then image-wide PE)."""

    def to_native(tensors: Tensors) -> Tensors:
        (matrix,) = tensors
        # Separate storage per copy, so the native state dict can be saved and each copy loaded independently.
        return [matrix] + [matrix.clone() for _ in natives[1:]]

    def to_official(tensors: Tensors) -> Tensors:
        # The copies are identical buffers (never trained); the prompt encoder's one is the original's role.
        return [tensors[0]]

    return KeyRule((official_prefix + _ORIGINAL_FOURIER_MATRIX,), natives, to_native, to_official)


def sam2_rules(
    native_keys: Iterable[str],
    native_prefix: str = NATIVE_PREFIX,
    official_prefix: str = OFFICIAL_PREFIX,
    *,
    num_point_embeddings: int = NUM_POINT_EMBEDDINGS,
    layer_scale_name: str = SA2VA_LAYER_SCALE_NAME,
) -> list[KeyRule]:
    """Rules that turn the SAM2 tensors of an official checkpoint into `Sam2VideoModel` tensors, and back.

    Every native key that starts with `native_prefix` is covered by exactly one rule; other keys are ignored (they
    belong to the MLLM or the projector). Rules come in the order of their first native key.

    Args:
        native_keys: keys of the native state dict, e.g. `Sa2VAModel.state_dict().keys()`.
        native_prefix: prefix of the `Sam2VideoModel` inside those keys (`""` for a bare `Sam2VideoModel`).
        official_prefix: prefix of the original SAM2 model in the checkpoint (`""` for `sam2_hiera_large.pt`).
        num_point_embeddings: rows of `prompt_encoder.point_embed.weight` (always 4 in SAM2).
        layer_scale_name: original name of the memory-fuser layer scale: `g_weight` in Sa2VA exports, `gamma` in the
            facebookresearch checkpoint.

    Returns:
        One `KeyRule` per tensor group: plain renames, plus the point-embedding rule (4 official → 1 native) and the
        Fourier-matrix rule (1 official → 2 native).

    Raises:
        Sa2VACheckpointError: naming every native key under `native_prefix` that has no known original name.
    """
    names = [key[len(native_prefix) :] for key in dict.fromkeys(native_keys) if key.startswith(native_prefix)]
    layout = _NativeLayout(names)
    fourier_copies = tuple(native_prefix + name for name in _NATIVE_FOURIER_COPIES if name in names)

    rules: list[KeyRule] = []
    unknown: list[str] = []
    for name in names:
        native = native_prefix + name
        if name in _NATIVE_FOURIER_COPIES:
            if native == fourier_copies[0]:  # one rule for all copies, placed at the first one
                rules.append(_fourier_matrix_rule(fourier_copies, official_prefix))
        elif name == _NATIVE_POINT_EMBED:
            rules.append(_point_embed_rule(native, official_prefix, num_point_embeddings))
        elif (official := _original_name(name, layout, layer_scale_name)) is not None:
            rules.append(rename(official_prefix + official, native))
        else:
            unknown.append(native)
    if unknown:
        raise Sa2VACheckpointError(
            f"{len(unknown)} SAM2 tensor(s) of the model have no known name in the official checkpoint: "
            + ", ".join(unknown[:10])
            + (", ..." if len(unknown) > 10 else "")
        )
    return rules


__all__ = [
    "NATIVE_PREFIX",
    "NUM_POINT_EMBEDDINGS",
    "OFFICIAL_PREFIX",
    "SA2VA_LAYER_SCALE_NAME",
    "original_sam2_name",
    "sam2_rules",
]
