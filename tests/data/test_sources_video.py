"""Video readers on tiny fixtures in the real formats: meta_expressions + mask_dict + JPEG frames (ReVOS / MeViS /
Ref-YTVOS), Ref-SAV json + mp4 + masklets, and ChatUniVi video QA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sa2va.data.sources import RefSAVDataset, RefVOSDataset, Sa2VADataError, VideoQADataset
from sa2va.data.sources_video import _dedupe_sav_path
from sa2va.data.templates import ANSWER_LIST
from tests.data.fixtures import decode_color, frame_mask, rle, write_jpeg_frames, write_json, write_mp4, write_pickle

H, W = 24, 32
FRAMES = [f"{i:05d}" for i in range(8)]


@pytest.fixture
def refvos(tmp_path: Path) -> dict[str, Path]:
    write_jpeg_frames(tmp_path / "JPEGImages" / "vid1", FRAMES, W, H)
    write_jpeg_frames(tmp_path / "JPEGImages" / "vid2", FRAMES[:3], W, H)
    meta = {
        "videos": {
            "vid1": {
                "frames": list(reversed(FRAMES)),  # the reader sorts them
                "expressions": {
                    "0": {"exp": "The Red Car.", "anno_id": [0], "obj_id": [0]},
                    "1": {"exp": "which one is moving?", "anno_id": [1, 2], "obj_id": [1, 2]},
                },
            },
            "vid2": {"frames": FRAMES[:3], "expressions": {"0": {"exp": "a dog", "anno_id": [3], "obj_id": [0]}}},
        }
    }
    masks = {
        "0": [rle(frame_mask(i, H, W)) for i in range(8)],
        "1": [rle(frame_mask(i, H, W, offset=10)) if i % 2 else None for i in range(8)],
        "2": [rle(frame_mask(0, H, W, offset=20), compress=False) for _ in range(8)],
        "3": [rle(frame_mask(i, H, W)) for i in range(3)],
    }
    return {
        "meta": write_json(tmp_path / "meta_expressions.json", meta),
        "masks": write_json(tmp_path / "mask_dict.json", masks),
        "frames": tmp_path / "JPEGImages",
        "root": tmp_path,
    }


def _expected(text: str, frame: int) -> np.ndarray:
    if "car" in text:
        return frame_mask(frame, H, W)
    if "moving" in text:  # union of anno 1 (odd frames only) and anno 2 (constant)
        extra = frame_mask(frame, H, W, offset=10) if frame % 2 else np.zeros((H, W), bool)
        return extra | frame_mask(0, H, W, offset=20)
    return frame_mask(frame, H, W)


def test_refvos_expressions_frames_and_masks(refvos):
    dataset = RefVOSDataset(refvos["meta"], refvos["masks"], refvos["frames"])
    assert len(dataset) == 2 and dataset.modality_lengths == [10000, 10000]
    sample = dataset[0]
    assert sample.image is None and len(sample.frames) == 5
    ids = [decode_color(f) for f in sample.frames]
    assert ids == sorted(ids) and len(set(ids)) == 5  # 8 frames > 5 + 1: sorted, without replacement
    assert len(sample.conversation) == 5 and sample.num_seg == len(sample.masks) == 5
    assert sample.conversation[0].user.startswith("<image>\n")
    for turn, mask in zip(sample.conversation, sample.masks):
        assert turn.assistant in ANSWER_LIST
        assert mask.shape == (5, H, W) and mask.dtype == bool
        if "moving" in turn.user:
            assert turn.user.removeprefix("<image>\n") == "which one is moving?"  # a question is asked verbatim
        else:
            assert "the red car" in turn.user  # "." removed, lowercased
        for k, frame in enumerate(ids):
            assert np.array_equal(mask[k], _expected(turn.user, frame))
    short = dataset[1]  # 3 frames <= 5 + 1: drawn with replacement, still sorted
    short_ids = [decode_color(f) for f in short.frames]
    assert short_ids == sorted(short_ids) and len(short.frames) == 5
    for mask in short.masks:
        assert all(np.array_equal(mask[k], frame_mask(f, H, W)) for k, f in enumerate(short_ids))


def test_refvos_determinism(refvos):
    a = RefVOSDataset(refvos["meta"], refvos["masks"], refvos["frames"], seed=1)
    b = RefVOSDataset(refvos["meta"], refvos["masks"], refvos["frames"], seed=1)
    first, second = a[0], b[0]
    assert [t.user for t in first.conversation] == [t.user for t in second.conversation]
    assert [decode_color(f) for f in first.frames] == [decode_color(f) for f in second.frames]
    draws = {tuple(decode_color(f) for f in a.sample(0, draw=d).frames) for d in range(5)}
    assert len(draws) > 1


def test_refytvos_sequential_ids_from_pickle(refvos):
    meta = {
        "videos": {
            "v": {"frames": FRAMES[:4], "expressions": {"1": {"exp": "second"}, "0": {"exp": "first"}}},
        }
    }
    write_jpeg_frames(refvos["frames"] / "v", FRAMES[:4], W, H)
    masks = {  # sorted expression ids -> "0" is the first, "1" the second; RLE counts as bytes, as pycocotools writes
        "0": [{"size": [H, W], "counts": rle(frame_mask(0, H, W))["counts"].encode()} for _ in range(4)],
        "1": [rle(frame_mask(3, H, W)) for _ in range(4)],
    }
    dataset = RefVOSDataset(
        write_json(refvos["root"] / "ytvos.json", meta),
        write_pickle(refvos["root"] / "mask_dict.pkl", masks),
        refvos["frames"],
        variant="refytvos",
    )
    sample = dataset[0]
    for turn, mask in zip(sample.conversation, sample.masks):
        side = 1 if "first" in turn.user else 4
        assert all(m.sum() == side * side for m in mask)


def test_refvos_bad_expression(refvos):
    meta = {
        "videos": {
            "vid1": {
                "frames": FRAMES,
                "expressions": {"0": {"exp": "ok", "anno_id": [0]}, "1": {"exp": "lost", "anno_id": [99]}},
            }
        }
    }
    path = write_json(refvos["root"] / "bad.json", meta)
    with pytest.raises(Sa2VADataError, match=r"bad\.json: video 'vid1', expression '1': annotation id 99"):
        RefVOSDataset(path, refvos["masks"], refvos["frames"])
    dataset = RefVOSDataset(path, refvos["masks"], refvos["frames"], skip_bad_records=True)
    assert dataset.num_skipped == 1 and len(dataset) == 1
    assert all("ok" in t.user for t in dataset[0].conversation)


# --------------------------------------------------------------------------------------------------------------------
# Ref-SAV
# --------------------------------------------------------------------------------------------------------------------

SAV_H, SAV_W = 48, 64


@pytest.fixture
def refsav(tmp_path: Path) -> dict[str, Path]:
    shard = tmp_path / "sav_train" / "sav_000"
    write_mp4(shard / "sav_000001.mp4", 13, SAV_W, SAV_H)  # annotated frames 0, 4, 8, 12
    masklet = [[rle(frame_mask(k, SAV_H, SAV_W)), rle(frame_mask(k, SAV_H, SAV_W, offset=20))] for k in range(4)]
    write_json(shard / "sav_000001_manual.json", {"masklet": masklet, "masklet_id": [0, 1], "video_id": "sav_000001"})
    data = {
        "sav_000001": {
            # the shard folder repeated around sav_train, as in the released Ref-SAV.json
            "video_path": "sav_000/sav_train/sav_000/sav_000001.mp4",
            "anno_path": "sav_000/sav_train/sav_000/sav_000001_manual.json",
            "objects": {"0": {"formated": "The red ball."}, "1": {"formated": "the Box"}},
        },
        "broken": {"video_path": "x.mp4", "anno_path": "x.json", "objects": {"a": {"formated": "?"}}},
    }
    return {"json": write_json(tmp_path / "Ref-SAV.json", data), "root": tmp_path}


def test_dedupe_sav_path():
    assert _dedupe_sav_path("a/sav_000/sav_train/sav_000/x.mp4", "a/sav_000/sav_train/sav_000/x.json") == (
        "a/sav_train/sav_000/x.mp4",
        "a/sav_train/sav_000/x.json",
    )
    assert _dedupe_sav_path("sav_train/sav_000/x.mp4", "y.json") == ("sav_train/sav_000/x.mp4", "y.json")


def test_refsav_every_fourth_frame_and_masklets(refsav):
    with pytest.raises(Sa2VADataError, match=r"Ref-SAV\.json: video 'broken': object id 'a'"):
        RefSAVDataset(refsav["json"], refsav["root"])
    dataset = RefSAVDataset(refsav["json"], refsav["root"], skip_bad_records=True)
    assert len(dataset) == 1 and dataset.num_skipped == 1 and dataset.modality_lengths == [20000]
    sample = dataset[0]
    ids = [decode_color(f) for f in sample.frames]
    assert len(ids) == 5 and ids == sorted(ids) and all(i % 4 == 0 for i in ids)
    assert sample.num_seg == len(sample.masks) == 5
    for turn, mask in zip(sample.conversation, sample.masks):
        offset = 0 if "The red ball." in turn.user else 20  # the expression is used as is
        assert "The red ball." in turn.user or "the Box" in turn.user
        assert mask.shape == (5, SAV_H, SAV_W)
        assert all(np.array_equal(mask[k], frame_mask(i // 4, SAV_H, SAV_W, offset)) for k, i in enumerate(ids))


# --------------------------------------------------------------------------------------------------------------------
# Video QA
# --------------------------------------------------------------------------------------------------------------------


def test_video_qa_segments_and_text(tmp_path):
    write_mp4(tmp_path / "videos" / "long.mp4", 12, 32, 32)
    write_jpeg_frames(tmp_path / "videos" / "short", ["a", "b", "c"], 32, 32)
    records = [
        {
            "id": "v1",
            "video": "long.mkv",  # only the .mp4 exists: the reference falls back to it
            "conversations": [
                {"from": "human", "value": "<video>\n What happens? "},
                {"from": "gpt", "value": " A colour change. "},
                {"from": "human", "value": "Why?"},
                {"from": "gpt", "value": "Because."},
            ],
        },
        {
            "id": "v2",
            "video": "short",
            "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}],
        },
        {"id": "v3", "video": "short", "conversations": [{"from": "human", "value": "Q"}]},
    ]
    path = write_json(tmp_path / "video_chat.json", records)
    with pytest.raises(Sa2VADataError, match=r"video_chat\.json: record 2 \(id 'v3'\): 1 questions but 0 answers"):
        VideoQADataset(path, tmp_path / "videos")
    dataset = VideoQADataset(path, tmp_path / "videos", skip_bad_records=True)
    assert dataset.num_skipped == 1 and len(dataset) == 2
    sample = dataset[0]
    assert [(t.user, t.assistant) for t in sample.conversation] == [
        ("<image>\nWhat happens?", "A colour change."),
        ("Why?", "Because."),
    ]
    ids = [decode_color(f) for f in sample.frames]
    bounds = np.linspace(0, 12, 6, dtype=int)  # one frame per segment [0,2) [2,4) [4,7) [7,9) [9,12)
    assert len(ids) == 5 and all(bounds[k] <= i < bounds[k + 1] for k, i in enumerate(ids))
    assert sample.masks == [] and sample.image is None
    assert [decode_color(f) for f in dataset[1].frames] == [0, 1, 2]  # <= 5 frames: all of them
    assert [decode_color(f) for f in VideoQADataset(path, tmp_path / "videos", skip_bad_records=True)[0].frames] == ids
