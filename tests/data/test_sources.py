"""Image readers on tiny fixtures in the real formats: RefCOCO (REFER pickle + COCO json), fine-tune json, LLaVA."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from sa2va.data.sources import (
    FinetuneDataset,
    LLaVADataset,
    RefCOCODataset,
    Sa2VADataError,
)
from sa2va.data.templates import ANSWER_LIST, SEG_QUESTIONS
from tests.data.fixtures import SQUARE, rle, square_mask, write_image, write_json, write_pickle

H, W = 30, 40


def _sentence(raw: str, sent_id: int) -> dict:
    return {"raw": raw, "sent": raw.lower(), "tokens": raw.lower().split(), "sent_id": sent_id}


def _ref(ref_id: int, ann_id: int, image_id: int, sentences: list[str], split: str = "train") -> dict:
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "split": split,
        "category_id": 1,
        "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
        "sent_ids": list(range(len(sentences))),
        "sentences": [_sentence(s, k) for k, s in enumerate(sentences)],
    }


@pytest.fixture
def refcoco(tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "train2014"
    for image_id in (1, 2):
        write_image(images / f"COCO_train2014_{image_id:012d}.jpg", W, H)
    blob = square_mask(H, W, 20, 10, 6)  # 36 pixels
    instances = {
        "images": [
            {"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": H, "width": W},
            {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "height": H, "width": W},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "segmentation": [SQUARE], "category_id": 1, "iscrowd": 0},
            {"id": 11, "image_id": 1, "segmentation": rle(blob), "category_id": 1, "iscrowd": 0},
            {"id": 12, "image_id": 2, "segmentation": rle(blob, compress=False), "category_id": 1, "iscrowd": 1},
            {"id": 13, "image_id": 2, "segmentation": [SQUARE, [30, 20, 36, 20, 36, 26, 30, 26]], "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "cat"}],
    }
    refs = [
        _ref(1, 10, 1, ["The Left Cat."]),
        _ref(2, 11, 1, ["blob on the right"]),
        _ref(3, 12, 2, ["crowd thing"]),
        _ref(4, 13, 2, ["two squares"], split="val"),
    ]
    return {
        "refs": write_pickle(tmp_path / "refs(unc).p", refs),
        "instances": write_json(tmp_path / "instances.json", instances),
        "images": images,
        "root": tmp_path,
    }


def _phrase_of(question: str) -> str:
    """Recover the phrase from a SEG_QUESTIONS question."""
    question = question.removeprefix("<image>\n")
    for template in SEG_QUESTIONS:
        before, after = template.split("{class_name}")
        if question.startswith(before) and question.endswith(after):
            return question[len(before) : len(question) - len(after)]
    raise AssertionError(f"not a SEG_QUESTIONS question: {question!r}")


def test_refcoco_five_turns_masks_and_texts(refcoco):
    dataset = RefCOCODataset(refcoco["refs"], refcoco["instances"], refcoco["images"])
    assert len(dataset) == 2  # images 1 and 2 (the val ref is not used)
    assert dataset.modality_lengths == [100, 100]
    expected_area = {"the left cat": 100, "blob on the right": 36, "crowd thing": 36}
    for index in range(len(dataset)):
        sample = dataset[index]
        assert len(sample.conversation) == 5
        assert sample.conversation[0].user.startswith("<image>\n")
        assert not any(t.user.startswith("<image>") for t in sample.conversation[1:])
        assert all(t.assistant in ANSWER_LIST for t in sample.conversation)
        assert sample.num_seg == len(sample.masks) == 5
        assert sample.image.size == (W, H) and sample.frames is None
        for turn, mask in zip(sample.conversation, sample.masks):
            phrase = _phrase_of(turn.user)
            assert mask.shape == (H, W) and mask.dtype == bool
            assert mask.sum() == expected_area[phrase]
        if index == 0:
            # lowercased, trailing "." removed; polygon square -> exactly its 10 x 10 pixels
            mask = next(m for t, m in zip(sample.conversation, sample.masks) if "the left cat" in t.user)
            assert mask[5:15, 5:15].all() and mask.sum() == 100


def test_refcoco_is_deterministic_per_seed_and_draw(refcoco):
    args = (refcoco["refs"], refcoco["instances"], refcoco["images"])
    a, b = RefCOCODataset(*args, seed=3), RefCOCODataset(*args, seed=3)
    texts = [[(t.user, t.assistant) for t in a[i].conversation] for i in range(2)]
    assert texts == [[(t.user, t.assistant) for t in b[i].conversation] for i in range(2)]
    assert all(np.array_equal(x, y) for x, y in zip(a[0].masks, b[0].masks))
    assert [t.user for t in a[-1].conversation] == [t.user for t in a[1].conversation]
    with pytest.raises(IndexError):
        a[2]
    redraws = {tuple(t.user for t in a.sample(0, draw=d).conversation) for d in range(6)}
    assert len(redraws) > 1  # repeats are independent draws
    other = {tuple(t.user for t in RefCOCODataset(*args, seed=s)[0].conversation) for s in range(6)}
    assert len(other) > 1


def test_refcoco_bad_ref_names_file_and_record(refcoco, caplog):
    refs = [_ref(1, 10, 1, ["ok"]), _ref(7, 99, 1, ["missing annotation"])]
    path = write_pickle(refcoco["root"] / "refs(umd).p", refs)
    with pytest.raises(Sa2VADataError, match=r"refs\(umd\)\.p: record 1 \(ref_id 7\): ann_id 99"):
        RefCOCODataset(path, refcoco["instances"], refcoco["images"])
    with caplog.at_level(logging.WARNING):
        dataset = RefCOCODataset(path, refcoco["instances"], refcoco["images"], skip_bad_records=True)
    assert dataset.num_skipped == 1 and len(dataset) == 1
    assert sum("skipped 1 malformed" in r.message for r in caplog.records) == 1


def test_refcoco_missing_image_is_a_data_error(refcoco):
    (refcoco["images"] / "COCO_train2014_000000000002.jpg").unlink()
    dataset = RefCOCODataset(refcoco["refs"], refcoco["instances"], refcoco["images"])
    with pytest.raises(Sa2VADataError, match=r"image 2: cannot read image"):
        dataset[1]


def test_refcoco_refuses_code_in_pickle(refcoco):
    evil = refcoco["root"] / "evil.p"
    evil.write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")  # protocol 0: os.system("echo hacked")
    with pytest.raises(Sa2VADataError, match="os.system"):
        RefCOCODataset(evil, refcoco["instances"], refcoco["images"])


# --------------------------------------------------------------------------------------------------------------------
# Fine-tune example format
# --------------------------------------------------------------------------------------------------------------------


def test_finetune_all_objects_in_order(tmp_path):
    write_image(tmp_path / "images" / "a.jpg", W, H)
    records = [
        {"image": "a.jpg", "mask": [[SQUARE], [[0, 0, 4, 0, 4, 4, 0, 4]]], "text": ["A Dog.", "the ball"]},
        {"image": "a.jpg", "mask": [[SQUARE]], "text": ["x", "y"]},
    ]
    path = write_json(tmp_path / "annotations.json", records)
    with pytest.raises(Sa2VADataError, match=r"annotations\.json: record 1: .*must pair up"):
        FinetuneDataset(path, tmp_path / "images")
    dataset = FinetuneDataset(path, tmp_path / "images", skip_bad_records=True)
    assert dataset.num_skipped == 1
    sample = dataset[0]
    assert [_phrase_of(t.user) for t in sample.conversation] == ["a dog", "the ball"]
    assert [int(m.sum()) for m in sample.masks] == [100, 16]


# --------------------------------------------------------------------------------------------------------------------
# LLaVA
# --------------------------------------------------------------------------------------------------------------------


def test_llava_conversations(tmp_path):
    write_image(tmp_path / "coco" / "1.jpg", W, H)
    records = [
        {
            "id": "img",
            "image": "coco/1.jpg",
            "conversations": [
                {"from": "gpt", "value": "dropped leading answer"},
                {"from": "human", "value": "  What is this?\n<image>  "},
                {"from": "gpt", "value": " A grey square. "},
                {"from": "human", "value": "Part one. "},
                {"from": "human", "value": "Part two?"},
                {"from": "gpt", "value": "Yes."},
                {"from": "human", "value": "unanswered"},
            ],
        },
        {"id": "text", "conversations": [{"from": "human", "value": "<image>Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"id": "broken", "image": "coco/1.jpg"},
        {
            "id": "late-image",
            "image": "coco/1.jpg",
            "conversations": [
                {"from": "human", "value": "a"},
                {"from": "gpt", "value": "b"},
                {"from": "human", "value": "<image>\nc"},
                {"from": "gpt", "value": "d"},
            ],
        },
    ]
    path = write_json(tmp_path / "llava.json", records)
    with pytest.raises(Sa2VADataError, match=r"llava\.json: record 2 \(id 'broken'\): missing key \"conversations\""):
        LLaVADataset(path, tmp_path)
    dataset = LLaVADataset(path, tmp_path, skip_bad_records=True)
    assert dataset.num_skipped == 2 and len(dataset) == 2
    sample = dataset[0]
    assert [(t.user, t.assistant) for t in sample.conversation] == [
        ("What is this?\n<image>", "A grey square."),
        ("Part one. Part two?", "Yes."),
    ]
    assert sample.image.size == (W, H) and sample.masks == [] and sample.num_seg == 0
    text_only = dataset[1]
    assert text_only.image is None and text_only.frames is None
    assert [(t.user, t.assistant) for t in text_only.conversation] == [("Hi", "Hello")]
    assert len(LLaVADataset(path, tmp_path, skip_pure_text=True, skip_bad_records=True)) == 1
