"""Which frames of a video the MLLM sees (the key frames SAM2 is prompted on; every other frame is tracked).

The reference feeds the MLLM the first 5 frames of the list the caller passes (REFERENCE_SPEC §2.1): ``"first"``
reproduces that. ``"uniform"`` spreads the key frames over the clip instead, which suits questions about the whole
video. Explicit indices let the caller choose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral

import numpy as np

from sa2va.errors import Sa2VAInputError


def _first(num_frames: int, k: int) -> list[int]:
    # The reference's `frame_idx < 5` over the frames it is given.
    return list(range(min(k, num_frames)))


def _uniform(num_frames: int, k: int) -> list[int]:
    if num_frames <= k:
        return list(range(num_frames))
    if k == 1:
        return [0]
    # round(j * (T - 1) / (k - 1)) with halves rounded up, in integers: exact and platform independent (np.linspace
    # + np.round would round halves to even). With T > k the step exceeds 1, so the k indices are distinct.
    span, gaps = num_frames - 1, k - 1
    return [(2 * j * span + gaps) // (2 * gaps) for j in range(k)]


KEY_FRAME_POLICIES: dict[str, Callable[[int, int], list[int]]] = {"first": _first, "uniform": _uniform}


def select_key_frames(num_frames: int, policy: str | Sequence[int] = "first", k: int = 5) -> list[int]:
    """Choose the key frames of a video of ``num_frames`` frames.

    Policies:

    * ``"first"``: ``[0, 1, ..., min(k, T) - 1]``, exactly the reference (the first 5 frames of the frames passed).
    * ``"uniform"``: ``round(j * (T - 1) / (k - 1))`` for ``j = 0 .. k - 1`` with halves rounded up, i.e.
      ``np.linspace(0, T - 1, k)`` rounded: ``k`` distinct increasing indices that include the first and the last
      frame. ``T <= k`` gives every frame; ``k == 1`` gives ``[0]``.
    * a sequence of frame indices: used as given after validation (integers in ``[0, T)``, no duplicates), sorted;
      ``k`` is ignored.

    Args:
        num_frames: ``T``, the number of frames of the (already selected) video, ``>= 1``.
        policy: ``"first"``, ``"uniform"`` or explicit indices.
        k: How many key frames a named policy picks, ``>= 1``; the reference uses 5.

    Returns:
        Sorted, distinct frame indices in ``[0, num_frames)``, at least one.

    Raises:
        Sa2VAInputError: If ``num_frames`` or ``k`` is not a positive integer, the policy name is unknown, or explicit
            indices are empty, not integers, out of range or repeated.
    """
    if not _is_int(num_frames) or num_frames < 1:
        raise Sa2VAInputError(f"num_frames must be an integer >= 1, got {num_frames!r}; the video has no frames.")
    if isinstance(policy, str):
        if policy not in KEY_FRAME_POLICIES:
            raise Sa2VAInputError(
                f"Unknown key-frame policy {policy!r}; expected one of {sorted(KEY_FRAME_POLICIES)} or a list of "
                "frame indices."
            )
        if not _is_int(k) or k < 1:
            raise Sa2VAInputError(f"k (number of key frames) must be an integer >= 1, got {k!r}.")
        return KEY_FRAME_POLICIES[policy](int(num_frames), int(k))
    return _explicit(int(num_frames), policy)


def _explicit(num_frames: int, indices: object) -> list[int]:
    if isinstance(indices, np.ndarray):
        if indices.ndim != 1:
            raise Sa2VAInputError(f"Key-frame indices must be one-dimensional, got an array of shape {indices.shape}.")
        indices = indices.tolist()
    if not isinstance(indices, Sequence) or isinstance(indices, bytes):
        raise Sa2VAInputError(
            f"key frames must be a policy name {sorted(KEY_FRAME_POLICIES)} or a sequence of frame indices, got "
            f"{type(indices).__name__}."
        )
    if len(indices) == 0:
        raise Sa2VAInputError("Key-frame indices are empty; expected at least one frame index.")
    bad = [index for index in indices if not _is_int(index)]
    if bad:
        raise Sa2VAInputError(f"Key-frame indices must be integers, got {bad[:5]!r}.")
    out_of_range = [int(index) for index in indices if not 0 <= index < num_frames]
    if out_of_range:
        raise Sa2VAInputError(
            f"Key-frame indices {out_of_range[:5]} are out of range for a video of {num_frames} frames; expected "
            f"0 <= index < {num_frames}."
        )
    chosen = sorted(int(index) for index in indices)
    repeated = sorted({a for a, b in zip(chosen, chosen[1:]) if a == b})
    if repeated:
        raise Sa2VAInputError(f"Key-frame indices {repeated} are repeated; give each frame once.")
    return chosen


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


__all__ = ["KEY_FRAME_POLICIES", "select_key_frames"]
