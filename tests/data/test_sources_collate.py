"""Reader samples go through the collator's `encode_sample` unchanged: `[SEG]` tokens meet their masks, video masks
keep their frames, and Osprey regions become the reference's region sentence."""

from __future__ import annotations

import json
import re

import pytest

from sa2va.data.collate import encode_sample
from sa2va.data.sources import OspreyDataset, RefVOSDataset, UserDataset
from sa2va.testing import tiny_config
from tests.data.fixtures import SQUARE, frame_mask, rle, write_image, write_jpeg_frames, write_json


@pytest.fixture(scope="module")
def internvl_processor():
    return tiny_config("internvl")[1]


def test_osprey_region_sentence(tmp_path, internvl_processor):
    write_image(tmp_path / "a.jpg", 40, 30)
    big = [[0, 0, 20, 0, 20, 18, 0, 18]]
    record = {
        "file_name": "a.jpg",
        "height": 30,
        "width": 40,
        "annotation": [{"segmentation": big}, {"segmentation": big}],
        "conversations": [
            {"from": "human", "value": "Compare <region1> and <region2>."},
            {"from": "gpt", "value": "x"},
        ],
    }
    sample = OspreyDataset(write_json(tmp_path / "o.json", [record]), tmp_path)[0]
    encoded = encode_sample(sample, internvl_processor)
    text = internvl_processor.tokenizer.decode(encoded.inputs.input_ids)
    text = re.sub(r"(<IMG_CONTEXT>)+", "<C>", text)
    assert "</img>\nThere are 2 part regions in the picture: region1<vp><C></vp>, region2<vp><C></vp>.\nCompare" in text
    assert encoded.targets is None


def test_seg_tokens_meet_masks(tmp_path, internvl_processor):
    write_image(tmp_path / "a.jpg", 40, 30)
    line = {"image": "a.jpg", "conversation": [{"user": "seg", "assistant": "[SEG] and [SEG]"}],
            "masks": [{"polygons": [SQUARE]}, {"polygons": [SQUARE]}]}  # fmt: skip
    (tmp_path / "u.jsonl").write_text(json.dumps(line) + "\n")
    encoded = encode_sample(UserDataset(tmp_path / "u.jsonl")[0], internvl_processor)
    assert encoded.targets.shape[:2] == (2, 1)

    frames = [f"{i:05d}" for i in range(7)]
    write_jpeg_frames(tmp_path / "JPEGImages" / "v", frames, 32, 24)
    meta = {"videos": {"v": {"frames": frames, "expressions": {"0": {"exp": "the thing", "anno_id": [0]}}}}}
    masks = {"0": [rle(frame_mask(i, 24, 32)) for i in range(7)]}
    dataset = RefVOSDataset(
        write_json(tmp_path / "m.json", meta), write_json(tmp_path / "d.json", masks), tmp_path / "JPEGImages"
    )
    encoded = encode_sample(dataset[0], internvl_processor)
    assert encoded.targets.shape[:2] == (5, 5) and encoded.sam2_pixels.shape[0] == 5
