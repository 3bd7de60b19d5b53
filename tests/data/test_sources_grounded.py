"""GCG (GranDf / OpenPSG / RefCOCOg-GCG / Flickr30k-GCG) and Osprey visual-prompt readers on tiny real-format
fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sa2va.data.sources import GCGDataset, OspreyDataset, Sa2VADataError
from sa2va.data.sources_vp import region_cell_count
from sa2va.data.templates import GCG_QUESTIONS, SHORT_ANSWER_LIMIT, VP_QUESTIONS, tag_caption
from tests.data.fixtures import SQUARE, rle, square_mask, write_image, write_json

H, W = 36, 40


def _question_ok(user: str) -> bool:
    return user.startswith("<image>\n") and user.removeprefix("<image>\n") in GCG_QUESTIONS


def test_tag_caption_right_to_left():
    caption = "A man and a dog."
    spans = [(0, 5), (10, 15)]
    assert tag_caption(caption, spans) == "<p> A man </p> [SEG] and <p> a dog </p> [SEG]."


@pytest.mark.parametrize("variant", ["grandf", "psg"])
def test_gcg_generic_layout(tmp_path, variant):
    write_image(tmp_path / "img" / "a.jpg", W, H)
    caption = "A man and a dog."
    dog_a, dog_b = square_mask(H, W, 20, 20, 4), square_mask(H, W, 30, 20, 2)
    records = [
        {
            "file_name": "a.jpg",
            "caption": f'"{caption}"',
            "groundings": {  # listed out of order: masks follow the span order
                "a dog": {"token_positives": [10, 15], "rle_masks": [rle(dog_a), rle(dog_b, compress=False)]},
                "A man": {"token_positives": [0, 5], "rle_masks": [rle(square_mask(H, W, 0, 0, 10))]},
            },
        },
        {"file_name": "a.jpg", "caption": "nothing grounded", "groundings": {}},
        {"file_name": "a.jpg", "caption": "bad", "groundings": {"x": {"token_positives": [3, 1], "rle_masks": []}}},
    ]
    path = write_json(tmp_path / "gcg.json", records)
    with pytest.raises(Sa2VADataError, match=r"gcg\.json: record 2: a character span"):
        GCGDataset(path, tmp_path / "img", variant=variant)
    dataset = GCGDataset(path, tmp_path / "img", variant=variant, skip_bad_records=True)
    assert len(dataset) == 1 and dataset.num_skipped == 1 and dataset.num_filtered == 1
    sample = dataset[0]
    (turn,) = sample.conversation
    assert _question_ok(turn.user)
    assert turn.assistant == "<p> A man </p> [SEG] and <p> a dog </p> [SEG]."
    assert sample.num_seg == len(sample.masks) == 2
    assert sample.masks[0].sum() == 100 and np.array_equal(sample.masks[1], dog_a | dog_b)


def test_gcg_refcocog_layout(tmp_path):
    write_image(tmp_path / "img" / "COCO_train2014_1.jpg", W, H)
    records = [
        {
            "1_ref": {
                "img_file_name": "COCO_train2014_1.jpg",
                "caption": "A Man riding a horse.",
                "refs": [
                    {"sentence": "a horse", "segmentation": [[20, 20, 30, 20, 30, 30, 20, 30]]},
                    {"sentence": "A man", "segmentation": [SQUARE]},
                    {"sentence": "not in the caption", "segmentation": [SQUARE]},
                ],
            }
        }
    ]
    dataset = GCGDataset(
        write_json(tmp_path / "RefCOCOg_GCG_train.json", records), tmp_path / "img", variant="refcocog"
    )
    sample = dataset[0]
    assert sample.conversation[0].assistant == "<p> a man </p> [SEG] riding <p> a horse </p> [SEG]."
    assert [int(m.sum()) for m in sample.masks] == [100, 100]
    assert sample.masks[0][5:15, 5:15].all() and sample.masks[1][20:30, 20:30].all()


def test_gcg_flickr_layout(tmp_path):
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        write_image(tmp_path / "img" / name, W, H)
    caption = "A man rides a horse"
    man, horse = square_mask(H, W, 0, 0, 5), square_mask(H, W, 10, 10, 6)

    def ann(i, image_id, span, mask, **extra):
        return {"id": i, "image_id": image_id, "bbox": [0, 0, 10, 10], "area": 50, "tokens_positive": [span],
                "sam_mask": rle(mask), **extra}  # fmt: skip

    data = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "caption": caption, "height": H, "width": W},
            {"id": 2, "file_name": "2.jpg", "caption": "two words", "height": H, "width": W},
            {"id": 3, "file_name": "3.jpg", "caption": caption, "height": 20, "width": W},
        ],
        "annotations": [
            ann(1, 1, [12, 19], horse),
            ann(2, 1, [0, 5], man),
            ann(3, 1, [6, 11], man, ignore=True),
            ann(4, 1, [6, 11], man, area=0),
            ann(5, 2, [0, 3], man),
            ann(6, 3, [0, 5], man),
        ],
    }
    dataset = GCGDataset(write_json(tmp_path / "flickr.json", data), tmp_path / "img", variant="flickr30k")
    assert len(dataset) == 1 and dataset.num_filtered == 2  # short caption, image under 32 px
    sample = dataset[0]
    assert sample.conversation[0].assistant == "<p> A man </p> [SEG] rides <p> a horse </p> [SEG]"
    assert np.array_equal(sample.masks[0], man) and np.array_equal(sample.masks[1], horse)
    a, b = GCGDataset(tmp_path / "flickr.json", tmp_path / "img", variant="flickr", seed=5), dataset
    assert a[0].conversation[0].assistant == b[0].conversation[0].assistant


# --------------------------------------------------------------------------------------------------------------------
# Osprey
# --------------------------------------------------------------------------------------------------------------------


def _torch_cells(mask: np.ndarray) -> int:
    return int(F.interpolate(torch.from_numpy(mask).float()[None, None], size=(16, 16), mode="nearest").bool().sum())


def test_region_cell_count_matches_torch_nearest():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = int(rng.integers(16, 90)), int(rng.integers(16, 90))
        mask = rng.random((h, w)) < 0.1
        assert region_cell_count(rle(mask), h, w) == _torch_cells(mask)
        x, y = rng.uniform(0, w, 4), rng.uniform(0, h, 4)
        polygon = [float(v) for pair in zip(x, y) for v in pair]
        from sa2va.data.coco_masks import polygons_to_mask

        assert region_cell_count([polygon], h, w) == _torch_cells(polygons_to_mask([polygon], h, w))


@pytest.fixture
def osprey(tmp_path: Path) -> dict[str, Path]:
    write_image(tmp_path / "train2017" / "a.jpg", W, H)
    big = [[0, 0, 20, 0, 20, 18, 0, 18]]
    other = rle(square_mask(H, W, 20, 18, 20))
    tiny = [[1, 1, 2, 1, 2, 2, 1, 2]]  # one pixel: under 4 of the 16 x 16 cells
    conversation = [
        {"from": "human", "value": "What is <region1>?\n"},
        {"from": "gpt", "value": " A <b>box</b>. "},
        {"from": "human", "value": "And <region2>?"},
        {"from": "gpt", "value": "Grass."},
    ]
    base = {"file_name": "a.jpg", "height": H, "width": W}
    records = [
        {**base, "annotation": [{"segmentation": big}, {"segmentation": other}], "conversations": conversation},
        {**base, "annotation": [{"segmentation": big}, {"segmentation": tiny}], "conversations": conversation},
        {**base, "annotation": [], "conversations": conversation},
    ]
    descriptions = [{**base, "annotation": [{"segmentation": big}, {"segmentation": other}],
                     "description": ["The <box>.", "Some grass."]}]  # fmt: skip
    return {
        "conv": write_json(tmp_path / "osprey_conversation.json", records),
        "desc": write_json(tmp_path / "osprey_detail_description.json", descriptions),
        "roots": [tmp_path / "train2014", tmp_path / "train2017"],
    }


def test_osprey_conversation(osprey):
    with pytest.raises(Sa2VADataError, match=r"osprey_conversation\.json: record 2: \"annotation\" holds no region"):
        OspreyDataset(osprey["conv"], osprey["roots"])
    dataset = OspreyDataset(osprey["conv"], osprey["roots"], skip_bad_records=True)
    assert len(dataset) == 1 and dataset.num_skipped == 1 and dataset.num_filtered == 1
    sample = dataset[0]
    assert [(t.user, t.assistant) for t in sample.conversation] == [
        ("<image>What is region1?", "A bbox/b."),
        ("And region2?", "Grass."),
    ]
    assert sample.masks == [] and sample.num_seg == 0
    assert sample.region_masks.shape == (2, H, W) and sample.region_masks.dtype == bool
    assert sample.region_masks[0].sum() == 20 * 18 and sample.region_masks[1].sum() == 20 * 18
    short = OspreyDataset(osprey["conv"], osprey["roots"], variant="short", skip_bad_records=True)[0]
    assert short.conversation[0].user == "<image>What is region1?\n" + SHORT_ANSWER_LIMIT
    assert short.conversation[1].user == "And region2?" + SHORT_ANSWER_LIMIT


def test_osprey_descriptions(osprey):
    dataset = OspreyDataset(osprey["desc"], osprey["roots"], variant="description", seed=2)
    sample = dataset[0]
    first, second = sample.conversation
    assert first.user.startswith("<image>") and first.assistant == "The box."
    asked = [first.user.removeprefix("<image>"), second.user]
    for k, question in enumerate(asked, start=1):
        assert question in [q.replace("<region>", f"region{k}") for q in VP_QUESTIONS]
    again = OspreyDataset(osprey["desc"], osprey["roots"], variant="description", seed=2)[0]
    assert [t.user for t in again.conversation] == [t.user for t in sample.conversation]


def test_osprey_missing_image(osprey, tmp_path):
    records = [{"file_name": "nope.jpg", "height": H, "width": W, "annotation": [{"segmentation": [SQUARE]}],
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]  # fmt: skip
    dataset = OspreyDataset(write_json(tmp_path / "x.json", records), osprey["roots"])
    with pytest.raises(Sa2VADataError, match=r"x\.json: record 0: image nope\.jpg is in none of the image folders"):
        dataset[0]
