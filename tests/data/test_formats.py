"""COCO polygon rasterisation (pycocotools parity), the restricted unpickler, and the template lists."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sa2va.data.coco_masks import polygons_to_mask, segmentation_to_mask
from sa2va.data.safe_pickle import UnsafePickleError, load_pickle, loads_pickle
from sa2va.data.templates import ANSWER_LIST, GCG_QUESTIONS, SEG_QUESTIONS, VP_QUESTIONS, referring_turns
from sa2va.errors import Sa2VAInputError
from sa2va.grounding.masks import mask_to_rle

# (polygon, height, width) -> compressed counts and area written by pycocotools 2.0 (frPyObjects + decode)
PYCOCOTOOLS_POLYGONS = [
    ([5, 5, 15, 5, 15, 15, 5, 15], 30, 40, "k4:d000000000000000000Yg0", 100),
    ([2.3, 1.7, 20.9, 4.2, 11.5, 18.8], 24, 32, "Z22f02N1O2N2O1N2N2N2NN2O1N2O2M2O1N2N2OU8", 147),
    ([0, 0, 31, 0, 31, 23, 0, 23], 24, 32, "0g0100000000000000000000000000000000000000000000000000000000000h0", 713),
    ([-2.5, 3.1, 10.2, -1.0, 14.7, 9.9, 6.0, 15.4, 1.1, 12.2], 16, 16, "2882N1N2O001N10O100O102M3M4M2M8", 160),
]


@pytest.mark.parametrize(("polygon", "height", "width", "counts", "area"), PYCOCOTOOLS_POLYGONS)
def test_polygon_matches_pycocotools_known_values(polygon, height, width, counts, area):
    mask = polygons_to_mask([polygon], height, width)
    assert mask.sum() == area
    assert mask_to_rle(mask, compress=True)["counts"] == counts


def test_polygon_union_and_box():
    two = polygons_to_mask([[5, 5, 15, 5, 15, 15, 5, 15], [10, 10, 20, 10, 20, 20, 10, 20]], 30, 40)
    assert two.sum() == 175  # pycocotools merge of the two squares
    box = polygons_to_mask([[2, 3, 4, 5]], 20, 20)  # 4 numbers: pycocotools reads an [x, y, w, h] box
    assert box.sum() == 20 and box[3:8, 2:6].all()


def test_polygon_matches_pycocotools_random():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = int(rng.integers(1, 80)), int(rng.integers(1, 80))
        polygon = [float(v) for v in rng.uniform(-3, max(h, w) + 3, size=2 * int(rng.integers(3, 15)))]
        expected = mask_utils.decode(mask_utils.frPyObjects([polygon], h, w)[0]).astype(bool)
        assert np.array_equal(polygons_to_mask([polygon], h, w), expected)


def test_malformed_segmentations():
    for bad in ([[1, 2, 3]], [[1, 2, 3, 4, 5, 6, 7]], [], [["a", 1, 2, 3, 4, 5]], {"size": [2, 2]}):
        with pytest.raises(Sa2VAInputError):
            segmentation_to_mask(bad, 10, 10)
    with pytest.raises(Sa2VAInputError, match="does not match the image size"):
        segmentation_to_mask(mask_to_rle(np.ones((3, 3), bool)), 10, 10)


# --------------------------------------------------------------------------------------------------------------------
# Restricted unpickler
# --------------------------------------------------------------------------------------------------------------------


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo hacked",))


def test_safe_pickle_loads_plain_data_in_every_protocol():
    data = [{"ref_id": 1, "sentences": [{"raw": "the cat", "tokens": ("the", "cat")}], "box": 1.5, "n": None,
             "tags": {1, 2}, "counts": b"k4:d0", "big": 2**70}]  # fmt: skip
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert loads_pickle(pickle.dumps(data, protocol=protocol)) == data
    # Python 2 `str` (REFER's refs(unc).p was written by Python 2) reads back as text
    assert loads_pickle(b"(lp0\n(dp1\nS'split'\np2\nS'train'\np3\nsa.") == [{"split": "train"}]


def test_safe_pickle_refuses_callables(tmp_path):
    payload = pickle.dumps(_Evil(), protocol=2)
    with pytest.raises(UnsafePickleError, match=r"(posix|nt|os)\.system"):
        loads_pickle(payload)
    (tmp_path / "evil.p").write_bytes(payload)
    with pytest.raises(UnsafePickleError, match="evil.p"):
        load_pickle(tmp_path / "evil.p")
    with pytest.raises(UnsafePickleError, match="numpy"):
        loads_pickle(pickle.dumps(np.zeros(3)))
    with pytest.raises(UnsafePickleError, match="_codecs.encode is only allowed"):
        # a hand-made protocol-2 pickle asking _codecs.encode for a non-latin-1 codec
        loads_pickle(b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(Sa2VAInputError, match="not a valid pickle"):
        loads_pickle(b"not a pickle")


# --------------------------------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------------------------------


def test_template_lists():
    assert len(SEG_QUESTIONS) == 16 and all(q.count("{class_name}") == 1 for q in SEG_QUESTIONS)
    assert SEG_QUESTIONS[6].endswith("segmentation mask?")  # the reference's typo is part of the training data
    assert ANSWER_LIST == ("It is [SEG].", "Sure, [SEG].", "Sure, it is [SEG].", "Sure, the segmentation result is [SEG].",
                           "[SEG].")  # fmt: skip
    assert len(GCG_QUESTIONS) == 6 and len(VP_QUESTIONS) == 18
    assert all(q.count("<region>") == 1 for q in VP_QUESTIONS)


def test_referring_turns_are_seeded():
    turns = referring_turns(["a", "b"], np.random.default_rng(0))
    assert turns[0].user.startswith("<image>\n") and not turns[1].user.startswith("<image>")
    assert turns == referring_turns(["a", "b"], np.random.default_rng(0))
