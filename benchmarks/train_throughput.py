"""Training throughput (samples/s) of the tiny model and of a mid-size random config, on this machine.

    python benchmarks/train_throughput.py [--steps 20]

The mid-size config is a Qwen2.5-VL-family model with a 1024-wide, 8-layer LLM and SAM2 hiera-tiny at 1024 px
(random weights): large enough that the LLM and the SAM2 decoder, not Python overhead, dominate.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from sa2va.data.collate import collate, encode_sample
from sa2va.data.synthetic import ShapesDataset
from sa2va.modeling.sa2va import Sa2VAModel
from sa2va.testing import tiny_config
from sa2va.train.config import TrainConfig
from sa2va.train.losses import MaskLossConfig
from sa2va.train.trainable import configure_trainable


def mid_size_model() -> Sa2VAModel:
    from sa2va.configuration import sam2_config_from_original

    config, processor = tiny_config("qwen2_5_vl")
    text = config.mllm_config.text_config
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = 1024, 2816, 8
    text.num_attention_heads, text.num_key_value_heads = 8, 2
    text.layer_types = ["full_attention"] * text.num_hidden_layers
    text.rope_parameters["mrope_section"] = [16, 24, 24]
    config.mllm_config.vision_config.out_hidden_size = 1024
    config.sam2_config = sam2_config_from_original(
        {"embed_dim": 96, "num_heads": 1, "stages": [1, 2, 7, 2], "global_att_blocks": [5, 7, 9],
         "window_spec": [8, 4, 14, 7]}
    )
    model = Sa2VAModel(config)
    processor.config = config
    model.attach_processor(processor)
    return model


def measure(model: Sa2VAModel, steps: int, batch_size: int = 2) -> float:
    configure_trainable(model, TrainConfig(lora_rank=64, lora_alpha=128, data=[]))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    dataset = ShapesDataset(num_samples=64, image_size=256)
    pad = model.processor.tokenizer.pad_token_id
    loss_config = MaskLossConfig()
    timings = []
    for step in range(steps + 2):
        samples = [encode_sample(dataset[(step * batch_size + i) % 64], model.processor) for i in range(batch_size)]
        start = time.perf_counter()
        output = model(collate(samples, pad), mask_loss=loss_config)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= 2:  # warm-up steps excluded
            timings.append(time.perf_counter() - start)
    return batch_size * len(timings) / sum(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from sa2va.testing import tiny_model

    with tempfile.TemporaryDirectory():
        tiny = tiny_model("qwen2_5_vl").to(device)
        print(f"device: {device}, threads: {torch.get_num_threads()}")
        print(f"tiny model ({sum(p.numel() for p in tiny.parameters()) / 1e6:.1f} M params, SAM2 at 256 px): "
              f"{measure(tiny, args.steps):.2f} samples/s")
        mid = mid_size_model().to(device)
        print(f"mid-size model ({sum(p.numel() for p in mid.parameters()) / 1e6:.0f} M params, SAM2 hiera-T at 1024 px): "
              f"{measure(mid, max(3, args.steps // 4)):.2f} samples/s")


if __name__ == "__main__":
    main()
