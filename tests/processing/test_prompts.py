"""Prompt strings and token layout per family, exactly as the reference builds them."""

import numpy as np
import pytest
from PIL import Image

from sa2va.processing.images import tile_grid
from sa2va.processing.prompts import IMG_CONTEXT, QWEN_IMAGE_PLACEHOLDER, internvl_image_placeholder

from ..conftest import get_model


def test_internvl_single_tile_prompt_is_the_reference_string():
    model = get_model("internvl")
    square = Image.new("RGB", (448, 448), (10, 20, 30))
    inputs = model.processor.prepare("<image>\n Please segment the man in red in this image.", [square])
    assert inputs.prompt == (
        "<|im_start|>user\n<img>" + IMG_CONTEXT * 256 + "</img>\n Please segment the man in red in this image."
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    assert inputs.pixel_values.shape == (1, 3, 448, 448)
    # Qwen2 tokenizers add no BOS; every <IMG_CONTEXT> is one token
    tokenizer = model.processor.tokenizer
    assert inputs.input_ids[0].item() == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert int((inputs.input_ids == tokenizer.convert_tokens_to_ids(IMG_CONTEXT)).sum()) == 256


def test_internlm2_style_tokenizer_adds_bos():
    model = get_model("internvl_llama")
    inputs = model.processor.prepare("Hello", None)
    assert inputs.input_ids[0].item() == model.processor.tokenizer.bos_token_id
    assert inputs.prompt == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("size", [(1920, 1080), (100, 2000), (640, 480)])
def test_internvl_tiling_gives_tiles_plus_thumbnail(size):
    model = get_model("internvl")
    image = Image.fromarray(np.random.RandomState(0).randint(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    inputs = model.processor.prepare("<image>\nDescribe.", [image])
    cols, rows = tile_grid(*size)
    expected = cols * rows + (1 if cols * rows > 1 else 0)
    assert cols * rows <= 12
    assert inputs.pixel_values.shape[0] == expected
    assert inputs.prompt.count(IMG_CONTEXT) == 256 * expected
    assert inputs.prompt.count("<img>") == 1


def test_internvl_video_key_frames_are_untiled_and_newline_separated():
    model = get_model("internvl")
    frames = [Image.new("RGB", (640, 480), (i, i, i)) for i in range(3)]
    inputs = model.processor.prepare("<image>\nPlease segment the cube.", frames, is_video=True)
    assert inputs.pixel_values.shape[0] == 3
    assert internvl_image_placeholder([256] * 3) + "\nPlease segment the cube." in inputs.prompt
    assert inputs.prompt.count("</img>\n<img>") == 2


def test_missing_image_tag_is_prepended_on_a_first_turn():
    model = get_model("internvl")
    inputs = model.processor.prepare("Please segment the cube.", [Image.new("RGB", (448, 448))])
    assert "</img>\nPlease segment the cube.<|im_end|>" in inputs.prompt


def test_stop_tokens_follow_the_template():
    qwen_chat = get_model("internvl").processor
    internlm2 = get_model("internvl_llama").processor
    vocab = qwen_chat.tokenizer.get_vocab()
    assert set(qwen_chat.stop_token_ids) == {vocab["<|im_end|>"], vocab["<|endoftext|>"]}
    assert internlm2.tokenizer.convert_tokens_to_ids("<|im_end|>") in internlm2.stop_token_ids
    assert internlm2.tokenizer.eos_token_id in internlm2.stop_token_ids


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_qwen_prompt_uses_the_processor_chat_template_and_pixel_budget(family):
    model = get_model(family)
    processor = model.processor
    small = Image.new("RGB", (40, 30))
    inputs = processor.prepare("<image>\nPlease segment the cube.", [small])
    assert inputs.prompt.count(QWEN_IMAGE_PLACEHOLDER) == 1 and "<image>" not in inputs.prompt
    assert ("You are a helpful assistant." in inputs.prompt) == (family == "qwen2_5_vl")
    assert inputs.prompt.endswith("Please segment the cube.<|im_end|>\n<|im_start|>assistant\n")
    grid = inputs.extra["image_grid_thw"][0]
    merge = processor.mllm_processor.image_processor.merge_size
    tokens = int(grid.prod()) // merge**2
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs.input_ids == pad).sum()) == tokens
    assert int((inputs.extra["mm_token_type_ids"][0] == 1).sum()) == tokens
    unit = processor.mllm_processor.image_processor.patch_size * merge
    assert int(grid[1] * grid[2]) * (unit // merge) ** 2 >= 512 * 28 * 28 * 0.9  # upscaled to the minimum budget
    big = Image.new("RGB", (3000, 2000))
    grid = processor.prepare("Describe.", [big]).extra["image_grid_thw"][0]
    assert int(grid.prod()) // merge**2 <= 2048
