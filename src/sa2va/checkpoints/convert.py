"""Official Sa2VA checkpoints (ByteDance's Hub layout) into `Sa2VAModel`, and back.

Loading builds the model with uninitialised weights, then fills every parameter from the files one conversion rule
at a time, so peak memory is one copy of the weights plus the largest rule's tensors. Every tensor of the files must
be used and every parameter set, or `Sa2VACheckpointError` names what is missing or left over.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedConfig
from transformers.initialization import no_init_weights

from sa2va.checkpoints.mllm_keys import internvl_rules, qwen_rules, text_hidden_fcs_rules
from sa2va.checkpoints.official_config import native_config_from_official, official_config_from_native
from sa2va.checkpoints.rules import KeyRule
from sa2va.checkpoints.safe_io import CheckpointReader, atomic_folder, write_safetensors
from sa2va.checkpoints.sam2_keys import sam2_rules
from sa2va.configuration import Sa2VAConfig, resolve_sam2_config
from sa2va.errors import Sa2VACheckpointError
from sa2va.processing.processor import Sa2VAProcessor

logger = logging.getLogger(__name__)

OFFICIAL_MODEL_TYPE = "sa2va_chat"
# Written next to an exported official checkpoint: the official config does not record its SAM2 (the reference
# hard-codes hiera-L), so a checkpoint with another SAM2 carries it here for loaders that look.
SAM2_SIDE_FILE = "sa2va_sam2_config.json"
SAM2_PREFIX = "grounding_encoder.sam2_model."


def read_config_json(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise Sa2VACheckpointError(f"{folder} has no config.json; is it a checkpoint folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise Sa2VACheckpointError(f"{path} is not valid JSON: {error}") from error


def is_official_checkpoint(folder: str | os.PathLike) -> bool:
    """True for folders in the reference's layout (`config.json` with `model_type: sa2va_chat`)."""
    path = Path(folder) / "config.json"
    return path.exists() and read_config_json(folder).get("model_type") == OFFICIAL_MODEL_TYPE


def default_llm_architecture(config: Sa2VAConfig) -> str:
    """The official LLM class of an InternVL-based config."""
    if config.official_llm_architecture:
        return config.official_llm_architecture
    return "LlamaForCausalLM" if config.text_config.model_type == "llama" else "Qwen2ForCausalLM"


def conversion_rules(config: Sa2VAConfig, native_keys: list[str], official_keys: list[str]) -> list[KeyRule]:
    """All rules of a model: MLLM, `text_hidden_fcs` and SAM2."""
    mllm_keys = [k for k in native_keys if k.startswith("mllm.")]
    if config.is_internvl:
        rules = internvl_rules(config, mllm_keys, default_llm_architecture(config))
    else:
        rules = qwen_rules(mllm_keys, official_keys)
    rules += text_hidden_fcs_rules([k for k in native_keys if k.startswith("text_hidden_fcs.")])
    rules += sam2_rules([k for k in native_keys if k.startswith("sam2.")])
    return rules


def load_official(
    folder: str | os.PathLike,
    dtype: torch.dtype | None = None,
    sam2_config: PreTrainedConfig | dict | None = None,
    allow_pickle: bool = False,
    progress: bool = True,
):
    """Build a `Sa2VAModel` from an official checkpoint folder.

    Args:
        folder: the checkpoint folder (config.json, safetensors, tokenizer / processor files).
        dtype: weights dtype (default float32).
        sam2_config: the SAM2 of the checkpoint when it is not v1 hiera-L: a transformers `Sam2VideoConfig` or a
            dict of original SAM2 image-encoder parameters (see `sa2va.configuration.sam2_config_from_original`).
            Without it, a side file written by :func:`export_official` is used if present, else hiera-L.
        allow_pickle: accept `pytorch_model*.bin` files.
        progress: show a progress bar.

    Raises:
        Sa2VACheckpointError: unreadable files, tensors missing or left over, or shapes that do not fit.
    """
    from sa2va.modeling.sa2va import Sa2VAModel  # the model imports this module for from_pretrained

    folder = Path(folder)
    official = read_config_json(folder)
    if sam2_config is None and (folder / SAM2_SIDE_FILE).exists():
        sam2_config = json.loads((folder / SAM2_SIDE_FILE).read_text())
        sam2_config = resolve_sam2_config(_sam2_config_from_dict(sam2_config))
    sam2_config = resolve_sam2_config(sam2_config)
    processor_config = Sa2VAConfig(mllm_config=_mllm_probe(official), sam2_config=sam2_config)
    processor = Sa2VAProcessor.from_pretrained(folder, processor_config)
    tokenizer = processor.tokenizer
    image_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>") if "llm_config" in official else None
    config = native_config_from_official(
        official, sam2_config=sam2_config, seg_token_id=processor.seg_token_id, image_token_id=image_token_id
    )
    if "llm_config" in official:
        config.official_llm_architecture = (official["llm_config"].get("architectures") or [None])[0]
    processor.config = config
    reader = CheckpointReader(folder, allow_pickle=allow_pickle)
    dtype = dtype or torch.float32
    with no_init_weights():
        model = Sa2VAModel._from_config(config, dtype=dtype)
    fill_from_rules(model, reader, conversion_rules(config, list(model.state_dict()), reader.keys()), progress)
    model.attach_processor(processor)
    return model.eval()


def check_shapes(state: dict[str, torch.Tensor], reader: CheckpointReader, rules: list[KeyRule]) -> None:
    """Compare every file tensor's shape with what the model expects, before reading any data.

    Expected official shapes come from running each rule's `to_official` on meta tensors of the native shapes.

    Raises:
        Sa2VACheckpointError: naming the first mismatching key and both shapes (for SAM2, with the `sam2_config` fix).
    """
    for rule in rules:
        if not all(k in reader for k in rule.official):
            continue  # reported by the accounting
        metas = [torch.empty(state[k].shape, device="meta") for k in rule.native]
        for key, expected in zip(rule.official, rule.to_official(metas), strict=True):
            found = reader.shape(key)
            if tuple(found) != tuple(expected.shape):
                hint = ""
                if key.startswith(SAM2_PREFIX):
                    hint = (
                        " The checkpoint's SAM2 is not the assumed configuration (SAM2 v1 hiera-L unless told "
                        "otherwise): pass sam2_config=... (a transformers Sam2VideoConfig, or a dict of original SAM2 "
                        "parameters such as {'embed_dim': 96, 'num_heads': 1, 'stages': [1, 2, 7, 2], ...})."
                    )
                raise Sa2VACheckpointError(
                    f"shape mismatch for {key!r} (→ {', '.join(rule.native)}): the checkpoint has {tuple(found)}, "
                    f"the model expects {tuple(expected.shape)}.{hint}"
                )


def fill_from_rules(model: torch.nn.Module, reader: CheckpointReader, rules: list[KeyRule], progress: bool) -> None:
    """Set every native tensor from the files through `rules`, with strict accounting in both directions."""
    state = model.state_dict(keep_vars=True)
    check_shapes(state, reader, rules)
    missing = [k for rule in rules for k in rule.official if k not in reader]
    used = {k for rule in rules for k in rule.official}
    unused = sorted(set(reader.keys()) - used)
    covered = {k for rule in rules for k in rule.native}
    unset = sorted(set(state) - covered)
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing from the checkpoint, e.g. {missing[:5]}")
    if unused:
        problems.append(f"{len(unused)} tensor(s) in the checkpoint that no parameter uses, e.g. {unused[:5]}")
    if unset:
        problems.append(f"{len(unset)} parameter(s) no checkpoint tensor sets, e.g. {unset[:5]}")
    if problems:
        hint = ""
        if any(k.startswith(SAM2_PREFIX) for k in [*missing, *unused]):
            hint = " If the checkpoint uses another SAM2 than v1 hiera-L, pass sam2_config=..."
        raise Sa2VACheckpointError(f"{reader.folder} does not match the model: " + "; ".join(problems) + "." + hint)
    for rule in tqdm(rules, desc="loading weights", disable=not progress, leave=False):
        tensors = rule.to_native([reader.get(k) for k in rule.official])
        for name, tensor in zip(rule.native, tensors, strict=True):
            with torch.no_grad():
                state[name].copy_(tensor)


def export_official(model, folder: str | os.PathLike, max_shard_bytes: int = 5 * 1024**3) -> Path:
    """Write `model` in the official layout (config.json, safetensors, tokenizer / processor files).

    The folder is written under a temporary name and renamed when complete. A side file records the SAM2
    configuration, which the official config cannot hold.

    Returns:
        The folder written.
    """
    config: Sa2VAConfig = model.config
    state = model.state_dict()
    rules = conversion_rules(config, list(state), [])

    def tensors():
        for rule in rules:
            yield from zip(rule.official, rule.to_official([state[k] for k in rule.native]), strict=True)

    with atomic_folder(folder) as staging:
        write_safetensors(tensors(), staging, max_shard_bytes=max_shard_bytes)
        official = official_config_from_native(config, default_llm_architecture(config))
        (staging / "config.json").write_text(json.dumps(official, indent=2, sort_keys=True))
        (staging / SAM2_SIDE_FILE).write_text(config.sam2_config.to_json_string())
        if model.processor is not None:
            model.processor.save_pretrained(staging)
    return Path(folder)


def _mllm_probe(official: dict):
    """A minimal MLLM config of the right family, enough to pick how to load the tokenizer / processor."""
    from transformers import InternVLConfig, Qwen2_5_VLConfig

    return InternVLConfig() if "llm_config" in official else Qwen2_5_VLConfig()


def _sam2_config_from_dict(data: dict) -> PreTrainedConfig:
    from transformers import Sam2VideoConfig

    return Sam2VideoConfig(**{k: v for k, v in data.items() if k not in ("model_type", "transformers_version")})


__all__ = [
    "OFFICIAL_MODEL_TYPE",
    "SAM2_SIDE_FILE",
    "is_official_checkpoint",
    "load_official",
    "export_official",
    "conversion_rules",
    "fill_from_rules",
    "check_shapes",
    "read_config_json",
]
