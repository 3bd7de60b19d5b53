"""Bad input gets a typed error naming what was wrong; odd-but-valid images are converted."""

import numpy as np
import pytest
from PIL import Image

from sa2va import Sa2VAInputError
from sa2va.modeling.sa2va import Sa2VAModel
from sa2va.testing import teacher_forcing, tiny_config

from ..conftest import get_model

SEGMENT = "<image>\nPlease segment the cube."


@pytest.mark.parametrize("text", ["", "   ", "<image>", None, 3])
def test_empty_or_non_string_text(model, image, text):
    with pytest.raises(Sa2VAInputError, match="text must be a non-empty string"):
        model.predict(image=image, text=text)


@pytest.mark.parametrize(
    "bad",
    [Image.new("RGB", (0, 10)), np.zeros((0, 5, 3), dtype=np.uint8), np.zeros((4, 4, 7), dtype=np.uint8), "img.png"],
)
def test_unusable_images(bad):
    model = get_model("qwen2_5_vl")
    with pytest.raises(Sa2VAInputError):
        model.predict(image=bad, text=SEGMENT)


def test_empty_video(model):
    with pytest.raises(Sa2VAInputError):
        model.predict(video=[], text=SEGMENT)
    with pytest.raises(Sa2VAInputError):
        model.predict(video="/no/such/video.mp4", text=SEGMENT)


def test_image_and_video_together(image):
    model = get_model("internvl")
    with pytest.raises(Sa2VAInputError, match="not both"):
        model.predict(image=image, video=[image], text=SEGMENT)


@pytest.mark.parametrize(
    "make",
    [
        lambda rgb: rgb.convert("L"),
        lambda rgb: rgb.convert("RGBA"),
        lambda rgb: Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257),
        lambda rgb: np.asarray(rgb, dtype=np.uint16) * 257,
        lambda rgb: np.asarray(rgb.convert("L")) > 128,
    ],
    ids=["grayscale", "rgba", "16-bit-pil", "16-bit-array", "bool-array"],
)
def test_odd_images_are_converted(image, make):
    model = get_model("internvl")
    with teacher_forcing(model, "Sure, it is [SEG]."):
        out = model.predict(image=make(image), text=SEGMENT)
    assert out.masks[0].shape == (1, 96, 128)


def test_no_tokenizer_attached(image):
    config, _ = tiny_config("qwen3_vl")
    bare = Sa2VAModel(config).eval()
    with pytest.raises(Sa2VAInputError, match="no tokenizer attached"):
        bare.predict(image=image, text=SEGMENT)


def test_batch_lengths_must_match(image):
    with pytest.raises(Sa2VAInputError, match="one text per image"):
        get_model("internvl").predict_batch([image, image], ["a"])
