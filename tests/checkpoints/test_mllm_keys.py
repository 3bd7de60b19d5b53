"""MLLM key rules and config mapping against tiny official fixtures written from the reference layout."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from sa2va.checkpoints.mllm_keys import (
    QWEN_LAYOUT,
    QWEN_LEGACY_LAYOUT,
    internvl_rules,
    qwen_rules,
    text_hidden_fcs_rules,
)
from sa2va.checkpoints.official_config import native_config_from_official, official_config_from_native
from sa2va.checkpoints.rules import KeyRule
from sa2va.configuration import Sa2VAConfig
from sa2va.errors import Sa2VACheckpointError
from sa2va.modeling.sa2va import Sa2VAModel
from sa2va.testing_official_mllm import (
    OFFICIAL_FAMILIES,
    TOKENIZER_FAMILY,
    official_mllm_config,
    official_mllm_state_dict,
)
from sa2va.testing_parts import build_tokenizer, tiny_sam2_config

_CACHE: dict[tuple, object] = {}


def _cached(key: tuple, build):
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def _ids(family: str) -> dict[str, int]:
    def build() -> dict[str, int]:
        tokenizer = build_tokenizer(TOKENIZER_FAMILY[family])
        return {
            "image": tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
            "seg": tokenizer.convert_tokens_to_ids("[SEG]"),
        }

    return _cached(("ids", family), build)


def _native_config(official: dict, family: str) -> Sa2VAConfig:
    ids = _ids(family)
    image_token_id = ids["image"] if family.startswith("internvl") else None
    return native_config_from_official(
        official, sam2_config=tiny_sam2_config(), seg_token_id=ids["seg"], image_token_id=image_token_id
    )


def _llm_arch(official: dict) -> str | None:
    return official["llm_config"]["architectures"][0] if "llm_config" in official else None


def _rules(config: Sa2VAConfig, native_keys: list[str], official: dict, official_keys=()) -> list[KeyRule]:
    if config.is_internvl:
        rules = internvl_rules(config, native_keys, _llm_arch(official))
    else:
        rules = qwen_rules(native_keys, official_keys)
    return rules + text_hidden_fcs_rules(native_keys)


def _to_native(rules: list[KeyRule], official_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        out.update(zip(rule.native, rule.to_native([official_sd[key] for key in rule.official]), strict=True))
    return out


def _to_official(rules: list[KeyRule], native_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        out.update(zip(rule.official, rule.to_official([native_sd[key] for key in rule.native]), strict=True))
    return out


class _Setup:
    """Official fixture, native config, a real tiny model and the rules of one family (built once per session)."""

    def __init__(self, family: str, official: dict | None = None):
        self.family = family
        self.official = official or official_mllm_config(family)
        self.config = _native_config(self.official, family)
        torch.manual_seed(0)
        self.model = Sa2VAModel(self.config).eval()
        self.native_keys = list(self.model.state_dict())
        self.official_sd = official_mllm_state_dict(self.official, torch.Generator().manual_seed(1))
        self.rules = _rules(self.config, self.native_keys, self.official, self.official_sd)


def _setup(family: str) -> _Setup:
    return _cached(("setup", family), lambda: _Setup(family))


def _internlm2_with_bias() -> _Setup:
    def build() -> _Setup:
        official = official_mllm_config("internvl_internlm2")
        official["llm_config"]["bias"] = True
        return _Setup("internvl_internlm2", official)

    return _cached(("setup", "internlm2-bias"), build)


@pytest.fixture(params=OFFICIAL_FAMILIES)
def setup(request) -> _Setup:
    return _setup(request.param)


# ------------------------------------------------------------------------------------------------ coverage


def test_rules_cover_every_native_key_once(setup: _Setup) -> None:
    covered = [key for rule in setup.rules for key in rule.native]
    assert len(covered) == len(set(covered)), "a native key is claimed by two rules"
    expected = {key for key in setup.native_keys if key.startswith(("mllm.", "text_hidden_fcs."))}
    assert set(covered) == expected


def test_rules_official_keys_equal_fixture(setup: _Setup) -> None:
    official = [key for rule in setup.rules for key in rule.official]
    assert len(official) == len(set(official))
    assert set(official) == set(setup.official_sd)


def test_converted_fixture_loads_into_native_model(setup: _Setup) -> None:
    native = _to_native(setup.rules, setup.official_sd)
    model = setup.model
    result = model.load_state_dict(native, strict=False)
    assert result.unexpected_keys == []
    assert all(key.startswith("sam2.") for key in result.missing_keys)
    state = model.state_dict()
    for key, tensor in native.items():
        assert torch.equal(state[key], tensor), key


def test_official_native_official_is_bit_identical(setup: _Setup) -> None:
    native = _to_native(setup.rules, setup.official_sd)
    back = _to_official(setup.rules, native)
    assert back.keys() == setup.official_sd.keys()
    for key, tensor in setup.official_sd.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key


def test_split_tensors_do_not_share_storage() -> None:
    """safetensors refuses to save tensors that share memory; q/k/v parts must own their storage."""
    setup = _setup("internvl_internlm2")
    native = _to_native(setup.rules, setup.official_sd)
    split = [key for rule in setup.rules if len(rule.native) > 1 for key in rule.native]
    assert split, "the fixture must have fused tensors"
    official_storages = {tensor.untyped_storage().data_ptr() for tensor in setup.official_sd.values()}
    storages = [native[key].untyped_storage().data_ptr() for key in split]
    assert len(set(storages)) == len(storages) and not official_storages & set(storages)


# ------------------------------------------------------------------------------------------------ fused tensors


def _internlm2_attention_reference(
    x: torch.Tensor,
    wqkv: torch.Tensor,
    bqkv: torch.Tensor | None,
    wo: torch.Tensor,
    bo: torch.Tensor | None,
    heads: int,
    kv_heads: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal InternLM2Attention without rotary, written from `modeling_internlm2.py`'s math."""
    batch, length, hidden = x.shape
    head_dim = hidden // heads
    groups = heads // kv_heads
    qkv = nn.functional.linear(x, wqkv, bqkv)
    qkv = qkv.reshape(batch, length, kv_heads, 2 + groups, head_dim)  # 'b q (h gs d) -> b q h gs d'
    q = qkv[..., :groups, :].reshape(batch, length, heads, head_dim)  # 'b q h gs d -> b q (h gs) d'
    k, v = qkv[..., -2, :], qkv[..., -1, :]
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    kt, vt = kt.repeat_interleave(groups, dim=1), vt.repeat_interleave(groups, dim=1)  # repeat_kv
    scores = qt @ kt.transpose(-1, -2) / math.sqrt(head_dim)
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    out = (weights @ vt).transpose(1, 2).reshape(batch, length, hidden)
    return q, k, v, nn.functional.linear(out, wo, bo)


@pytest.mark.parametrize("bias", [False, True])
def test_internlm2_wqkv_deinterleave_matches_internlm2_attention(bias: bool) -> None:
    setup = _internlm2_with_bias() if bias else _setup("internvl_internlm2")
    text = setup.config.text_config
    heads, kv_heads = text.num_attention_heads, text.num_key_value_heads
    assert heads // kv_heads > 1, "the fixture must have grouped heads for the interleave to matter"
    native = _to_native(setup.rules, setup.official_sd)
    official = "language_model.model.layers.1.attention."
    layer = "mllm.model.language_model.layers.1.self_attn."

    x = torch.randn(2, 5, text.hidden_size, generator=torch.Generator().manual_seed(3))
    q_ref, k_ref, v_ref, out_ref = _internlm2_attention_reference(
        x,
        setup.official_sd[official + "wqkv.weight"],
        setup.official_sd.get(official + "wqkv.bias"),
        setup.official_sd[official + "wo.weight"],
        setup.official_sd.get(official + "wo.bias"),
        heads,
        kv_heads,
    )
    head_dim = text.hidden_size // heads
    for name, ref, n in (("q", q_ref, heads), ("k", k_ref, kv_heads), ("v", v_ref, kv_heads)):
        projected = nn.functional.linear(
            x, native[layer + f"{name}_proj.weight"], native.get(layer + f"{name}_proj.bias")
        )
        torch.testing.assert_close(projected.reshape(2, 5, n, head_dim), ref, rtol=0, atol=1e-6)
    assert (layer + "q_proj.bias" in native) == bias and (layer + "o_proj.bias" in native) == bias

    # The whole causal attention of the native Llama layer (rotary off: cos 1, sin 0) equals InternLM2's.
    setup.model.load_state_dict(native, strict=False)
    attention = setup.model.mllm.model.language_model.layers[1].self_attn
    identity_rotary = (torch.ones(2, 5, head_dim), torch.zeros(2, 5, head_dim))
    with torch.no_grad():
        out, _ = attention(x, position_embeddings=identity_rotary, attention_mask=None)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _intern_vit_layer_reference(
    x: torch.Tensor, sd: dict[str, torch.Tensor], prefix: str, vision: dict
) -> torch.Tensor:
    """InternVisionEncoderLayer (naive attention) written from `modeling_intern_vit.py`'s math."""
    batch, length, c = x.shape
    heads, eps = vision["num_attention_heads"], vision["layer_norm_eps"]

    def norm(name: str, t: torch.Tensor) -> torch.Tensor:
        if vision["norm_type"] == "rms_norm":
            return _rms_norm(t, sd[prefix + name + ".weight"], eps)
        return nn.functional.layer_norm(t, (c,), sd[prefix + name + ".weight"], sd[prefix + name + ".bias"], eps)

    h = norm("norm1", x)
    qkv = nn.functional.linear(h, sd[prefix + "attn.qkv.weight"], sd.get(prefix + "attn.qkv.bias"))
    q, k, v = qkv.reshape(batch, length, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
    if vision["qk_normalization"]:
        q = _rms_norm(q.transpose(1, 2).flatten(-2), sd[prefix + "attn.q_norm.weight"], eps)
        k = _rms_norm(k.transpose(1, 2).flatten(-2), sd[prefix + "attn.k_norm.weight"], eps)
        q, k = (t.view(batch, length, heads, c // heads).transpose(1, 2) for t in (q, k))
    weights = torch.softmax((q * (c // heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
    attn = (weights @ v).transpose(1, 2).reshape(batch, length, c)
    attn = nn.functional.linear(attn, sd[prefix + "attn.proj.weight"], sd[prefix + "attn.proj.bias"])
    x = x + attn * sd[prefix + "ls1"]
    h = nn.functional.linear(norm("norm2", x), sd[prefix + "mlp.fc1.weight"], sd[prefix + "mlp.fc1.bias"])
    h = nn.functional.linear(nn.functional.gelu(h), sd[prefix + "mlp.fc2.weight"], sd[prefix + "mlp.fc2.bias"])
    return x + h * sd[prefix + "ls2"]


@pytest.mark.parametrize("family", ["internvl_qwen2", "internvl_internlm2"])  # ViT-300M style, ViT-6B style
def test_intern_vit_qkv_split_matches_internvit_layer(family: str) -> None:
    setup = _setup(family)
    setup.model.load_state_dict(_to_native(setup.rules, setup.official_sd), strict=False)
    vision = setup.official["vision_config"]
    x = torch.randn(2, 7, vision["hidden_size"], generator=torch.Generator().manual_seed(4))
    expected = _intern_vit_layer_reference(x, setup.official_sd, "vision_model.encoder.layers.1.", vision)
    with torch.no_grad():
        out = setup.model.mllm.model.vision_tower.encoder.layer[1](x)
    out = out[0] if isinstance(out, tuple) else out
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ Qwen layouts


def _legacy_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The pre-4.52 layout: `model.visual.*`, LLM at `model.model.*`."""
    out = {}
    for key, tensor in sd.items():
        for new, old in (
            (QWEN_LAYOUT.visual, QWEN_LEGACY_LAYOUT.visual),
            (QWEN_LAYOUT.language_model, QWEN_LEGACY_LAYOUT.language_model),
        ):
            if key.startswith(new):
                key = old + key.removeprefix(new)
                break
        out[key] = tensor
    return out


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_qwen_legacy_layout_is_accepted_and_export_writes_current(family: str) -> None:
    setup = _setup(family)
    legacy_sd = _legacy_keys(setup.official_sd)
    assert any(key.startswith("model.visual.") for key in legacy_sd)
    rules = _rules(setup.config, setup.native_keys, setup.official, legacy_sd)
    assert {key for rule in rules for key in rule.official} == set(legacy_sd)
    from_legacy = _to_native(rules, legacy_sd)
    from_current = _to_native(setup.rules, setup.official_sd)
    assert from_legacy.keys() == from_current.keys()
    assert all(torch.equal(from_legacy[key], from_current[key]) for key in from_current)

    export_rules = qwen_rules(setup.native_keys) + text_hidden_fcs_rules(setup.native_keys)
    assert set(_to_official(export_rules, from_legacy)) == set(setup.official_sd)

    with pytest.raises(Sa2VACheckpointError, match="mix"):
        qwen_rules(setup.native_keys, [*setup.official_sd, *legacy_sd])


# ------------------------------------------------------------------------------------------------ errors


def test_unknown_native_key_is_named() -> None:
    setup = _setup("internvl_qwen2")
    stray = "mllm.model.vision_tower.layernorm.weight"
    with pytest.raises(Sa2VACheckpointError, match="vision_tower.layernorm.weight"):
        internvl_rules(setup.config, [*setup.native_keys, stray], "Qwen2ForCausalLM")
    with pytest.raises(Sa2VACheckpointError, match="mllm.model.something"):
        qwen_rules(["mllm.model.something.weight"])
    with pytest.raises(Sa2VACheckpointError, match="text_hidden_fcs.1.weight"):
        text_hidden_fcs_rules(["text_hidden_fcs.1.weight"])
    with pytest.raises(Sa2VACheckpointError, match="Phi3ForCausalLM"):
        internvl_rules(setup.config, setup.native_keys, "Phi3ForCausalLM")


def test_incomplete_qkv_group_and_bad_wqkv_shape_raise() -> None:
    setup = _setup("internvl_internlm2")
    without_k = [
        key for key in setup.native_keys if key != "mllm.model.language_model.layers.0.self_attn.k_proj.weight"
    ]
    with pytest.raises(Sa2VACheckpointError, match="k_proj.weight"):
        internvl_rules(setup.config, without_k, "InternLM2ForCausalLM")
    rule = next(r for r in setup.rules if r.official == ("language_model.model.layers.0.attention.wqkv.weight",))
    with pytest.raises(Sa2VACheckpointError, match="wqkv.weight"):
        rule.to_native([torch.zeros(7, setup.config.hidden_size)])


# ------------------------------------------------------------------------------------------------ configs


def _assert_contains(original, exported, path: str = "") -> None:
    """Every field of `original` comes back in `exported` with the same value (dicts compared recursively)."""
    if isinstance(original, dict):
        assert isinstance(exported, dict), path
        for key, value in original.items():
            assert key in exported, f"{path}{key} missing"
            _assert_contains(value, exported[key], f"{path}{key}.")
    else:
        assert original == exported, f"{path}: {original!r} != {exported!r}"


# Fields the reference never reads that we do not keep.
_DROPPED = {"internvl_internlm2": ("llm_config", "attn_implementation")}


def test_config_round_trip(setup: _Setup) -> None:
    original = copy.deepcopy(setup.official)
    if setup.family in _DROPPED:
        section, field = _DROPPED[setup.family]
        del original[section][field]
    # The official LLM class is recorded on import, so InternLM2 (loaded as Llama) is written back as InternLM2.
    assert setup.config.official_llm_architecture == _llm_arch(setup.official)
    exported = json.loads(json.dumps(official_config_from_native(setup.config)))  # and JSON-serialisable
    _assert_contains(original, exported)
    again = _native_config(exported, setup.family)
    assert again.mllm_config.to_dict() == setup.config.mllm_config.to_dict()
    assert again.template == setup.config.template


def test_internvl_config_mapping() -> None:
    config = _setup("internvl_internlm2").config
    mllm, vision, text = config.mllm_config, config.mllm_config.vision_config, config.text_config
    assert (mllm.image_token_id, mllm.image_seq_length, mllm.vision_feature_layer) == (
        _ids("internvl_internlm2")["image"],
        256,
        -1,
    )
    assert (vision.use_qk_norm, vision.attention_bias, vision.norm_type, vision.image_size) == (
        True,
        False,
        "rms_norm",
        (448, 448),
    )
    assert (text.model_type, text.attention_bias, text.mlp_bias, text.rms_norm_eps) == ("llama", False, False, 1e-5)
    assert text.rope_parameters == {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000000.0}
    assert config.template == "internlm2_chat" and not mllm.tie_word_embeddings
    # An explicit llm_arch wins over the recorded one: the same Llama weights described as a Llama LLM.
    llama = official_config_from_native(config, llm_arch="LlamaForCausalLM")["llm_config"]
    assert (llama["architectures"], llama["model_type"], llama["attention_bias"]) == (
        ["LlamaForCausalLM"],
        "llama",
        False,
    )


def test_internvl_config_errors() -> None:
    official = official_mllm_config("internvl_qwen2")
    with pytest.raises(Sa2VACheckpointError, match="image_token_id"):
        native_config_from_official(official, sam2_config=tiny_sam2_config())
    for ps_version in ("v1", None):
        changed = copy.deepcopy(official)
        if ps_version is None:
            del changed["ps_version"]  # the reference default is v1
        else:
            changed["ps_version"] = ps_version
        with pytest.raises(Sa2VACheckpointError, match="ps_version"):
            native_config_from_official(changed, sam2_config=tiny_sam2_config(), image_token_id=1)
    with pytest.raises(Sa2VACheckpointError, match="model_type"):
        native_config_from_official({**official, "model_type": "internvl_chat"}, image_token_id=1)


def test_qwen_config_prefers_text_config_over_stale_top_level_copies() -> None:
    official = official_mllm_config("qwen2_5_vl")
    official.update(vocab_size=151936, hidden_size=999, rope_theta=1.0)  # what 4.5x may leave at the top level
    config = _native_config(official, "qwen2_5_vl")
    assert config.family == "qwen2_5_vl" and config.template is None
    text = config.text_config
    assert (text.vocab_size, text.hidden_size) == (official["text_config"]["vocab_size"], 64)
    assert text.rope_parameters == {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1000000.0}
    assert not hasattr(config.mllm_config, "vocab_size") and not config.mllm_config.tie_word_embeddings
    assert _native_config(official_mllm_config("qwen3_vl"), "qwen3_vl").family == "qwen3_vl"


def test_qwen_config_without_text_config_is_accepted() -> None:
    """transformers < 4.52 wrote Qwen2.5-VL's text fields at the top level (rope type `mrope`)."""
    official = official_mllm_config("qwen2_5_vl")
    text = official.pop("text_config")
    del text["model_type"]
    text["rope_scaling"] = {"type": "mrope", "mrope_section": [2, 3, 3]}
    text_config = _native_config({**official, **text}, "qwen2_5_vl").text_config
    assert (text_config.vocab_size, text_config.hidden_size, text_config.num_hidden_layers) == (
        text["vocab_size"],
        64,
        2,
    )
    assert text_config.rope_parameters == {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1000000.0}
