"""Benchmark metrics: hand-computed cases, slow obvious re-implementations on random masks, exact shard merging."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from sa2va.errors import Sa2VAError, Sa2VAInputError
from sa2va.eval.metrics import (
    GCGScore,
    MissingDependencyError,
    ReferringSegmentationScore,
    ReVOSScore,
    VOSScore,
    _seg2bmap,
    boundary_tolerance,
    db_eval_boundary,
    db_eval_iou,
    disk,
    f_measure,
    gcg_mask_ap,
    gcg_miou,
    gcg_recall,
    intersection_and_union,
    jf_score,
    revos_accuracy,
    revos_robustness,
)

# --------------------------------------------------------------------------------------------------------------------
# Helpers: masks and slow, obvious reference implementations
# --------------------------------------------------------------------------------------------------------------------


def box(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def strip(start: int, stop: int, length: int = 40) -> np.ndarray:
    """A ``(1, length)`` mask covering ``[start, stop)``: IoUs of strips are interval ratios."""
    mask = np.zeros((1, length), dtype=bool)
    mask[0, start:stop] = True
    return mask


def random_masks(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """A mix of blobs (union of random boxes), speckle noise, empty and full masks: ``(count, height, width)``."""
    masks = np.zeros((count, height, width), dtype=bool)
    for i in range(count):
        kind = i % 5
        if kind == 0:
            continue  # empty
        if kind == 1:
            masks[i] = rng.random((height, width)) < 0.3
        elif kind == 4 and i % 10 == 4:
            masks[i] = True
        else:
            for _ in range(rng.integers(1, 4)):
                top, left = rng.integers(0, height), rng.integers(0, width)
                masks[i, top : top + rng.integers(1, height), left : left + rng.integers(1, width)] = True
    return masks


def slow_bmap(seg: np.ndarray) -> np.ndarray:
    """DAVIS boundary pixels by the definition, one pixel at a time."""
    h, w = seg.shape
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                out[y, x] = seg[y, x] != seg[y, x + 1]
            elif x == w - 1:
                out[y, x] = seg[y, x] != seg[y + 1, x]
            else:
                out[y, x] = seg[y, x] != seg[y, x + 1] or seg[y, x] != seg[y + 1, x] or seg[y, x] != seg[y + 1, x + 1]
    return out


def slow_f(gt: np.ndarray, pred: np.ndarray, bound_th: float) -> float:
    """Boundary F with brute-force nearest-boundary search: a boundary pixel matches when one of the other mask's
    boundary pixels lies at Euclidean distance <= the tolerance radius."""
    h, w = gt.shape
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.sqrt(h * h + w * w))
    gt_pts = np.argwhere(slow_bmap(gt)).astype(np.int64)
    pred_pts = np.argwhere(slow_bmap(pred)).astype(np.int64)
    if len(gt_pts) == 0 and len(pred_pts) == 0:
        return 1.0
    if len(pred_pts) == 0 or len(gt_pts) == 0:
        return 0.0  # one of P, R is 0 and the other 1
    sq_dist = ((pred_pts[:, None, :] - gt_pts[None, :, :]) ** 2).sum(-1)  # (n_pred, n_gt)
    precision = np.mean(sq_dist.min(axis=1) <= radius**2)
    recall = np.mean(sq_dist.min(axis=0) <= radius**2)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def slow_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = sum(bool(x and y) for x, y in zip(a.ravel(), b.ravel()))
    union = sum(bool(x or y) for x, y in zip(a.ravel(), b.ravel()))
    return 1.0 if union == 0 else inter / union


def equal_text(gt: list[str], pred: list[str]) -> np.ndarray:
    return np.array([[1.0 if g == p else 0.0 for p in pred] for g in gt]).reshape(len(gt), len(pred))


def never_called(gt: list[str], pred: list[str]) -> np.ndarray:
    raise AssertionError("text_similarity should not be called")


# --------------------------------------------------------------------------------------------------------------------
# RefCOCO: cIoU / gIoU
# --------------------------------------------------------------------------------------------------------------------


def test_ciou_and_giou_differ_on_crafted_set():
    score = ReferringSegmentationScore()
    big = box(20, 20, 0, 0, 10, 10)  # 100 px
    assert score.add(big, big) == 1.0
    small_gt = box(20, 20, 15, 15, 17, 17)  # 4 px
    assert score.add(box(20, 20, 18, 18, 20, 20), small_gt) == 0.0  # disjoint 4 px
    # cIoU is dominated by the big object, gIoU weighs both sentences equally.
    assert score.ciou == pytest.approx(100 / 108)
    assert score.giou == pytest.approx(0.5)
    # Empty prediction on an empty target: IoU 1 for gIoU, nothing for cIoU's sums.
    empty = np.zeros((20, 20), dtype=bool)
    assert score.add(empty, empty) == 1.0
    assert score.count == 3
    assert (score.intersection, score.union) == (100, 108)
    assert score.ciou == pytest.approx(100 / 108)
    assert score.giou == pytest.approx(2 / 3)


def test_referring_score_edge_cases():
    score = ReferringSegmentationScore()
    assert math.isnan(score.ciou) and math.isnan(score.giou)
    empty = np.zeros((4, 4), dtype=np.uint8)
    score.add(empty, empty)
    assert score.ciou == 0.0 and score.giou == 1.0  # every union empty: the reference's 0 / (0 + 1e-10)
    assert intersection_and_union(np.array([[2, 0], [1, 1]]), np.array([[1, 1], [0, 1]])) == (2, 4)
    with pytest.raises(Sa2VAInputError):
        score.add(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(Sa2VAInputError):
        score.add(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))
    with pytest.raises(Sa2VAInputError):
        score.add_counts(5, 3)


def test_referring_score_random_against_slow_and_merge_is_exact():
    rng = np.random.default_rng(0)
    preds, gts = random_masks(rng, 30, 9, 11), random_masks(rng, 30, 9, 11)[::-1]
    single = ReferringSegmentationScore()
    for p, g in zip(preds, gts):
        assert single.add(p, g) == pytest.approx(slow_iou(p, g))
    inter = sum(int((p & g).sum()) for p, g in zip(preds, gts))
    union = sum(int((p | g).sum()) for p, g in zip(preds, gts))
    assert single.ciou == inter / union
    assert single.giou == pytest.approx(np.mean([slow_iou(p, g) for p, g in zip(preds, gts)]))

    shards = [ReferringSegmentationScore() for _ in range(3)]
    for i, (p, g) in enumerate(zip(preds, gts)):
        shards[(i * 7) % 3].add(p, g)
    merged = ReferringSegmentationScore()
    for shard in (shards[2], shards[0], shards[1]):
        merged.merge(shard)
    assert merged.count == single.count
    assert merged.ciou == single.ciou  # bit for bit
    assert merged.giou == single.giou


# --------------------------------------------------------------------------------------------------------------------
# VOS: J and F
# --------------------------------------------------------------------------------------------------------------------


def test_j_hand_cases():
    empty = np.zeros((1, 6, 6), dtype=bool)
    full = np.ones((1, 6, 6), dtype=bool)
    assert db_eval_iou(empty, empty).tolist() == [1.0]
    assert db_eval_iou(full, empty).tolist() == [0.0]
    assert db_eval_iou(empty, full).tolist() == [0.0]
    gt = box(6, 6, 0, 0, 2, 6)[None]  # 12 px
    pred = box(6, 6, 0, 0, 3, 6)[None]  # 18 px
    assert db_eval_iou(gt, pred).tolist() == [12 / 18]
    assert db_eval_iou(np.stack([gt[0], empty[0]]), np.stack([pred[0], empty[0]])).tolist() == [12 / 18, 1.0]
    with pytest.raises(Sa2VAInputError):
        db_eval_iou(gt[0], pred[0])  # needs (num_frames, height, width)
    with pytest.raises(Sa2VAInputError):
        jf_score(np.zeros((0, 6, 6)), np.zeros((0, 6, 6)))


def test_f_empty_mask_rules():
    empty = np.zeros((1, 10, 10), dtype=bool)
    square = box(10, 10, 2, 2, 6, 6)[None]
    assert db_eval_boundary(empty, empty).tolist() == [1.0]  # P = R = 1
    assert db_eval_boundary(square, empty).tolist() == [0.0]  # P = 1, R = 0
    assert db_eval_boundary(empty, square).tolist() == [0.0]  # P = 0, R = 1
    assert jf_score(empty, empty) == (1.0, 1.0)
    assert jf_score(square, empty) == (0.0, 0.0)
    # A full frame has no boundary (the right/bottom edges are not boundaries): same as empty.
    full = np.ones((1, 10, 10), dtype=bool)
    assert db_eval_boundary(full, empty).tolist() == [1.0]


def test_disk_matches_skimage():
    assert disk(0).tolist() == [[1]]
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(2).tolist() == [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]
    assert disk(3).tolist() == [
        [0, 0, 0, 1, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 0, 0, 1, 0, 0, 0],
    ]
    assert disk(np.ceil(2.3)).tolist() == disk(3).tolist()  # the reference passes a float radius
    assert disk(5).dtype == np.uint8 and disk(5).shape == (11, 11)


def test_seg2bmap_hand_case():
    seg = box(4, 4, 1, 1, 3, 3)
    expected = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(_seg2bmap(seg), expected)


def test_boundary_tolerance():
    assert boundary_tolerance(100, 100) == 2.0  # ceil(0.008 * 141.4)
    assert boundary_tolerance(480, 854) == 8.0  # ceil(0.008 * 979.6), a DAVIS frame
    assert boundary_tolerance(480, 854, bound_th=3) == 3.0  # >= 1: pixels


@pytest.mark.parametrize("shift, expected_perfect", [(0, True), (1, True), (2, True), (3, False), (5, False)])
def test_f_tolerance_shift(shift: int, expected_perfect: bool):
    gt = box(100, 100, 30, 30, 60, 60)[None]
    pred = box(100, 100, 30, 30 + shift, 60, 60 + shift)[None]
    f = float(db_eval_boundary(gt, pred)[0])
    assert (f == 1.0) is expected_perfect
    assert f == pytest.approx(slow_f(gt[0], pred[0], 0.008))
    if not expected_perfect:
        assert 0.0 < f < 1.0  # the horizontal edges still match


def test_f_and_j_random_against_slow():
    rng = np.random.default_rng(1)
    gts, preds = random_masks(rng, 20, 17, 23), random_masks(rng, 20, 17, 23)
    preds[::3] = gts[::3] ^ (rng.random(gts[::3].shape) < 0.05)  # near misses
    np.testing.assert_array_equal(_seg2bmap(gts[1]), slow_bmap(gts[1]))
    for g in gts[:6]:
        np.testing.assert_array_equal(_seg2bmap(g), slow_bmap(g))
    for bound_th in (0.008, 0.1, 2):
        fast = db_eval_boundary(gts, preds, bound_th=bound_th)
        slow = [slow_f(g, p, bound_th) for g, p in zip(gts, preds)]
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
        assert f_measure(gts[3], preds[3], bound_th) == fast[3]
    np.testing.assert_allclose(db_eval_iou(gts, preds), [slow_iou(g, p) for g, p in zip(gts, preds)], atol=1e-12)
    j, f = jf_score(gts, preds)
    assert j == pytest.approx(np.mean([slow_iou(g, p) for g, p in zip(gts, preds)]))
    assert f == pytest.approx(np.mean([slow_f(g, p, 0.008) for g, p in zip(gts, preds)]))


def test_vos_score_and_exact_merge():
    score = VOSScore()
    score.add_scores(1.0, 1.0)
    score.add_scores(0.0, 0.5)
    assert (score.j, score.f, score.jf) == (50.0, 75.0, 62.5)
    assert math.isnan(VOSScore().jf)
    with pytest.raises(Sa2VAInputError):
        score.add_scores(1.5, 0.0)

    rng = np.random.default_rng(2)
    values = rng.random((101, 2))
    single = VOSScore()
    shards = [VOSScore() for _ in range(4)]
    for j, f in values:
        single.add_scores(j, f)
        shards[rng.integers(0, 4)].add_scores(j, f)
    merged = VOSScore()
    for shard in shards[::-1]:
        merged.merge(shard)
    assert merged.count == 101
    assert (merged.j, merged.f, merged.jf) == (single.j, single.f, single.jf)

    gt = box(8, 8, 1, 1, 5, 5)[None].repeat(3, axis=0)
    video = VOSScore()
    assert video.add(gt, gt) == (1.0, 1.0)
    assert video.j_values == (1.0,) and video.f_values == (1.0,)


# --------------------------------------------------------------------------------------------------------------------
# ReVOS: A and R
# --------------------------------------------------------------------------------------------------------------------


def test_revos_accuracy_and_robustness_hand_cases():
    gt = box(5, 4, 0, 0, 2, 2)[None]  # 4 px of 20
    pred = box(5, 4, 0, 0, 2, 3)[None]  # the 4 px + 2 false positives
    foreground = box(5, 4, 0, 0, 5, 2)[None]  # 10 px
    assert revos_accuracy(gt, pred).tolist() == [18 / 20]
    assert revos_robustness(gt, pred, foreground)[0] == pytest.approx(0.8)
    empty = np.zeros_like(gt)
    assert revos_robustness(gt, gt, empty).tolist() == [1.0]  # no foreground, no false positives
    assert revos_robustness(gt, pred, empty).tolist() == [0.0]  # no foreground, some false positives
    assert revos_robustness(empty, np.ones_like(gt), foreground).tolist() == [0.0]  # clipped at 0
    assert revos_accuracy(empty, empty).tolist() == [1.0]


def test_revos_score_groups_rounding_and_merge():
    score = ReVOSScore()
    score.add_scores(0.123456, 1.0, 1.0, 1.0, type_id=0)  # J rounds to 12.35 per expression
    score.add_scores(0.5, 0.5, 0.5, 0.5, type_id=1)
    score.add_scores(0.7, 0.7, 0.7, 0.7, type_id=1)
    score.add_scores(0.0, 0.0, 0.0, 0.0, type_id=2)  # neither group
    result = score.result()
    assert result.referring.j == 12.35 and result.referring.count == 1
    assert result.referring.jf == pytest.approx((12.35 + 100) / 2)
    assert result.reasoning.j == pytest.approx(60.0) and result.reasoning.count == 2
    # overall = average of the two groups, not the pooled mean over the three expressions
    assert result.overall.j == pytest.approx((12.35 + 60) / 2)
    assert result.overall.a == pytest.approx((100 + 60) / 2)
    assert result.overall.jf == pytest.approx((result.referring.jf + result.reasoning.jf) / 2)
    assert result.overall.count == 3
    unrounded = ReVOSScore(reference_rounding=False)
    unrounded.add_scores(0.123456, 1.0, 1.0, 1.0, type_id=0)
    assert unrounded.result().referring.j == pytest.approx(12.3456)
    assert math.isnan(unrounded.result().overall.j)  # no reasoning expression
    with pytest.raises(Sa2VAInputError):
        score.merge(unrounded)

    rng = np.random.default_rng(3)
    single, shards = ReVOSScore(), [ReVOSScore(), ReVOSScore()]
    for i in range(60):
        row = (*rng.random(4), int(rng.integers(0, 2)))
        single.add_scores(*row)
        shards[i % 2].add_scores(*row)
    merged = ReVOSScore()
    merged.merge(shards[1])
    merged.merge(shards[0])
    assert merged.result() == single.result()


def test_revos_add_from_masks():
    gt = box(6, 6, 1, 1, 4, 4)[None].repeat(2, axis=0)
    fg = box(6, 6, 0, 0, 6, 3)[None].repeat(2, axis=0) | gt
    score = ReVOSScore()
    expr = score.add(gt, gt, fg, type_id=1)
    assert (expr.j, expr.f, expr.a, expr.r, expr.type_id) == (1.0, 1.0, 1.0, 1.0, 1)
    assert score.expressions == (expr,)


# --------------------------------------------------------------------------------------------------------------------
# GCG: mIoU, recall, mask AP
# --------------------------------------------------------------------------------------------------------------------


def reference_style_miou(preds: list[np.ndarray], gts: list[np.ndarray]) -> float:
    """The greedy procedure written the obvious way: delete the matched row and column each round."""
    matrix = np.array([[slow_iou(p, g) for g in gts] for p in preds]).reshape(len(preds), len(gts))
    paired = []
    while matrix.size > 0 and matrix.max() > 0:
        i, k = np.unravel_index(np.argmax(matrix), matrix.shape)
        paired.append(matrix[i, k])
        matrix = np.delete(np.delete(matrix, i, axis=0), k, axis=1)
    return float(np.mean(paired)) if paired else 0.0


def test_gcg_miou_hand_cases():
    gt0, gt1 = strip(0, 10), strip(20, 30)
    assert gcg_miou([gt0, strip(35, 40)], [gt0, gt1]) == 1.0  # extra prediction and missed GT cost nothing
    assert gcg_miou([gt0, strip(0, 8)], [gt0, gt1]) == 1.0  # one-to-one: strip(0, 8) cannot reuse gt0
    assert gcg_miou([strip(0, 8), gt0, strip(20, 25)], [gt0, gt1]) == pytest.approx((1.0 + 0.5) / 2)
    assert gcg_miou([], [gt0]) == 0.0
    assert gcg_miou(np.zeros((0, 1, 40), dtype=bool), [gt0]) == 0.0
    assert gcg_miou([strip(30, 40)], [gt0]) == 0.0  # only zero IoUs
    # Greedy, not optimal: taking the best pair first leaves 0 for the rest.
    assert gcg_miou([strip(0, 12), strip(5, 10)], [strip(0, 10), strip(10, 20)]) == 10 / 12
    # An empty prediction against an empty GT (IoU 0/0) stops the reference's matching before it starts.
    assert gcg_miou([gt0, strip(0, 0)], [gt0, strip(0, 0)]) == 0.0
    with pytest.raises(Sa2VAInputError):
        gcg_miou([gt0], [np.zeros((2, 40), dtype=bool)])
    with pytest.raises(Sa2VAInputError):
        gcg_miou([gt0, strip(0, 3, length=30)], [gt0])


def test_gcg_miou_random_against_delete_procedure():
    rng = np.random.default_rng(4)
    for trial in range(40):
        preds = list(random_masks(rng, int(rng.integers(0, 5)), 6, 7)[::-1] | (rng.random((1, 6, 7)) < 0.2))
        gts = list(random_masks(rng, int(rng.integers(1, 5)) + 1, 6, 7)[1:])
        assert gcg_miou(preds, gts) == pytest.approx(reference_style_miou(preds, gts), abs=1e-12), trial


def test_gcg_recall_hand_cases():
    gt0, gt1 = strip(0, 10), strip(20, 30)
    gts, gt_phrases = [gt0, gt1], ["cat", "dog"]
    assert gcg_recall([gt1, gt0], ["dog", "cat"], gts, gt_phrases, equal_text) == (2, 2)
    assert gcg_recall([strip(0, 4)], ["cat"], gts, gt_phrases, equal_text) == (0, 2)  # IoU 0.4 < 0.5
    assert gcg_recall([strip(0, 4)], ["cat"], gts, gt_phrases, equal_text, iou_th=0.4) == (1, 2)
    # The best-IoU pair has the wrong phrase: the greedy search stops there, the second pair is never tried.
    assert gcg_recall([gt0, gt1], ["dog", "dog"], gts, gt_phrases, equal_text) == (0, 2)
    # ... while a wrong phrase on a lower-IoU pair only loses that pair.
    assert gcg_recall([gt0, strip(20, 28)], ["cat", "cow"], gts, gt_phrases, equal_text) == (1, 2)
    # More masks than phrases and the chosen pair has none: the reference's per-image error path, 0 matched.
    assert gcg_recall([strip(20, 29), gt0], ["dog"], gts, gt_phrases, equal_text) == (0, 2)
    # ... but fewer phrases is harmless when the chosen pairs have phrases.
    assert gcg_recall([gt0, strip(30, 40)], ["cat"], gts, gt_phrases, equal_text) == (1, 2)
    assert gcg_recall([], [], gts, gt_phrases, never_called) == (0, 2)
    assert gcg_recall([gt0], ["cat"], [], [], never_called) == (0, 0)
    with pytest.raises(Sa2VAInputError):
        gcg_recall([gt0], ["cat"], gts, gt_phrases, lambda g, p: np.ones((1, 1)))
    with pytest.raises(Sa2VAInputError):
        gcg_recall([gt0], ["cat"], gts, gt_phrases, equal_text, iou_th=0.0)


def test_gcg_score_and_merge():
    gt0, gt1 = strip(0, 10), strip(20, 30)
    score = GCGScore()
    assert score.miou == 0.0 and score.recall == 0.0
    image = score.add([gt0, strip(20, 25)], ["cat", "dog"], [gt0, gt1], ["cat", "dog"], equal_text)
    assert (image.miou, image.matched, image.total) == (0.75, 2, 2)  # IoU 0.5 reaches iou_th=0.5
    score.add_scores(0.25, 1, 3)
    assert score.miou == 0.5 and score.recall == 3 / 5 and score.count == 2

    rng = np.random.default_rng(5)
    rows = [(float(rng.random()), int(m), int(m + rng.integers(0, 3))) for m in rng.integers(0, 4, 50)]
    single, shards = GCGScore(), [GCGScore() for _ in range(3)]
    for i, row in enumerate(rows):
        single.add_scores(*row)
        shards[i % 3].add_scores(*row)
    merged = GCGScore()
    for shard in (shards[1], shards[2], shards[0]):
        merged.merge(shard)
    assert (merged.miou, merged.recall, merged.count) == (single.miou, single.recall, single.count)


def test_gcg_mask_ap_without_pycocotools(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match="pip install pycocotools") as info:
        gcg_mask_ap([[strip(0, 10)]], [[strip(0, 10)]])
    assert isinstance(info.value, ImportError) and isinstance(info.value, Sa2VAError)


def test_gcg_mask_ap_with_pycocotools():
    pytest.importorskip("pycocotools")
    gt_a = [box(32, 32, 0, 0, 16, 16), box(32, 32, 20, 20, 30, 30)]
    gt_b = [box(32, 32, 5, 5, 25, 25)]
    perfect = gcg_mask_ap([gt_a, gt_b], [gt_a, gt_b])
    assert perfect.ap == pytest.approx(1.0) and perfect.ap50 == pytest.approx(1.0)
    # Image b misses its object and image a adds a false positive: AP50 drops below 1.
    worse = gcg_mask_ap([[*gt_a, box(32, 32, 0, 20, 5, 32)], []], [gt_a, gt_b])
    assert 0.0 < worse.ap50 < 1.0
    with pytest.raises(Sa2VAInputError):
        gcg_mask_ap([gt_a], [gt_a, gt_b])
