"""Evaluation metrics of the Sa2VA benchmarks, as the papers and the reference evaluation scripts compute them.

Everything here is plain numpy (plus ``cv2.dilate`` for boundaries); nothing needs torch or a GPU.

* **RefCOCO / RefCOCO+ / RefCOCOg** (:class:`ReferringSegmentationScore`): cIoU = Σ intersection / Σ union over all
  sentences; gIoU = mean per-sentence IoU, an empty union counting as 1.
* **Referring video object segmentation** (:func:`db_eval_iou`, :func:`db_eval_boundary`, :func:`jf_score`,
  :class:`VOSScore`): J = region IoU per frame, F = boundary F-measure per frame (DAVIS definition), both averaged
  over the frames of one expression, then over expressions, reported ×100 with J&F = (J + F) / 2.
* **ReVOS** (:func:`revos_accuracy`, :func:`revos_robustness`, :class:`ReVOSScore`): adds pixel accuracy A and
  robustness R, reported for referring (``type_id`` 0) and reasoning (``type_id`` 1) expressions and their average.
* **GCG** (:func:`gcg_miou`, :func:`gcg_recall`, :class:`GCGScore`, :func:`gcg_mask_ap`): greedy one-to-one mask
  matching; recall also needs phrase similarity, supplied by the caller as a function.

Masks are accepted as any array whose nonzero entries are foreground (converted with ``astype(bool)``, as the
reference does). Every accumulator has ``merge(other)`` for sharded runs: counts are Python ints and float sums are
taken with :func:`math.fsum` over the stored per-item values, which is correctly rounded and therefore independent of
order, so merging shards gives bit-for-bit the numbers of one process that saw every item, in any order.

Deliberate differences from the reference code, all far below the printed precision:

* RefCOCO: the reference divides by ``union + 1e-5`` in float32 and sums pixel counts in float32 (``AverageMeter``);
  here IoU is the exact ratio and counts are exact integers.
* Multi-object video expressions: the reference sums the instance masks into a uint8 array, so a pixel covered by two
  instances holds 2. J and F only look at ``!= 0`` and are unaffected; ReVOS A (``gt == pred``) and R
  (``(1 - gt) * pred`` wraps to 255 in uint8) would count such pixels as errors. Pass the union of the instances
  here; the numbers equal the reference's whenever instances do not overlap.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sa2va.errors import Sa2VAError, Sa2VAInputError

logger = logging.getLogger(__name__)

TextSimilarity = Callable[[list[str], list[str]], np.ndarray]
"""``(gt_phrases, pred_phrases) -> (num_gt, num_pred)`` float similarity matrix (the reference: cosine of mean
last-layer ``bert-base-uncased`` token embeddings)."""

REVOS_REFERRING = 0
REVOS_REASONING = 1
DEFAULT_BOUND_TH = 0.008


class MissingDependencyError(Sa2VAError, ImportError):
    """An optional package that one metric needs is not installed."""


# --------------------------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------------------------


def _masks(value: np.ndarray, dims: str, name: str) -> np.ndarray:
    """``value`` as a bool array with ``len(dims)`` axes; ``dims`` names them for the error message."""
    array = np.asarray(value)
    ndim = dims.count(",") + 1
    if array.ndim != ndim:
        raise Sa2VAInputError(
            f"{name} must be a mask array of shape {dims}, got shape {array.shape}; "
            f"pass nonzero = foreground with exactly {ndim} axes."
        )
    return array.astype(bool, copy=False)


def _same_shape(first: np.ndarray, second: np.ndarray, names: str) -> None:
    if first.shape != second.shape:
        raise Sa2VAInputError(
            f"{names} must have the same shape, got {first.shape} and {second.shape}; "
            "resize the prediction to the ground truth's size first."
        )


def _unit_score(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise Sa2VAInputError(f"{name} must be a score in [0, 1], got {value!r}.")
    return value


def _mean(values: Sequence[float]) -> float:
    """Correctly rounded mean (order-independent); NaN for no values."""
    return math.fsum(values) / len(values) if values else math.nan


# --------------------------------------------------------------------------------------------------------------------
# RefCOCO family: cIoU / gIoU
# --------------------------------------------------------------------------------------------------------------------


def intersection_and_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """Foreground intersection and union pixel counts of two masks.

    Args:
        pred: ``(height, width)`` predicted mask, nonzero = foreground.
        gt: ``(height, width)`` ground-truth mask.

    Returns:
        ``(intersection, union)`` as Python ints.
    """
    pred_b = _masks(pred, "(height, width)", "pred")
    gt_b = _masks(gt, "(height, width)", "gt")
    _same_shape(pred_b, gt_b, "pred and gt")
    return int(np.count_nonzero(pred_b & gt_b)), int(np.count_nonzero(pred_b | gt_b))


class ReferringSegmentationScore:
    """Accumulates cIoU and gIoU over referring sentences (one ``add`` per sentence).

    ``ciou`` = Σ intersection / Σ union (0 when every union is empty, like the reference's ``+ 1e-10`` guard);
    ``giou`` = mean of per-sentence IoUs where an empty union (empty prediction on empty target) counts 1. Both are
    fractions in [0, 1] (NaN before the first ``add``). Sums are exact integers and the per-sentence IoUs are kept
    in a list summed with :func:`math.fsum`, so :meth:`merge` of shards equals one single run bit for bit.
    """

    def __init__(self) -> None:
        self._intersection = 0
        self._union = 0
        self._ious: list[float] = []

    def add(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """Adds one sentence.

        Args:
            pred: ``(height, width)`` predicted mask (all zero when the model gave no ``[SEG]``).
            gt: ``(height, width)`` ground-truth mask of the referred object(s).

        Returns:
            This sentence's IoU.
        """
        return self.add_counts(*intersection_and_union(pred, gt))

    def add_counts(self, intersection: int, union: int) -> float:
        """Adds one sentence from its pixel counts (``0 <= intersection <= union``); returns its IoU."""
        intersection, union = int(intersection), int(union)
        if not 0 <= intersection <= union:
            raise Sa2VAInputError(f"need 0 <= intersection <= union, got {intersection} and {union}.")
        iou = intersection / union if union else 1.0
        self._intersection += intersection
        self._union += union
        self._ious.append(iou)
        return iou

    def merge(self, other: ReferringSegmentationScore) -> None:
        """Adds every sentence of ``other`` (another shard) to this accumulator."""
        self._intersection += other._intersection
        self._union += other._union
        self._ious.extend(other._ious)

    @property
    def count(self) -> int:
        """Number of sentences added."""
        return len(self._ious)

    @property
    def intersection(self) -> int:
        """Σ foreground intersection pixels."""
        return self._intersection

    @property
    def union(self) -> int:
        """Σ foreground union pixels."""
        return self._union

    @property
    def ious(self) -> tuple[float, ...]:
        """Per-sentence IoUs in the order added (shards in merge order)."""
        return tuple(self._ious)

    @property
    def ciou(self) -> float:
        """Cumulative IoU, a fraction in [0, 1]."""
        if not self._ious:
            return math.nan
        return self._intersection / self._union if self._union else 0.0

    @property
    def giou(self) -> float:
        """Mean per-sentence IoU, a fraction in [0, 1]."""
        return _mean(self._ious)


# --------------------------------------------------------------------------------------------------------------------
# Video object segmentation: J, F (DAVIS)
# --------------------------------------------------------------------------------------------------------------------


def db_eval_iou(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Region similarity J of every frame.

    Args:
        gt: ``(num_frames, height, width)`` ground-truth masks, nonzero = foreground.
        pred: ``(num_frames, height, width)`` predicted masks.

    Returns:
        ``(num_frames,)`` float64 IoUs; a frame where both masks are empty scores 1.
    """
    gt_b = _masks(gt, "(num_frames, height, width)", "gt")
    pred_b = _masks(pred, "(num_frames, height, width)", "pred")
    _same_shape(gt_b, pred_b, "gt and pred")
    inter = np.count_nonzero(gt_b & pred_b, axis=(1, 2))  # (num_frames,)
    union = np.count_nonzero(gt_b | pred_b, axis=(1, 2))
    return np.divide(inter, union, out=np.ones(len(union), dtype=np.float64), where=union > 0)


def disk(radius: float) -> np.ndarray:
    """Disk structuring element, equal to ``skimage.morphology.disk(radius)`` (strict radius).

    Args:
        radius: ``>= 0``; may be a float such as ``np.ceil``'s result, as the reference passes.

    Returns:
        ``(n, n)`` uint8, ``n = len(arange(-radius, radius + 1))``; 1 where ``x² + y² <= radius²``.
    """
    if not radius >= 0:
        raise Sa2VAInputError(f"disk radius must be >= 0, got {radius!r}.")
    offsets = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(offsets, offsets)
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def _seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a mask, as the DAVIS toolkit (after D. Martin's ``seg2bmap``) defines it.

    A pixel is a boundary pixel when it differs from its east, south or south-east neighbour; in the last row only
    the east neighbour and in the last column only the south neighbour are compared, and the bottom-right pixel is
    never a boundary. Boundaries thus sit half a pixel towards the origin from the true contour, and a mask touching
    the right/bottom image edge has no boundary along that edge.

    Args:
        seg: ``(height, width)`` mask, nonzero = foreground.

    Returns:
        ``(height, width)`` bool boundary map.
    """
    seg = _masks(seg, "(height, width)", "seg")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_tolerance(height: int, width: int, bound_th: float = DEFAULT_BOUND_TH) -> float:
    """Boundary match radius in pixels: ``bound_th`` itself when ``>= 1``, else ``ceil(bound_th · diagonal)``."""
    if bound_th >= 1:
        return float(bound_th)
    return float(np.ceil(bound_th * np.linalg.norm((height, width))))


def f_measure(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> float:
    """Boundary F-measure of one frame.

    Boundary pixels of each mask (:func:`_seg2bmap`) count as matched when a boundary pixel of the other mask lies
    within the disk of radius :func:`boundary_tolerance`. Precision = matched predicted / predicted boundary pixels,
    recall = matched GT / GT boundary pixels, except: no predicted but some GT boundary → P=1, R=0; predicted but no
    GT boundary → P=0, R=1; neither → P=R=1. F = 2PR / (P + R), 0 when P + R = 0.

    Args:
        gt: ``(height, width)`` ground-truth mask.
        pred: ``(height, width)`` predicted mask.
        bound_th: tolerance as a fraction of the image diagonal (``< 1``) or in pixels (``>= 1``).

    Returns:
        F in [0, 1].
    """
    gt_b = _masks(gt, "(height, width)", "gt")
    pred_b = _masks(pred, "(height, width)", "pred")
    _same_shape(gt_b, pred_b, "gt and pred")
    kernel = disk(boundary_tolerance(*pred_b.shape, bound_th=bound_th))
    pred_boundary = _seg2bmap(pred_b)
    gt_boundary = _seg2bmap(gt_b)
    pred_dilated = cv2.dilate(pred_boundary.astype(np.uint8), kernel).astype(bool)
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), kernel).astype(bool)
    n_pred = int(np.count_nonzero(pred_boundary))
    n_gt = int(np.count_nonzero(gt_boundary))
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = np.count_nonzero(pred_boundary & gt_dilated) / float(n_pred)
        recall = np.count_nonzero(gt_boundary & pred_dilated) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def db_eval_boundary(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> np.ndarray:
    """Boundary F-measure (:func:`f_measure`) of every frame.

    Args:
        gt: ``(num_frames, height, width)`` ground-truth masks.
        pred: ``(num_frames, height, width)`` predicted masks.
        bound_th: see :func:`f_measure`.

    Returns:
        ``(num_frames,)`` float64.
    """
    gt_b = _masks(gt, "(num_frames, height, width)", "gt")
    pred_b = _masks(pred, "(num_frames, height, width)", "pred")
    _same_shape(gt_b, pred_b, "gt and pred")
    return np.array([f_measure(g, p, bound_th) for g, p in zip(gt_b, pred_b)], dtype=np.float64)


def jf_score(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> tuple[float, float]:
    """J and F of one expression: per-frame scores averaged over its frames.

    Args:
        gt: ``(num_frames, height, width)`` ground truth (multi-object expressions: the union of the objects).
        pred: ``(num_frames, height, width)`` prediction (all zero when the model gave no ``[SEG]``).
        bound_th: see :func:`f_measure`.

    Returns:
        ``(J, F)``, fractions in [0, 1].
    """
    if len(gt) == 0:
        raise Sa2VAInputError("an expression needs at least one frame; got gt with 0 frames.")
    return float(db_eval_iou(gt, pred).mean()), float(db_eval_boundary(gt, pred, bound_th).mean())


class VOSScore:
    """Dataset J, F and J&F over expressions (Ref-DAVIS17, MeViS, Ref-YTVOS; ``tools/eval/eval_davis.py``).

    ``j``/``f`` = 100 × mean over expressions of the per-expression J/F; ``jf`` = 100 × (mean J + mean F) / 2; NaN
    before the first expression. The reference rounds the three to 2 decimals only when writing its JSON; these are
    unrounded. Means use :func:`math.fsum`, so :meth:`merge` of shards equals one single run bit for bit.
    """

    def __init__(self) -> None:
        self._j: list[float] = []
        self._f: list[float] = []

    def add(self, gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> tuple[float, float]:
        """Scores and adds one expression (arguments as :func:`jf_score`); returns its ``(J, F)`` in [0, 1]."""
        j, f = jf_score(gt, pred, bound_th)
        self.add_scores(j, f)
        return j, f

    def add_scores(self, j: float, f: float) -> None:
        """Adds one expression's precomputed J and F (fractions in [0, 1])."""
        self._j.append(_unit_score(j, "J"))
        self._f.append(_unit_score(f, "F"))

    def merge(self, other: VOSScore) -> None:
        """Adds every expression of ``other`` (another shard)."""
        self._j.extend(other._j)
        self._f.extend(other._f)

    @property
    def count(self) -> int:
        """Number of expressions added."""
        return len(self._j)

    @property
    def j_values(self) -> tuple[float, ...]:
        """Per-expression J in [0, 1], in the order added."""
        return tuple(self._j)

    @property
    def f_values(self) -> tuple[float, ...]:
        """Per-expression F in [0, 1], in the order added."""
        return tuple(self._f)

    @property
    def j(self) -> float:
        """Dataset J ×100."""
        return 100 * _mean(self._j)

    @property
    def f(self) -> float:
        """Dataset F ×100."""
        return 100 * _mean(self._f)

    @property
    def jf(self) -> float:
        """Dataset J&F ×100."""
        return 100 * ((_mean(self._j) + _mean(self._f)) / 2)


# --------------------------------------------------------------------------------------------------------------------
# ReVOS: accuracy A and robustness R
# --------------------------------------------------------------------------------------------------------------------


def revos_accuracy(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Pixel accuracy A of every frame: the fraction of pixels where prediction and ground truth agree.

    Args:
        gt: ``(num_frames, height, width)`` ground-truth masks.
        pred: ``(num_frames, height, width)`` predicted masks.

    Returns:
        ``(num_frames,)`` float64 in [0, 1].
    """
    gt_b = _masks(gt, "(num_frames, height, width)", "gt")
    pred_b = _masks(pred, "(num_frames, height, width)", "pred")
    _same_shape(gt_b, pred_b, "gt and pred")
    agree = np.count_nonzero(gt_b == pred_b, axis=(1, 2))  # (num_frames,)
    return agree / float(gt_b.shape[1] * gt_b.shape[2])


def revos_robustness(gt: np.ndarray, pred: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Robustness R of every frame: ``max(1 - |pred ∧ ¬gt| / (|foreground| + 1e-6), 0)``.

    ``foreground`` is ReVOS's per-video foreground (``mask_dict_foreground.json``: every annotated object of the
    video in that frame, independent of the expression). R penalises predicted pixels outside the target relative to
    that area; a frame with no foreground scores 1 with no false positives and 0 with any.

    Args:
        gt: ``(num_frames, height, width)`` ground-truth masks of the expression.
        pred: ``(num_frames, height, width)`` predicted masks.
        foreground: ``(num_frames, height, width)`` video foreground masks.

    Returns:
        ``(num_frames,)`` float64 in [0, 1].
    """
    gt_b = _masks(gt, "(num_frames, height, width)", "gt")
    pred_b = _masks(pred, "(num_frames, height, width)", "pred")
    fg_b = _masks(foreground, "(num_frames, height, width)", "foreground")
    _same_shape(gt_b, pred_b, "gt and pred")
    _same_shape(gt_b, fg_b, "gt and foreground")
    false_pos = np.count_nonzero(pred_b & ~gt_b, axis=(1, 2))  # (num_frames,)
    fg_area = np.count_nonzero(fg_b, axis=(1, 2))
    # The 1e-6 is the reference's; it decides the empty-foreground case.
    return np.maximum(1 - false_pos / (fg_area + 1e-6), 0.0)


@dataclass(frozen=True)
class ReVOSExpressionScore:
    """One ReVOS expression's scores, fractions in [0, 1] (frame means)."""

    j: float
    f: float
    a: float
    r: float
    type_id: int


@dataclass(frozen=True)
class ReVOSGroupScore:
    """Scores ×100 of one group of expressions (NaN for an empty group)."""

    j: float
    f: float
    jf: float
    a: float
    r: float
    count: int


@dataclass(frozen=True)
class ReVOSResult:
    """ReVOS table row: referring (type 0), reasoning (type 1) and overall = their plain average, metric by metric."""

    referring: ReVOSGroupScore
    reasoning: ReVOSGroupScore
    overall: ReVOSGroupScore


class ReVOSScore:
    """Accumulates ReVOS J, F, A and R per expression (``tools/eval/eval_revos.py``).

    Per group (``type_id`` 0 referring, 1 reasoning; other type ids are kept but reported in neither), each metric is
    the mean over expressions of ``round(100 × value, 2)`` — the reference rounds every expression before averaging;
    pass ``reference_rounding=False`` for unrounded means. J&F of a group = (J + F) / 2 of the group means. "overall"
    averages the referring and reasoning numbers (not a pooled mean over expressions), so it is NaN when either group
    is empty. Means use :func:`math.fsum`: :meth:`merge` of shards equals one single run bit for bit.
    """

    def __init__(self, *, reference_rounding: bool = True) -> None:
        self.reference_rounding = reference_rounding
        self._expressions: list[ReVOSExpressionScore] = []

    def add(
        self,
        gt: np.ndarray,
        pred: np.ndarray,
        foreground: np.ndarray,
        type_id: int,
        bound_th: float = DEFAULT_BOUND_TH,
    ) -> ReVOSExpressionScore:
        """Scores and adds one expression.

        Args:
            gt: ``(num_frames, height, width)`` ground truth (union of the expression's objects).
            pred: ``(num_frames, height, width)`` prediction.
            foreground: ``(num_frames, height, width)`` the video's foreground (see :func:`revos_robustness`).
            type_id: 0 referring, 1 reasoning.
            bound_th: see :func:`f_measure`.

        Returns:
            The expression's scores.
        """
        j, f = jf_score(gt, pred, bound_th)
        a = float(revos_accuracy(gt, pred).mean())
        r = float(revos_robustness(gt, pred, foreground).mean())
        return self.add_scores(j, f, a, r, type_id)

    def add_scores(self, j: float, f: float, a: float, r: float, type_id: int) -> ReVOSExpressionScore:
        """Adds one expression's precomputed frame-mean scores (fractions in [0, 1])."""
        score = ReVOSExpressionScore(
            j=_unit_score(j, "J"), f=_unit_score(f, "F"), a=_unit_score(a, "A"), r=_unit_score(r, "R"),
            type_id=int(type_id),
        )  # fmt: skip
        self._expressions.append(score)
        return score

    def merge(self, other: ReVOSScore) -> None:
        """Adds every expression of ``other`` (another shard, with the same ``reference_rounding``)."""
        if other.reference_rounding != self.reference_rounding:
            raise Sa2VAInputError("cannot merge ReVOSScore accumulators with different reference_rounding settings.")
        self._expressions.extend(other._expressions)

    @property
    def count(self) -> int:
        """Number of expressions added (all type ids)."""
        return len(self._expressions)

    @property
    def expressions(self) -> tuple[ReVOSExpressionScore, ...]:
        """Per-expression scores in the order added."""
        return tuple(self._expressions)

    def _group(self, type_id: int) -> ReVOSGroupScore:
        rows = [e for e in self._expressions if e.type_id == type_id]

        def metric(values: list[float]) -> float:
            if self.reference_rounding:
                # round(np.float64, 2) in the reference is numpy's rounding (scale, rint, unscale).
                return _mean([float(np.round(100 * v, 2)) for v in values])
            return 100 * _mean(values)

        j = metric([e.j for e in rows])
        f = metric([e.f for e in rows])
        return ReVOSGroupScore(
            j=j, f=f, jf=(j + f) / 2, a=metric([e.a for e in rows]), r=metric([e.r for e in rows]), count=len(rows)
        )

    def result(self) -> ReVOSResult:
        """Referring, reasoning and overall scores ×100."""
        ref = self._group(REVOS_REFERRING)
        rea = self._group(REVOS_REASONING)
        overall = ReVOSGroupScore(
            j=(ref.j + rea.j) / 2, f=(ref.f + rea.f) / 2, jf=(ref.jf + rea.jf) / 2, a=(ref.a + rea.a) / 2,
            r=(ref.r + rea.r) / 2, count=ref.count + rea.count,
        )  # fmt: skip
        return ReVOSResult(referring=ref, reasoning=rea, overall=overall)


# --------------------------------------------------------------------------------------------------------------------
# GCG: mIoU, recall, mask AP
# --------------------------------------------------------------------------------------------------------------------


def _mask_stack(masks: np.ndarray | Sequence[np.ndarray], name: str) -> np.ndarray:
    """``(num_masks, height, width)`` bool from an array or a sequence of ``(height, width)`` masks (may be empty)."""
    if isinstance(masks, np.ndarray):
        if masks.size == 0 and masks.ndim != 3:
            return np.zeros((0, 0, 0), dtype=bool)
        return _masks(masks, "(num_masks, height, width)", name)
    if len(masks) == 0:
        return np.zeros((0, 0, 0), dtype=bool)
    try:
        stacked = np.stack([np.asarray(m) for m in masks])
    except ValueError as exc:
        raise Sa2VAInputError(f"{name} must all have the same (height, width): {exc}") from exc
    return _masks(stacked, "(num_masks, height, width)", name)


def _iou_matrix(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``(len(rows), len(cols))`` float64 IoUs of two mask stacks; NaN where both masks are empty (the reference's
    ``0 / 0``)."""
    out = np.zeros((len(rows), len(cols)), dtype=np.float64)
    if out.size == 0:
        return out
    _same_shape(rows[0], cols[0], "predicted and ground-truth masks")
    for i, row in enumerate(rows):
        for k, col in enumerate(cols):
            union = np.count_nonzero(row | col)
            out[i, k] = np.count_nonzero(row & col) / union if union else math.nan
    return out


def gcg_miou(pred_masks: np.ndarray | Sequence[np.ndarray], gt_masks: np.ndarray | Sequence[np.ndarray]) -> float:
    """GCG mIoU of one image: greedy one-to-one matching by maximal IoU, mean of the matched IoUs.

    Repeatedly takes the largest remaining entry of the ``(pred, gt)`` IoU matrix (first in row-major order on ties)
    while it is > 0, and removes its row and column. Unmatched masks on either side do not lower the score. As in the
    reference, an empty predicted mask facing an empty GT mask (IoU 0/0 = NaN) stops the matching before it starts.

    Args:
        pred_masks: ``(num_pred, height, width)`` predicted masks (or a list of ``(height, width)``; may be empty).
        gt_masks: ``(num_gt, height, width)`` ground-truth masks.

    Returns:
        Mean matched IoU in [0, 1]; 0 when nothing matched.
    """
    ious = _iou_matrix(_mask_stack(pred_masks, "pred_masks"), _mask_stack(gt_masks, "gt_masks"))  # (pred, gt)
    if ious.size == 0 or np.isnan(ious).any():
        return 0.0
    paired: list[float] = []
    while True:
        row, col = np.unravel_index(int(np.argmax(ious)), ious.shape)
        best = ious[row, col]
        if not best > 0:
            break
        paired.append(float(best))
        # -inf removes the row and column while keeping the row-major tie order of what remains.
        ious[row, :] = -np.inf
        ious[:, col] = -np.inf
    return float(np.mean(paired)) if paired else 0.0


def gcg_recall(
    pred_masks: np.ndarray | Sequence[np.ndarray],
    pred_phrases: Sequence[str],
    gt_masks: np.ndarray | Sequence[np.ndarray],
    gt_phrases: Sequence[str],
    text_similarity: TextSimilarity,
    iou_th: float = 0.5,
    sim_th: float = 0.5,
) -> tuple[int, int]:
    """GCG recall counts of one image: GT phrases matched by a predicted (mask, phrase) pair.

    Greedy over the ``(gt, pred)`` IoU matrix: take its largest entry (first in row-major order; NaN, from two empty
    masks, ranks highest as in ``np.argmax``); if that IoU is below ``iou_th`` or the phrase similarity of the pair
    is below ``sim_th``, stop — lower-IoU pairs are not tried; otherwise count a match and zero the pair's row and
    column in both matrices. Masks and phrases are paired by index. When the chosen pair has no phrase (more masks
    than phrases) the reference raises inside its per-image ``try`` after counting the GT phrases, so the image gives
    ``(0, len(gt_phrases))``; that is reproduced.

    Args:
        pred_masks: ``(num_pred, height, width)`` predicted masks (may be empty).
        pred_phrases: predicted phrases, normally one per predicted mask.
        gt_masks: ``(num_gt, height, width)`` ground-truth masks.
        gt_phrases: ground-truth phrases, one per GT mask.
        text_similarity: ``(gt_phrases, pred_phrases) -> (len(gt_phrases), len(pred_phrases))`` similarity matrix;
            not called when there is nothing to match.
        iou_th: minimal IoU of a match, > 0.
        sim_th: minimal phrase similarity of a match.

    Returns:
        ``(matched, total)`` with ``total = len(gt_phrases)``; dataset recall = Σ matched / Σ total.
    """
    if not iou_th > 0:
        raise Sa2VAInputError(f"iou_th must be > 0 (a zero threshold would re-match removed pairs), got {iou_th!r}.")
    gt_phrases, pred_phrases = list(gt_phrases), list(pred_phrases)
    total = len(gt_phrases)
    ious = _iou_matrix(_mask_stack(gt_masks, "gt_masks"), _mask_stack(pred_masks, "pred_masks"))  # (gt, pred)
    if ious.size == 0:
        return 0, total
    if gt_phrases and pred_phrases:
        sims = np.array(text_similarity(gt_phrases, pred_phrases), dtype=np.float64)
    else:
        sims = np.zeros((len(gt_phrases), len(pred_phrases)), dtype=np.float64)
    if sims.shape != (len(gt_phrases), len(pred_phrases)):
        raise Sa2VAInputError(
            f"text_similarity must return a ({len(gt_phrases)}, {len(pred_phrases)}) matrix for "
            f"(gt_phrases, pred_phrases), got shape {sims.shape}."
        )
    matched = 0
    while True:
        row, col = np.unravel_index(int(np.argmax(ious)), ious.shape)
        if ious[row, col] < iou_th:
            break
        if row >= sims.shape[0] or col >= sims.shape[1]:
            return 0, total
        if sims[row, col] < sim_th:
            break
        matched += 1
        ious[row, :] = 0
        ious[:, col] = 0
        sims[row, :] = 0
        sims[:, col] = 0
    return matched, total


@dataclass(frozen=True)
class GCGImageScore:
    """One image's GCG mIoU (in [0, 1]) and recall counts."""

    miou: float
    matched: int
    total: int


class GCGScore:
    """Accumulates GCG mIoU (mean over images of :func:`gcg_miou`) and recall (Σ matched / Σ GT phrases).

    Both are fractions in [0, 1], 0 with nothing added (as the reference). :meth:`merge` of shards equals one single
    run bit for bit (integer counts, :func:`math.fsum` mean).
    """

    def __init__(self) -> None:
        self._mious: list[float] = []
        self._matched = 0
        self._total = 0

    def add(
        self,
        pred_masks: np.ndarray | Sequence[np.ndarray],
        pred_phrases: Sequence[str],
        gt_masks: np.ndarray | Sequence[np.ndarray],
        gt_phrases: Sequence[str],
        text_similarity: TextSimilarity,
        iou_th: float = 0.5,
        sim_th: float = 0.5,
    ) -> GCGImageScore:
        """Scores and adds one image (arguments as :func:`gcg_recall`)."""
        miou = gcg_miou(pred_masks, gt_masks)
        matched, total = gcg_recall(pred_masks, pred_phrases, gt_masks, gt_phrases, text_similarity, iou_th, sim_th)
        return self.add_scores(miou, matched, total)

    def add_scores(self, miou: float, matched: int, total: int) -> GCGImageScore:
        """Adds one image's precomputed mIoU and recall counts (``0 <= matched <= total``)."""
        matched, total = int(matched), int(total)
        if not 0 <= matched <= total:
            raise Sa2VAInputError(f"need 0 <= matched <= total, got {matched} and {total}.")
        score = GCGImageScore(miou=_unit_score(miou, "mIoU"), matched=matched, total=total)
        self._mious.append(score.miou)
        self._matched += matched
        self._total += total
        return score

    def merge(self, other: GCGScore) -> None:
        """Adds every image of ``other`` (another shard)."""
        self._mious.extend(other._mious)
        self._matched += other._matched
        self._total += other._total

    @property
    def count(self) -> int:
        """Number of images added."""
        return len(self._mious)

    @property
    def miou(self) -> float:
        """Mean per-image mIoU."""
        return _mean(self._mious) if self._mious else 0.0

    @property
    def recall(self) -> float:
        """Matched GT phrases / all GT phrases."""
        return self._matched / self._total if self._total else 0.0


@dataclass(frozen=True)
class MaskAP:
    """COCO ``segm`` summary (``COCOeval.stats``); -1 where COCO has nothing to measure (e.g. no GT of that size)."""

    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    ar1: float
    ar10: float
    ar100: float
    ar_small: float
    ar_medium: float
    ar_large: float


def gcg_mask_ap(
    pred_masks: Sequence[np.ndarray | Sequence[np.ndarray]], gt_masks: Sequence[np.ndarray | Sequence[np.ndarray]]
) -> MaskAP:
    """GCG mask AP: COCO ``segm`` evaluation, one category, every prediction scored 1.0 (needs ``pycocotools``).

    As the reference, detections keep their given order among equal scores, GT annotations are non-crowd with
    ``area = mask area``, and AP50 (``ap50``) is the number usually quoted.

    Args:
        pred_masks: per image, ``(num_pred, height, width)`` predicted masks (or a list of ``(height, width)``).
        gt_masks: per image (same order and length), ``(num_gt, height, width)`` ground-truth masks.

    Returns:
        The twelve COCO summary numbers, fractions in [0, 1].

    Raises:
        MissingDependencyError: ``pycocotools`` is not installed.
    """
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise MissingDependencyError(
            "gcg_mask_ap needs pycocotools, an optional dependency that is not installed; run `pip install pycocotools`."
        ) from exc
    if len(pred_masks) != len(gt_masks):
        raise Sa2VAInputError(
            f"pred_masks and gt_masks must list the same images, got {len(pred_masks)} and {len(gt_masks)} entries."
        )

    def annotations(stack: np.ndarray, image_id: int, first_id: int) -> list[dict]:
        anns = []
        for offset, mask in enumerate(stack):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            anns.append(
                {"id": first_id + offset, "image_id": image_id, "category_id": 1, "segmentation": rle, "iscrowd": 0,
                 "area": float(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)]}
            )  # fmt: skip
        return anns

    images: list[dict] = []
    gt_anns: list[dict] = []
    dt_anns: list[dict] = []
    for image_id, (preds, gts) in enumerate(zip(pred_masks, gt_masks), start=1):
        pred_stack = _mask_stack(preds, "pred_masks")
        gt_stack = _mask_stack(gts, "gt_masks")
        if len(pred_stack) and len(gt_stack):
            _same_shape(pred_stack[0], gt_stack[0], "predicted and ground-truth masks")
        height, width = (gt_stack if len(gt_stack) else pred_stack).shape[1:]
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        gt_anns += annotations(gt_stack, image_id, len(gt_anns) + 1)
        dt_anns += [dict(a, score=1.0) for a in annotations(pred_stack, image_id, len(dt_anns) + 1)]

    categories = [{"id": 1, "name": "object"}]
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # pycocotools prints its progress and table
        coco_gt = COCO()
        coco_gt.dataset = {"info": {}, "images": images, "annotations": gt_anns, "categories": categories}
        coco_gt.createIndex()
        coco_dt = COCO()
        coco_dt.dataset = {"info": {}, "images": images, "annotations": dt_anns, "categories": categories}
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, "segm")
        evaluator.params.catIds = [1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    logger.debug("COCOeval segm:\n%s", log.getvalue())
    return MaskAP(*(float(v) for v in evaluator.stats))


__all__ = [
    "DEFAULT_BOUND_TH",
    "REVOS_REASONING",
    "REVOS_REFERRING",
    "GCGImageScore",
    "GCGScore",
    "MaskAP",
    "MissingDependencyError",
    "ReVOSExpressionScore",
    "ReVOSGroupScore",
    "ReVOSResult",
    "ReVOSScore",
    "ReferringSegmentationScore",
    "TextSimilarity",
    "VOSScore",
    "boundary_tolerance",
    "db_eval_boundary",
    "db_eval_iou",
    "disk",
    "f_measure",
    "gcg_mask_ap",
    "gcg_miou",
    "gcg_recall",
    "intersection_and_union",
    "jf_score",
    "revos_accuracy",
    "revos_robustness",
]
