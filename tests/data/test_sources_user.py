"""`UserDataset`: the documented JSONL format, with RLE, polygons, frame lists, mp4 videos and text-only lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from sa2va.data.sources import Sa2VADataError, UserDataset
from tests.data.fixtures import (
    SQUARE,
    decode_color,
    frame_mask,
    rle,
    square_mask,
    write_image,
    write_jpeg_frames,
    write_mp4,
)

H, W = 30, 40


def _write_jsonl(path: Path, records: list[object]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n\n")
    return path


@pytest.fixture
def user_data(tmp_path: Path) -> Path:
    write_image(tmp_path / "images" / "a.jpg", W, H)
    write_jpeg_frames(tmp_path / "frames", [f"{i}" for i in range(7)], 32, 24)
    write_mp4(tmp_path / "clips" / "c.mp4", 4, 32, 24)
    blob = square_mask(H, W, 20, 10, 6)
    frame_files = [f"frames/{i}.jpg" for i in range(7)]
    records = [
        {
            "image": "images/a.jpg",
            "conversation": [
                {"user": "Please segment the square.", "assistant": "Sure, [SEG]."},
                {"user": "And the blob and the square?", "assistant": "[SEG] and [SEG]."},
            ],
            "masks": [{"polygons": [SQUARE]}, {"rle": rle(blob)}, {"rle": rle(blob, compress=False) | {}}],
            "regions": [{"polygons": [SQUARE]}],
        },
        {
            "video": frame_files,
            "conversation": [{"user": "<image>\nWhere is it?", "assistant": "It is [SEG]."}],
            "masks": [{"frames": [{"rle": rle(frame_mask(i, 24, 32))} if i != 3 else None for i in range(7)]}],
        },
        {
            "video": "clips/c.mp4",
            "conversation": [{"user": "Track it.", "assistant": "[SEG]"}],
            "masks": [{"frames": [{"polygons": [[0, 0, 4, 0, 4, 4, 0, 4]]}] * 4}],
        },
        {"conversation": [{"user": "What is 2 + 2?", "assistant": "4."}]},
        {
            "image": "images/a.jpg",
            "conversation": [{"user": "x", "assistant": "[SEG] [SEG]"}],
            "masks": [{"rle": rle(blob)}],
        },
        "{not json",
    ]
    return _write_jsonl(tmp_path / "train.jsonl", records)


def test_user_dataset(user_data, caplog):
    with pytest.raises(Sa2VADataError, match=r"train\.jsonl: line 5: the answers hold 2 \[SEG\] but 1 masks"):
        UserDataset(user_data)
    with caplog.at_level(logging.WARNING):
        dataset = UserDataset(user_data, skip_bad_records=True)
    assert dataset.num_skipped == 2 and len(dataset) == 4
    assert sum("skipped 2 malformed" in r.message for r in caplog.records) == 1
    assert dataset.modality_lengths == [100, 10000, 10000, 100]

    image = dataset[0]
    assert image.conversation[0].user == "<image>\nPlease segment the square."
    assert image.conversation[1].user == "And the blob and the square?"
    assert image.num_seg == len(image.masks) == 3
    assert [int(m.sum()) for m in image.masks] == [100, 36, 36]
    assert image.masks[0][5:15, 5:15].all()
    assert image.region_masks.shape == (1, H, W) and image.region_masks.sum() == 100

    video = dataset[1]  # 7 frames > 5: 5 sorted frames without replacement, masks follow
    ids = [decode_color(f) for f in video.frames]
    assert len(ids) == 5 and ids == sorted(ids) and len(set(ids)) == 5
    assert video.conversation[0].user == "<image>\nWhere is it?"  # not doubled
    (mask,) = video.masks
    assert mask.shape == (5, 24, 32)
    for k, frame in enumerate(ids):
        expected = np.zeros((24, 32), bool) if frame == 3 else frame_mask(frame, 24, 32)
        assert np.array_equal(mask[k], expected)
    assert [decode_color(f) for f in UserDataset(user_data, skip_bad_records=True)[1].frames] == ids

    mp4 = dataset[2]  # 4 frames <= 5: all of them
    assert [decode_color(f) for f in mp4.frames] == [0, 1, 2, 3]
    assert mp4.masks[0].shape == (4, 24, 32) and (mp4.masks[0].sum(axis=(1, 2)) == 16).all()

    text = dataset[3]
    assert text.image is None and text.frames is None and text.masks == []
    assert text.conversation[0].user == "What is 2 + 2?"


def test_user_dataset_mask_size_mismatch(tmp_path):
    write_image(tmp_path / "a.jpg", W, H)
    record = {"image": "a.jpg", "conversation": [{"user": "q", "assistant": "[SEG]"}],
              "masks": [{"rle": rle(np.zeros((5, 5), bool))}]}  # fmt: skip
    dataset = UserDataset(_write_jsonl(tmp_path / "d.jsonl", [record]))
    with pytest.raises(Sa2VADataError, match=r"d\.jsonl: line 1: RLE size \[5, 5\]"):
        dataset[0]


def test_user_dataset_root_and_video_mask_checks(tmp_path):
    write_jpeg_frames(tmp_path / "data" / "f", ["0", "1"], 16, 16)
    bad = {"video": ["f/0.jpg", "f/1.jpg"], "conversation": [{"user": "q", "assistant": "[SEG]"}],
           "masks": [{"frames": [None]}]}  # fmt: skip
    image_mask_on_video = {"video": ["f/0.jpg"], "conversation": [{"user": "q", "assistant": "[SEG]"}],
                           "masks": [{"polygons": [SQUARE]}]}  # fmt: skip
    path = _write_jsonl(tmp_path / "d.jsonl", [bad, image_mask_on_video])
    with pytest.raises(Sa2VADataError, match=r"line 1: masks\[0\] has 1 frames, the video 2"):
        UserDataset(path, root=tmp_path / "data")
    dataset = UserDataset(path, root=tmp_path / "data", skip_bad_records=True)
    assert len(dataset) == 0 and dataset.num_skipped == 2
