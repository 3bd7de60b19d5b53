"""The scenes world: determinism, unambiguous language, the user-format files it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sa2va.data.scenes import DIRECTIONS, make_scene
from sa2va.data.scenes_dataset import TEST_FIRST_SEED, write_scenes
from sa2va.data.scenes_language import grounded_caption, questions, referring_expressions
from sa2va.data.sources import UserDataset
from sa2va.errors import Sa2VAInputError


def test_scene_is_deterministic_by_seed():
    a, b, c = make_scene(5, video=True), make_scene(5, video=True), make_scene(6, video=True)
    assert a == b and a != c
    np.testing.assert_array_equal(a.render(3)[0], b.render(3)[0])


@pytest.mark.parametrize("video", [False, True])
def test_masks_are_visible_parts_and_match_pixels(video):
    for seed in range(20):
        scene = make_scene(seed, video=video)
        frame, masks = scene.render(scene.num_frames - 1)
        assert masks.shape == (len(scene.objects), 128, 128)
        assert not (masks.sum(0) > 1).any(), "visible masks must not overlap"
        background = ~masks.any(0)
        for mask in masks:
            assert mask.sum() > 100
            inside = frame[mask].astype(int).mean(0)
            outside = frame[background].astype(int).mean(0)
            assert np.abs(inside - outside).max() > 20  # a shape stands out from the backdrop


def test_video_shapes_move_as_described():
    for seed in range(20):
        scene = make_scene(seed, video=True)
        tracks = scene.track_masks()
        assert any(o.direction for o in scene.objects)
        for obj, track in zip(scene.objects, tracks):
            first, last = obj.full_mask(0, 128), obj.full_mask(scene.num_frames - 1, 128)
            shift = np.array(np.nonzero(last)).mean(1) - np.array(np.nonzero(first)).mean(1)  # (dy, dx)
            dx, dy = DIRECTIONS[obj.direction] if obj.direction else (0, 0)
            assert np.sign(np.round(shift[1])) == dx and np.sign(np.round(shift[0])) == dy
            assert track.any(axis=(1, 2)).all()


def _resolve(scene, text):
    """An independent reading of an expression: every shape it could mean."""
    objs = scene.objects
    names = {o.name: i for i, o in enumerate(objs)}
    if text.startswith("the shape moving "):
        return [i for i, o in enumerate(objs) if o.direction == text.rsplit(" ", 1)[1]]
    if text == "the shape that is not moving":
        return [i for i, o in enumerate(objs) if o.direction is None]
    for relation in ("left of", "right of", "above", "below"):
        prefix = f"the shape {relation} the "
        if text.startswith(prefix):
            a = objs[names[text[len(prefix):]]]
            offsets = {"left of": a.x - np.array([o.x for o in objs]), "right of": np.array([o.x for o in objs]) - a.x,
                       "above": a.y - np.array([o.y for o in objs]), "below": np.array([o.y for o in objs]) - a.y}
            return [i for i, o in enumerate(objs) if o is not a and offsets[relation][i] > 0]
    extremes = {"the leftmost shape": lambda o: o.x, "the rightmost shape": lambda o: -o.x,
                "the topmost shape": lambda o: o.y, "the bottom shape": lambda o: -o.y}
    if text in extremes:
        return [min(range(len(objs)), key=lambda i: extremes[text](objs[i]))]
    if text in ("the largest shape", "the smallest shape"):
        full = [o.full_mask(0, 128).sum() for o in objs]
        pick = max if text == "the largest shape" else min
        return [pick(range(len(objs)), key=full.__getitem__)]
    word = text.removeprefix("the ")
    if word in names:
        return [names[word]]
    if word.endswith(" shape"):
        return [i for i, o in enumerate(objs) if o.colour == word.removesuffix(" shape")]
    return [i for i, o in enumerate(objs) if o.shape == word]


@pytest.mark.parametrize("video", [False, True])
def test_every_expression_names_exactly_its_target(video):
    kinds = set()
    for seed in range(60):
        scene = make_scene(seed, video=video)
        for expression in referring_expressions(scene):
            assert _resolve(scene, expression.text) == [expression.target], (seed, expression)
            kinds.add(expression.kind)
    expected = {"attribute", "size", "motion"} if video else {"attribute", "size", "position", "relation"}
    assert kinds == expected


def test_questions_and_caption():
    scene = make_scene(3)
    qa = {q.question: q.answer for q in questions(scene)}
    assert qa["How many shapes are there?"] == f"{len(scene.objects)}."
    caption, order = grounded_caption(scene)
    assert caption.count("[SEG]") == len(scene.objects) == len(order)
    xs = [scene.objects[k].x for k in order]
    assert xs == sorted(xs)
    video = make_scene(3, video=True)
    motion = [q for q in questions(video) if q.kind == "motion"]
    assert {q.answer for q in motion} <= {"Up.", "Down.", "Left.", "Right.", "It is not moving."}


def test_written_training_data_reads_back_as_user_data(tmp_path):
    root = write_scenes(tmp_path / "train", "train", num_images=6, num_videos=3, progress=False)
    dataset = UserDataset(root / "train.jsonl", num_frames=5, seed=0)
    assert len(dataset) == 9
    for index in range(len(dataset)):
        sample = dataset[index]
        seg_count = sum(turn.assistant.count("[SEG]") for turn in sample.conversation)
        assert sample.masks is not None or seg_count == 0
        if sample.masks is not None:
            assert len(sample.masks) == seg_count
    video = dataset[6]
    assert len(video.frames) == 5 and all(m.shape == (5, 128, 128) for m in video.masks)
    # referring answers name the target right after its [SEG]; videos get as many questions as images
    first = json.loads((root / "train.jsonl").read_text().splitlines()[6])
    answers = [turn["assistant"] for turn in first["conversation"]]
    assert any(answer.startswith("Sure, it is the [SEG] ") for answer in answers)
    assert sum("[SEG]" not in answer for answer in answers) == 2  # the default qa_turns
    regions = UserDataset(root / "regions.jsonl")
    assert regions[0].region_masks.shape == (1, 128, 128)
    # writing the same scenes again reuses the folder; different scenes are refused
    assert write_scenes(root, "train", num_images=6, num_videos=3, progress=False) == root
    with pytest.raises(Sa2VAInputError, match="holds other scenes"):
        write_scenes(root, "train", num_images=7, num_videos=3, progress=False)


def test_held_out_seeds_never_overlap_training(tmp_path):
    with pytest.raises(Sa2VAInputError, match="below"):
        write_scenes(tmp_path / "x", "train", num_images=TEST_FIRST_SEED + 1, num_videos=0, progress=False)
    root = write_scenes(tmp_path / "test", "test", num_images=2, num_videos=1, progress=False)
    rows = [json.loads(line) for line in (root / "test.jsonl").read_text().splitlines()]
    assert {row["task"] for row in rows} == {"refer", "qa", "gcg"}
    assert all(int(row.get("image", row.get("video")).split("/")[1][:7]) >= TEST_FIRST_SEED for row in rows)


def test_name_share_names_referred_shapes_in_full(tmp_path):
    """With `name_share` most referring questions use the target's full name; the answer still names the target."""

    def referring_turns(root):
        rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
        return [t for row in rows for t in row["conversation"] if t["assistant"].startswith("Sure, it is the [SEG] ")]

    def full_share(turns):
        # "Please segment the red circle in this image." answered "Sure, it is the [SEG] red circle."
        full = [t for t in turns if f"the {t['assistant'].removeprefix('Sure, it is the [SEG] ')[:-1]}" in t["user"]]
        return len(full) / len(turns)

    drawn = referring_turns(write_scenes(tmp_path / "a", "train", num_images=40, num_videos=0, progress=False))
    named = referring_turns(
        write_scenes(tmp_path / "b", "train", num_images=40, num_videos=0, progress=False, name_share=0.8)
    )
    assert len(drawn) == len(named) == 80
    assert full_share(drawn) < 0.5 < 0.75 < full_share(named)
