"""What trains (REFERENCE_SPEC §7.1) and LoRA injection / merging through peft."""

from __future__ import annotations

import logging

from torch import nn

logger = logging.getLogger(__name__)

# Linear layers of the LLM that get LoRA (every transformer-block projection, as xtuner's `find_all_linear_names`).
LORA_TARGETS = r".*mllm\.model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def configure_trainable(model, config) -> dict[str, int]:
    """Freeze and unfreeze the model's parts for `config.finetune` (`lora` or `full`).

    - vision tower (InternViT / Qwen `visual`): frozen unless `config.train_vision`;
    - SAM2's image encoder, prompt encoder and memory: frozen unless `config.train_sam2 == "all"`;
    - InternVL projector, `embed_tokens`, `lm_head`, `text_hidden_fcs`: trained;
    - SAM2 mask decoder: trained when `config.train_mask_decoder`;
    - the LLM: LoRA adapters (`lora`) or every weight (`full`).

    Returns:
        Trainable parameter counts per part, also logged.
    """
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if config.finetune == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            bias="none",
            target_modules=LORA_TARGETS,
        )
        inject_adapter_in_model(lora, model)
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.requires_grad_(True)
    else:
        model.mllm.model.language_model.requires_grad_(True)
    model.get_input_embeddings().requires_grad_(True)
    model.get_output_embeddings().requires_grad_(True)
    if model.config.is_internvl:
        model.mllm.model.multi_modal_projector.requires_grad_(True)
    model.text_hidden_fcs.requires_grad_(True)
    if config.train_mask_decoder:
        model.sam2.mask_decoder.requires_grad_(True)
    if getattr(config, "train_sam2", "decoder") == "all":
        model.sam2.requires_grad_(True)
    if getattr(config, "train_vision", False):
        vision = model.mllm.model.vision_tower if model.config.is_internvl else model.mllm.model.visual
        vision.requires_grad_(True)
    counts = {
        part: sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefix))
        for part, prefix in (("mllm", "mllm."), ("text_hidden_fcs", "text_hidden_fcs."), ("sam2", "sam2."))
    }
    logger.info("trainable parameters: %s", counts)
    return counts


def merge_lora(model):
    """Fold LoRA adapters into their base weights and remove them (a no-op without adapters)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft is a dependency, but a model without adapters needs nothing
        return model
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def has_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


__all__ = ["LORA_TARGETS", "configure_trainable", "merge_lora", "has_lora"]
