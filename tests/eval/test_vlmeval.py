"""The VLMEvalKit wrapper: images, several images as a video, text only; end tokens stripped."""

import numpy as np
import pytest
from PIL import Image

from sa2va import Sa2VAInputError
from sa2va.eval.vlmeval import Sa2VAForVLMEvalKit
from sa2va.testing import teacher_forcing, tiny_model


@pytest.fixture(scope="module")
def wrapper():
    return Sa2VAForVLMEvalKit(model=tiny_model("internvl"))


def image_file(tmp_path, name, value):
    path = tmp_path / name
    Image.fromarray(np.full((40, 50, 3), value, dtype=np.uint8)).save(path)
    return str(path)


def test_single_image_multi_image_and_text(wrapper, tmp_path, monkeypatch):
    seen = []
    original = wrapper.model.predict

    def spy(**kwargs):
        seen.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(wrapper.model, "predict", spy)
    one = [{"type": "image", "value": image_file(tmp_path, "a.png", 10)}, {"type": "text", "value": "What colour?"}]
    many = [{"type": "image", "value": image_file(tmp_path, f"{i}.png", 20 * i)} for i in range(3)]
    many.append({"type": "text", "value": "What changes?"})
    with teacher_forcing(wrapper.model, "Dark."):
        assert wrapper.generate(one) == "Dark."
        assert wrapper.generate(many, dataset="Video-MME") == "Dark."
        assert wrapper.generate("Say something.") == "Dark."
    assert "image" in seen[0] and seen[0]["text"] == "<image>\nWhat colour?"
    assert "video" in seen[1] and len(seen[1]["video"]) == 3
    assert "image" not in seen[2] and "video" not in seen[2]


def test_bad_messages(wrapper, tmp_path):
    with pytest.raises(Sa2VAInputError, match="no text"):
        wrapper.generate([{"type": "image", "value": image_file(tmp_path, "b.png", 5)}])
    with pytest.raises(Sa2VAInputError, match="cannot read image"):
        wrapper.generate([{"type": "image", "value": str(tmp_path / "missing.png")}, {"type": "text", "value": "Hi"}])
    with pytest.raises(Sa2VAInputError, match="model_path"):
        Sa2VAForVLMEvalKit()
