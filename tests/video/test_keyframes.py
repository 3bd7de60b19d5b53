"""Key-frame policies: the reference's first frames, uniform spread, explicit indices."""

from __future__ import annotations

import numpy as np
import pytest

from sa2va.errors import Sa2VAInputError
from sa2va.video.keyframes import KEY_FRAME_POLICIES, select_key_frames


@pytest.mark.parametrize("num_frames", [1, 3, 5, 6, 100])
def test_first_is_the_reference_choice(num_frames):
    # Reference (modeling_sa2va_chat.py): the MLLM sees the passed frames with `frame_idx < 5`.
    reference = [frame_idx for frame_idx in range(num_frames) if frame_idx < 5]
    assert select_key_frames(num_frames) == reference
    assert select_key_frames(num_frames, "first", k=5) == reference


def test_first_other_k():
    assert select_key_frames(10, "first", k=2) == [0, 1]


def test_uniform_values():
    assert select_key_frames(100, "uniform") == [0, 25, 50, 74, 99]  # 24.75, 49.5 (half up), 74.25
    assert select_key_frames(9, "uniform") == [0, 2, 4, 6, 8]
    assert select_key_frames(3, "uniform") == [0, 1, 2]  # T <= k: every frame
    assert select_key_frames(10, "uniform", k=1) == [0]


@pytest.mark.parametrize("num_frames", range(1, 40))
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_uniform_spreads_over_the_clip(num_frames, k):
    keys = select_key_frames(num_frames, "uniform", k=k)
    assert len(keys) == min(k, num_frames)
    assert keys == sorted(set(keys)) and keys[0] == 0
    assert all(0 <= key < num_frames for key in keys)
    if k >= 2:
        assert keys[-1] == num_frames - 1
    if num_frames > k >= 2:
        # np.linspace(0, T - 1, k) rounded (halves up)
        assert keys == [int(np.floor(x + 0.5)) for x in np.linspace(0, num_frames - 1, k)]


def test_explicit_indices():
    assert select_key_frames(10, [7, 2, 4]) == [2, 4, 7]
    assert select_key_frames(10, (3,)) == [3]
    assert select_key_frames(10, np.array([9, 0])) == [0, 9]
    assert all(type(key) is int for key in select_key_frames(10, np.array([1, 2])))
    assert select_key_frames(3, [0, 1, 2], k=1) == [0, 1, 2]  # k only applies to named policies


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([], "empty"),
        ([0, 10], "out of range"),
        ([-1], "out of range"),
        ([1, 1], "repeated"),
        ([1.0], "integers"),
        ([True], "integers"),
        (np.zeros((2, 2), int), "one-dimensional"),
        (3, "sequence"),
    ],
)
def test_explicit_errors(indices, message):
    with pytest.raises(Sa2VAInputError, match=message):
        select_key_frames(10, indices)


def test_unknown_policy_lists_the_choices():
    with pytest.raises(Sa2VAInputError) as error:
        select_key_frames(10, "random")
    assert all(name in str(error.value) for name in KEY_FRAME_POLICIES)


@pytest.mark.parametrize(("num_frames", "k"), [(0, 5), (-1, 5), (2.0, 5), (10, 0), (10, 1.5)])
def test_bad_counts(num_frames, k):
    with pytest.raises(Sa2VAInputError):
        select_key_frames(num_frames, "uniform", k=k)
