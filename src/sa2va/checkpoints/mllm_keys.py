"""Key rules for the MLLM half of an official Sa2VA checkpoint (REFERENCE_SPEC §6.2–§6.4).

Official InternVL-based checkpoints store the reference's own module tree: InternViT under `vision_model.`, the
projector as `mlp1.{0,1,3}` and the LLM under `language_model.` (Qwen2 / Llama names, or InternLM2 names with a fused,
head-interleaved `wqkv`). Our `Sa2VAModel.mllm` is a transformers `InternVLForConditionalGeneration`, so every name
changes and two fused projections are split.

Official Qwen-based checkpoints store a stock `Qwen2_5_VLForConditionalGeneration` / `Qwen3VLForConditionalGeneration`
under the wrapper attribute `model.`, so only prefixes change.

The InternVL mapping is written as tables of key templates: `{i}` stands for a layer index and `{p}` for `weight` or
`bias`. A rename row ties one native template to one official template; a fused row ties one official template to
the native q/k/v templates it is split into.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from sa2va.checkpoints.rules import KeyRule, Tensors, rename
from sa2va.configuration import Sa2VAConfig
from sa2va.errors import Sa2VACheckpointError

# `llm_config.architectures[0]` values of the official InternVL-side configs that this module can map.
INTERNVL_LLM_ARCHS: tuple[str, ...] = ("Qwen2ForCausalLM", "LlamaForCausalLM", "InternLM2ForCausalLM")

_PLACEHOLDERS: dict[str, str] = {"i": r"\d+", "p": r"weight|bias"}

Converter = Callable[[Tensors], Tensors]


def _compile(template: str) -> re.Pattern[str]:
    """A full-match regex for a key template; `{i}` and `{p}` become named groups."""
    pattern = re.escape(template)
    for name, body in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{body})")
    return re.compile(pattern)


@dataclass(frozen=True)
class _Rename:
    """One native key template ↔ one official key template, tensor unchanged."""

    native: str
    official: str


@dataclass(frozen=True)
class _Fused:
    """One official fused projection ↔ several native projections (in the order `split` returns them).

    `split(official_key)` returns `(to_native, to_official)` for that concrete key, so converters can name the key
    in their errors.
    """

    official: str
    native: tuple[str, ...]
    split: Callable[[str], tuple[Converter, Converter]]


_Row = _Rename | _Fused


# ------------------------------------------------------------------------------------------------ tensor converters


def _vit_qkv_split(hidden_size: int) -> Callable[[str], tuple[Converter, Converter]]:
    """InternViT `attn.qkv` rows are `[q; k; v]`, each `hidden_size` rows (`modeling_intern_vit.py` reshapes the
    output as `(3, heads, head_dim)`), so the split is three equal row blocks."""

    def make(key: str) -> tuple[Converter, Converter]:
        def to_native(tensors: Tensors) -> Tensors:
            (fused,) = tensors
            if fused.shape[0] != 3 * hidden_size:
                raise Sa2VACheckpointError(
                    f"{key}: expected {3 * hidden_size} rows (3 x vision hidden_size {hidden_size}), "
                    f"got shape {tuple(fused.shape)}."
                )
            # clone: the three parts must not share storage (safetensors refuses shared tensors).
            return [part.clone() for part in fused.split(hidden_size, dim=0)]

        def to_official(tensors: Tensors) -> Tensors:
            return [torch.cat(list(tensors), dim=0)]

        return to_native, to_official

    return make


def _internlm2_wqkv_split(
    num_heads: int, num_kv_heads: int, head_dim: int
) -> Callable[[str], tuple[Converter, Converter]]:
    """InternLM2's `wqkv` rows are ordered `(kv_head, slot, head_dim)` with `groups + 2` slots per KV head: the
    `groups` query heads that share that KV head, then its key, then its value (`modeling_internlm2.py` rearranges
    `(h gs d) -> h gs d` with `gs = 2 + groups`). Query head `h * groups + g` is slot `g` of KV head `h`, which is
    exactly the order Llama's `q_proj` uses (query head `j` reads KV head `j // groups`)."""
    if num_heads % num_kv_heads:
        raise Sa2VACheckpointError(
            f"InternLM2 attention needs num_attention_heads ({num_heads}) divisible by num_key_value_heads "
            f"({num_kv_heads})."
        )
    groups = num_heads // num_kv_heads
    slots = groups + 2
    rows = (num_heads + 2 * num_kv_heads) * head_dim

    def make(key: str) -> tuple[Converter, Converter]:
        def to_native(tensors: Tensors) -> Tensors:
            (fused,) = tensors
            if fused.shape[0] != rows:
                raise Sa2VACheckpointError(
                    f"{key}: expected {rows} rows ((heads {num_heads} + 2 x kv heads {num_kv_heads}) x head_dim "
                    f"{head_dim}), got shape {tuple(fused.shape)}."
                )
            rest = fused.shape[1:]
            grouped = fused.reshape(num_kv_heads, slots, head_dim, *rest)
            q = grouped[:, :groups].reshape(num_heads * head_dim, *rest)
            k = grouped[:, groups].reshape(num_kv_heads * head_dim, *rest)
            v = grouped[:, groups + 1].reshape(num_kv_heads * head_dim, *rest)
            return [q.clone(), k.clone(), v.clone()]

        def to_official(tensors: Tensors) -> Tensors:
            q, k, v = tensors
            rest = q.shape[1:]
            grouped = torch.cat(
                [
                    q.reshape(num_kv_heads, groups, head_dim, *rest),
                    k.reshape(num_kv_heads, 1, head_dim, *rest),
                    v.reshape(num_kv_heads, 1, head_dim, *rest),
                ],
                dim=1,
            )
            return [grouped.reshape(rows, *rest)]

        return to_native, to_official

    return make


# ------------------------------------------------------------------------------------------------ InternVL tables

_VIT = "mllm.model.vision_tower."
_VIT_OFFICIAL = "vision_model."
_LLM = "mllm.model.language_model."
_LLM_OFFICIAL = "language_model.model."


def _vision_rows(hidden_size: int) -> list[_Row]:
    """InternViT (`modeling_intern_vit.py`) ↔ transformers `InternVLVisionModel`."""
    layer, official_layer = _VIT + "encoder.layer.{i}.", _VIT_OFFICIAL + "encoder.layers.{i}."
    per_layer = [
        ("layernorm_before.{p}", "norm1.{p}"),
        ("layernorm_after.{p}", "norm2.{p}"),
        ("attention.projection_layer.{p}", "attn.proj.{p}"),
        ("attention.q_norm.weight", "attn.q_norm.weight"),  # InternViT-6B only (qk_normalization)
        ("attention.k_norm.weight", "attn.k_norm.weight"),
        ("lambda_1", "ls1"),  # layer scales
        ("lambda_2", "ls2"),
        ("mlp.fc1.{p}", "mlp.fc1.{p}"),
        ("mlp.fc2.{p}", "mlp.fc2.{p}"),
    ]
    return [
        _Rename(_VIT + "embeddings.cls_token", _VIT_OFFICIAL + "embeddings.class_embedding"),
        _Rename(_VIT + "embeddings.position_embeddings", _VIT_OFFICIAL + "embeddings.position_embedding"),
        _Rename(_VIT + "embeddings.patch_embeddings.projection.{p}", _VIT_OFFICIAL + "embeddings.patch_embedding.{p}"),
        *(_Rename(layer + native, official_layer + official) for native, official in per_layer),
        _Fused(
            official_layer + "attn.qkv.{p}",
            tuple(layer + f"attention.{name}_proj.{{p}}" for name in ("q", "k", "v")),
            _vit_qkv_split(hidden_size),
        ),
    ]


def _projector_rows() -> list[_Row]:
    """`mlp1 = Sequential(LayerNorm, Linear, GELU, Linear)` ↔ `InternVLMultiModalProjector` (index 2 is the GELU)."""
    native = "mllm.model.multi_modal_projector."
    return [
        _Rename(native + "layer_norm.{p}", "mlp1.0.{p}"),
        _Rename(native + "linear_1.{p}", "mlp1.1.{p}"),
        _Rename(native + "linear_2.{p}", "mlp1.3.{p}"),
    ]


def _llama_rows() -> list[_Row]:
    """Qwen2 / Llama LLM: the official names are transformers' own, only the prefix moves."""
    same = [
        "embed_tokens.weight",
        "norm.weight",
        *(f"layers.{{i}}.self_attn.{name}_proj.{{p}}" for name in ("q", "k", "v", "o")),
        *(f"layers.{{i}}.mlp.{name}_proj.{{p}}" for name in ("gate", "up", "down")),
        "layers.{i}.input_layernorm.weight",
        "layers.{i}.post_attention_layernorm.weight",
    ]
    return [
        *(_Rename(_LLM + name, _LLM_OFFICIAL + name) for name in same),
        _Rename("mllm.lm_head.weight", "language_model.lm_head.weight"),
    ]


def _internlm2_rows(config: Sa2VAConfig) -> list[_Row]:
    """InternLM2 (`modeling_internlm2.py`) ↔ transformers Llama (the text model we load InternLM2 weights into)."""
    text = config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    layer, official_layer = _LLM + "layers.{i}.", _LLM_OFFICIAL + "layers.{i}."
    per_layer = [
        ("self_attn.o_proj.{p}", "attention.wo.{p}"),
        ("mlp.gate_proj.weight", "feed_forward.w1.weight"),
        ("mlp.down_proj.weight", "feed_forward.w2.weight"),
        ("mlp.up_proj.weight", "feed_forward.w3.weight"),
        ("input_layernorm.weight", "attention_norm.weight"),
        ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ]
    return [
        _Rename(_LLM + "embed_tokens.weight", _LLM_OFFICIAL + "tok_embeddings.weight"),
        _Rename(_LLM + "norm.weight", _LLM_OFFICIAL + "norm.weight"),
        *(_Rename(layer + native, official_layer + official) for native, official in per_layer),
        _Fused(
            official_layer + "attention.wqkv.{p}",
            tuple(layer + f"self_attn.{name}_proj.{{p}}" for name in ("q", "k", "v")),
            _internlm2_wqkv_split(text.num_attention_heads, text.num_key_value_heads, head_dim),
        ),
        _Rename("mllm.lm_head.weight", "language_model.output.weight"),
    ]


# ------------------------------------------------------------------------------------------------ table matching


def _rules_from_rows(rows: Sequence[_Row], native_keys: Sequence[str], what: str) -> list[KeyRule]:
    """Match every native key against the rows; each key must match exactly one row, once.

    Args:
        rows: the rename and fused rows of one checkpoint kind.
        native_keys: the native keys to cover (already restricted to the part these rows describe).
        what: the checkpoint kind, for error messages.
    """
    compiled: list[tuple[re.Pattern[str], _Row, int]] = []
    for row in rows:
        natives = (row.native,) if isinstance(row, _Rename) else row.native
        compiled += [(_compile(template), row, index) for index, template in enumerate(natives)]

    available = set(native_keys)
    claimed: set[str] = set()
    rules: list[KeyRule] = []
    for key in native_keys:
        if key in claimed:  # a q/k/v already taken by its fused group
            continue
        matches = [(match, row) for pattern, row, _ in compiled if (match := pattern.fullmatch(key))]
        if not matches:
            raise Sa2VACheckpointError(
                f"No {what} checkpoint rule for native key {key!r}; the official layout has no counterpart for it "
                "(was the model built from a config this converter does not know?)."
            )
        if len(matches) > 1:  # a table bug, not a user error, but say what clashed
            raise Sa2VACheckpointError(f"Native key {key!r} matches several {what} rules: {[m[1] for m in matches]}.")
        match, row = matches[0]
        fields = match.groupdict()
        if isinstance(row, _Rename):
            rules.append(rename(row.official.format(**fields), key))
            claimed.add(key)
            continue
        members = tuple(template.format(**fields) for template in row.native)
        missing = [member for member in members if member not in available]
        if missing:
            raise Sa2VACheckpointError(
                f"Native key {key!r} is part of the fused official tensor {row.official.format(**fields)!r}, "
                f"but the native model lacks {missing}; expected all of {list(members)}."
            )
        official = row.official.format(**fields)
        to_native, to_official = row.split(official)
        rules.append(KeyRule((official,), members, to_native, to_official))
        claimed.update(members)
    return rules


def _mllm_keys(native_keys: Iterable[str]) -> list[str]:
    return [key for key in native_keys if key.startswith("mllm.")]


# ------------------------------------------------------------------------------------------------ public API


def internvl_rules(config: Sa2VAConfig, native_keys: Iterable[str], llm_arch: str) -> list[KeyRule]:
    """Rules for the `mllm.` keys of an InternVL-based model (Sa2VA-1B/4B/8B/26B, Sa2VA-InternVL3-*).

    Args:
        config: the native config (its text config gives InternLM2's head geometry for the `wqkv` split).
        native_keys: keys of `Sa2VAModel.state_dict()`; keys outside `mllm.` are ignored.
        llm_arch: the official `llm_config.architectures[0]`: `Qwen2ForCausalLM`, `LlamaForCausalLM` or
            `InternLM2ForCausalLM`.

    Returns:
        One rule per official tensor; together they cover every native `mllm.` key exactly once.

    Raises:
        Sa2VACheckpointError: unknown `llm_arch`, a native key without a counterpart, or an incomplete q/k/v group.
    """
    if not config.is_internvl:
        raise Sa2VACheckpointError(f"internvl_rules needs an InternVL config; got MLLM family {config.family!r}.")
    if llm_arch not in INTERNVL_LLM_ARCHS:
        raise Sa2VACheckpointError(
            f"Unsupported official llm_config.architectures[0] {llm_arch!r}; expected one of "
            f"{', '.join(INTERNVL_LLM_ARCHS)}."
        )
    if llm_arch == "InternLM2ForCausalLM" and config.text_config.model_type != "llama":
        raise Sa2VACheckpointError(
            f"InternLM2 weights load into a Llama text model; the config's text model is "
            f"{config.text_config.model_type!r}."
        )
    vision_hidden = config.mllm_config.vision_config.hidden_size
    llm_rows = _internlm2_rows(config) if llm_arch == "InternLM2ForCausalLM" else _llama_rows()
    rows = [*_vision_rows(vision_hidden), *_projector_rows(), *llm_rows]
    return _rules_from_rows(rows, _mllm_keys(native_keys), f"InternVL ({llm_arch})")


@dataclass(frozen=True)
class QwenLayout:
    """Where an official Qwen-based checkpoint keeps the three parts of the stock model."""

    name: str
    visual: str
    language_model: str
    lm_head: str


# transformers >= 4.52 (Qwen2_5_VLForConditionalGeneration.model = Qwen2_5_VLModel(visual, language_model)) under
# Sa2VA's wrapper attribute `model`; Qwen3-VL exists only in this layout.
QWEN_LAYOUT = QwenLayout("current", "model.model.visual.", "model.model.language_model.", "model.lm_head.weight")
# transformers < 4.52 (Qwen2_5_VLForConditionalGeneration had `visual`, `model` = the LLM, `lm_head`) under `model`.
QWEN_LEGACY_LAYOUT = QwenLayout("pre-4.52", "model.visual.", "model.model.", "model.lm_head.weight")

_NATIVE_QWEN = QwenLayout("native", "mllm.model.visual.", "mllm.model.language_model.", "mllm.lm_head.weight")


def detect_qwen_layout(official_keys: Iterable[str]) -> QwenLayout:
    """Which layout the official keys use; no keys (export) means the current one.

    Raises:
        Sa2VACheckpointError: the keys mix both layouts.
    """
    current = legacy = False
    for key in official_keys:
        if key.startswith((QWEN_LAYOUT.visual, QWEN_LAYOUT.language_model)):
            current = True
        elif key.startswith(QWEN_LEGACY_LAYOUT.visual):
            legacy = True
        # A legacy LLM key `model.model.layers...` says nothing alone: the current layout shares `model.model.`.
    if current and legacy:
        raise Sa2VACheckpointError(
            f"Official Qwen keys mix the current layout ({QWEN_LAYOUT.visual}*) and the pre-4.52 layout "
            f"({QWEN_LEGACY_LAYOUT.visual}*)."
        )
    return QWEN_LEGACY_LAYOUT if legacy else QWEN_LAYOUT


def qwen_rules(native_keys: Iterable[str], official_keys: Iterable[str] = ()) -> list[KeyRule]:
    """Rules for the `mllm.` keys of a Qwen2.5-VL / Qwen3-VL based model (prefix renames only).

    Args:
        native_keys: keys of `Sa2VAModel.state_dict()`; keys outside `mllm.` are ignored.
        official_keys: keys of the official checkpoint, used only to detect its layout (current, or the pre-4.52
            `model.visual.*` + `model.model.*`). Leave empty when exporting: export always writes the current layout.

    Raises:
        Sa2VACheckpointError: a native `mllm.` key outside the visual tower, the language model and `lm_head`, or
            official keys that mix layouts.
    """
    layout = detect_qwen_layout(official_keys)
    rules: list[KeyRule] = []
    for key in _mllm_keys(native_keys):
        if key == _NATIVE_QWEN.lm_head:
            rules.append(rename(layout.lm_head, key))
        elif key.startswith(_NATIVE_QWEN.visual):
            rules.append(rename(layout.visual + key.removeprefix(_NATIVE_QWEN.visual), key))
        elif key.startswith(_NATIVE_QWEN.language_model):
            rules.append(rename(layout.language_model + key.removeprefix(_NATIVE_QWEN.language_model), key))
        else:
            raise Sa2VACheckpointError(
                f"No Qwen checkpoint rule for native key {key!r}; expected it under {_NATIVE_QWEN.visual}, "
                f"{_NATIVE_QWEN.language_model} or to be {_NATIVE_QWEN.lm_head}."
            )
    return rules


_TEXT_HIDDEN_FCS = re.compile(r"text_hidden_fcs\.(0|2)\.(weight|bias)")


def text_hidden_fcs_rules(native_keys: Iterable[str]) -> list[KeyRule]:
    """`text_hidden_fcs.{0,2}.{weight,bias}`: same names on both sides (keys outside `text_hidden_fcs.` ignored).

    Raises:
        Sa2VACheckpointError: any other `text_hidden_fcs.` key.
    """
    rules: list[KeyRule] = []
    for key in native_keys:
        if not key.startswith("text_hidden_fcs."):
            continue
        if not _TEXT_HIDDEN_FCS.fullmatch(key):
            raise Sa2VACheckpointError(
                f"Unexpected native key {key!r}; text_hidden_fcs has only Linear layers 0 and 2 (weight, bias)."
            )
        rules.append(rename(key, key))
    return rules


__all__ = [
    "INTERNVL_LLM_ARCHS",
    "QWEN_LAYOUT",
    "QWEN_LEGACY_LAYOUT",
    "QwenLayout",
    "detect_qwen_layout",
    "internvl_rules",
    "qwen_rules",
    "text_hidden_fcs_rules",
]
