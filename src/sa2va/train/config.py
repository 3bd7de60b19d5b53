"""`TrainConfig`: every training setting, from one YAML file plus `key=value` overrides.

Defaults are the reference recipe (REFERENCE_SPEC §7): AdamW lr 4e-5, betas (0.9, 0.999), weight decay 0.05, gradient
clipping 1.0, linear warm-up over 5 % of the steps then cosine to 0, LoRA r=128 α=256 dropout 0.05.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sa2va.errors import Sa2VAConfigError


@dataclass
class DataConfig:
    """One dataset of the mixture.

    Attributes:
        kind: `user` (the simple JSONL format, `docs/data_format.md`), `scenes` (the scenes world written in the user format, for the embedded model), `synthetic` (generated shapes, for tests and
            the tiny model) or a public-format reader name of `sa2va.data` (`refcoco`, `refvos`, `llava`, ...).
        path: annotation file (JSONL / JSON / pickle) for file-based kinds.
        root: folder that image / video paths are relative to.
        repeats: how many times the dataset appears in one epoch.
        options: extra constructor arguments of the reader.
    """

    kind: str = "user"
    path: str = ""
    root: str = ""
    repeats: int = 1
    options: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    """A training run.

    Attributes:
        model: checkpoint folder / Hub id to start from, or `tiny:<family>` for a tiny random model.
        model_options: for `tiny:` models, `sam2_image_size` and the size options of `sa2va.testing.tiny_config`.
        output_dir: where checkpoints and logs go.
        data: the dataset mixture.
        max_steps: optimiser steps (one step = `grad_accum` micro-batches).
        batch_size: samples per micro-batch per process.
        grad_accum: micro-batches per optimiser step.
        lr, weight_decay, betas, grad_clip, warmup_ratio: AdamW and its schedule.
        sam2_lr: learning rate of SAM2's trainable parameters (default: `lr`). A SAM2 trained from scratch needs a
            lower one than the LLM: at 1e-3 its masks stopped following the prompt, at 3e-4 they did.
        finetune: `lora` (the reference: LoRA on the LLM, embeddings / head / projector / mask decoder /
            `text_hidden_fcs` fully trained) or `full` (everything but the vision tower and SAM2's image encoder).
        lora_rank, lora_alpha, lora_dropout: LoRA settings.
        train_mask_decoder: train SAM2's mask decoder (the reference does).
        train_vision: also train the MLLM's vision tower (frozen in the reference; for models trained from scratch).
        train_sam2: `decoder` (the reference: SAM2's mask decoder only, see `train_mask_decoder`) or `all` (the whole
            SAM2, memory included; for models trained from scratch).
        language_warmup_steps: the first optimiser steps train the language loss only (masks are not decoded); for
            models trained from scratch, so `[SEG]` states already tell targets apart when SAM2 starts learning.
        region_naming_weight: weight of the region-naming loss (`sa2va.train.region_naming`; 0, the reference, turns
            it off): mask-pooled visual tokens predict the phrase after their `[SEG]`, so a vision tower trained
            from scratch learns what its masks contain. Qwen families only.
        vision_warmup_steps: the first optimiser steps train the region-naming loss alone (the vision tower's
            forward only, no LLM or SAM2: fast steps), so the tower already tells shapes apart when the LLM starts.
            Needs `region_naming_weight > 0`; counts towards `language_warmup_steps` and `max_steps`.
        video_key_frames: 0 (the reference) decodes every frame of a video sample on its own; `k > 0` runs the
            sample through SAM2's memory as inference does, the first `k` frames prompted by `[SEG]` and the rest
            tracked, so the memory modules learn too (with `train_sam2: all`).
        gradient_checkpointing: recompute LLM activations in the backward pass.
        mixed_precision: `auto` (bf16 on CUDA, fp32 on CPU), `no` or `bf16`.
        max_length: token limit per sample.
        mask_points, mask_oversample, mask_importance, mask_bce_weight, mask_dice_weight: mask loss (§7.2).
        seed: everything random (init, data order, sampling) derives from it.
        log_every, save_every: steps between log lines / checkpoints (0 = only at the end).
        tensorboard: also write TensorBoard logs.
        num_workers: data-loader workers.
    """

    model: str = "tiny:qwen2_5_vl"
    model_options: dict = field(default_factory=dict)
    output_dir: str = "runs/sa2va"
    data: list[DataConfig] = field(default_factory=list)
    max_steps: int = 1000
    batch_size: int = 2
    grad_accum: int = 1
    lr: float = 4e-5
    sam2_lr: float | None = None
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    warmup_ratio: float = 0.05
    finetune: str = "lora"
    lora_rank: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    train_mask_decoder: bool = True
    train_vision: bool = False
    train_sam2: str = "decoder"
    video_key_frames: int = 0
    language_warmup_steps: int = 0
    region_naming_weight: float = 0.0
    vision_warmup_steps: int = 0
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"
    max_length: int = 8192
    mask_points: int = 112 * 112
    mask_oversample: float = 3.0
    mask_importance: float = 0.75
    mask_bce_weight: float = 2.0
    mask_dice_weight: float = 0.5
    seed: int = 0
    log_every: int = 10
    save_every: int = 0
    tensorboard: bool = False
    num_workers: int = 0

    def validate(self) -> None:
        """Report every problem at once.

        Raises:
            Sa2VAConfigError: listing all invalid settings.
        """
        problems = []
        if self.finetune not in ("lora", "full"):
            problems.append(f"finetune must be 'lora' or 'full', got {self.finetune!r}")
        if self.train_sam2 not in ("decoder", "all"):
            problems.append(f"train_sam2 must be 'decoder' or 'all', got {self.train_sam2!r}")
        if not 0 <= self.language_warmup_steps < self.max_steps:
            problems.append(
                f"language_warmup_steps must be in [0, max_steps={self.max_steps}), got {self.language_warmup_steps}"
            )
        if self.region_naming_weight < 0:
            problems.append(f"region_naming_weight must be >= 0, got {self.region_naming_weight}")
        if not 0 <= self.vision_warmup_steps < self.max_steps:
            problems.append(f"vision_warmup_steps must be in [0, max_steps={self.max_steps}), got {self.vision_warmup_steps}")
        elif self.vision_warmup_steps and self.region_naming_weight <= 0:
            problems.append("vision_warmup_steps trains the region-naming loss: set region_naming_weight > 0")
        if self.video_key_frames < 0:
            problems.append(f"video_key_frames must be >= 0, got {self.video_key_frames}")
        if self.model_options and not self.model.startswith("tiny:"):
            problems.append("model_options apply to tiny:<family> models only")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            problems.append(f"mixed_precision must be auto, no or bf16, got {self.mixed_precision!r} (fp16 is not supported)")
        for name in ("max_steps", "batch_size", "grad_accum", "max_length", "mask_points"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.sam2_lr is not None and self.sam2_lr <= 0:
            problems.append(f"sam2_lr must be > 0, got {self.sam2_lr}")
        if not self.data:
            problems.append("data is empty: give at least one dataset")
        for i, d in enumerate(self.data):
            if d.repeats < 1:
                problems.append(f"data[{i}].repeats must be >= 1, got {d.repeats}")
        if problems:
            raise Sa2VAConfigError("invalid training config:\n  - " + "\n  - ".join(problems))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config and apply `key=value` overrides (values parsed as YAML, e.g. `lr=1e-4`, `seed=3`).

    Raises:
        Sa2VAConfigError: unreadable file, unknown keys (all listed), or invalid values.
    """
    raw: dict = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise Sa2VAConfigError(f"cannot read training config {path}: {error}") from error
    problems = []
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            problems.append(f"override {item!r} is not key=value")
            continue
        raw[key.strip()] = yaml.safe_load(value)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        problems.append(f"unknown key(s) {unknown}; known keys: {', '.join(sorted(known))}")
    data = []
    for i, entry in enumerate(raw.pop("data", []) or []):
        fields = {f.name for f in dataclasses.fields(DataConfig)}
        extra = sorted(set(entry) - fields)
        if extra:
            problems.append(f"data[{i}] has unknown key(s) {extra}; known: {', '.join(sorted(fields))}")
            continue
        data.append(DataConfig(**entry))
    if problems:
        raise Sa2VAConfigError("invalid training config:\n  - " + "\n  - ".join(problems))
    if "betas" in raw:
        raw["betas"] = tuple(raw["betas"])
    config = TrainConfig(**{k: v for k, v in raw.items() if k in known}, data=data)
    config.validate()
    return config


__all__ = ["TrainConfig", "DataConfig", "load_config"]
