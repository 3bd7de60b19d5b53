"""Write scenes-world data to disk in the user JSONL format (`docs/data_format.md`), for training and evaluation.

    root/
      scenes.json            what was generated (split, counts, seeds); a folder is reused only when it matches
      images/0000042.png     one PNG per image scene
      videos/0000042/00.png  one folder of PNG frames per video scene
      train.jsonl            training conversations (split "train")
      regions.jsonl          region questions ("What is region1?"), for visual-prompt capable (InternVL) models
      test.jsonl             evaluation items, one task each (split "test")

Training scenes use seeds `0 … n-1`; held-out scenes start at :data:`TEST_FIRST_SEED`, so training never sees them.
Every line of `test.jsonl` is a user-format sample plus `"task"` (`refer`, `qa` or `gcg`) and `"kind"` (the expression
or question kind), which the `scenes` benchmark of `sa2va eval` scores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from sa2va.data.scenes import Scene, SceneObject, make_scene
from sa2va.data.scenes_language import Expression, grounded_caption, questions, referring_expressions, region_answer
from sa2va.data.templates import GCG_QUESTIONS, choose
from sa2va.errors import Sa2VAInputError
from sa2va.grounding.masks import mask_to_rle

TEST_FIRST_SEED = 1_000_000

# The exact GCG prompt of the evaluation (the reference's, five spaces included), without "<image>\n".
GCG_EVAL_QUESTION = (
    "Could you please give me a brief description of the image? Please respond with interleaved     "
    "segmentation masks for the corresponding parts of the answer."
)
IMAGE_REFER_QUESTIONS = (
    "Please segment {expr} in this image.",
    "Can you segment {expr}?",
    "Where is {expr}? Please respond with a segmentation mask.",
)
VIDEO_REFER_QUESTIONS = ("Please segment {expr}.", "Please segment {expr} in this video.", "Can you segment {expr}?")


def _pick_by_kind(rng: np.random.Generator, options: list, count: int) -> list:
    """`count` distinct options, each drawn by first choosing a kind uniformly (so rare kinds are not drowned)."""
    chosen: list = []
    pool = list(options)
    while pool and len(chosen) < count:
        kinds = sorted({o.kind for o in pool})
        kind = kinds[int(rng.integers(len(kinds)))]
        of_kind = [o for o in pool if o.kind == kind]
        pick = of_kind[int(rng.integers(len(of_kind)))]
        chosen.append(pick)
        pool.remove(pick)
    return chosen


def _rle(mask: np.ndarray) -> dict:
    return {"rle": mask_to_rle(mask, compress=True)}


def _track_spec(track: np.ndarray) -> dict:
    """User-format video mask: one RLE per frame, `null` where the shape is hidden."""
    return {"frames": [_rle(m) if m.any() else None for m in track]}


class _SceneFiles:
    """Writes one scene's pixels once and hands out the user-format fields that point at them."""

    def __init__(self, root: Path, scene: Scene):
        self.scene = scene
        name = f"{scene.seed:07d}"
        if scene.is_video:
            folder = root / "videos" / name
            folder.mkdir(parents=True, exist_ok=True)
            for t, frame in enumerate(scene.frames()):
                frame.save(folder / f"{t:02d}.png")
            self.source = {"video": f"videos/{name}"}
            self.tracks = scene.track_masks()  # (N, T, H, W)
        else:
            (root / "images").mkdir(parents=True, exist_ok=True)
            frame, masks = scene.render(0)
            Image.fromarray(frame).save(root / "images" / f"{name}.png")
            self.source = {"image": f"images/{name}.png"}
            self.tracks = masks[:, None]

    def mask(self, index: int) -> dict:
        track = self.tracks[index]
        return _track_spec(track) if self.scene.is_video else _rle(track[0])


def _refer_question(expression: Expression, video: bool, rng: np.random.Generator) -> str:
    return choose(rng, VIDEO_REFER_QUESTIONS if video else IMAGE_REFER_QUESTIONS).format(expr=expression.text)


def referring_answer(obj: SceneObject) -> str:
    """`"Sure, it is the [SEG] red circle."`: the answer names the shape right after its `[SEG]`.

    The `[SEG]` state (the hidden state where `[SEG]` is the input) is the one that predicts the next token, so
    naming the shape there makes the language-model loss itself put the shape's identity into the state that prompts
    SAM2. A model trained from scratch has no other reason to: with "Sure, [SEG]." (and also with the name written
    just before the `[SEG]`, "Sure, it is the red circle[SEG].") the projected `[SEG]` states of different targets
    stayed the same (measured: cosine similarity above 0.9999 after 400 steps), and the mask decoder learnt to ignore
    them.
    """
    return f"Sure, it is the [SEG] {obj.name}."


def training_record(
    files: _SceneFiles,
    rng: np.random.Generator,
    refer_turns: int = 2,
    qa_turns: int = 2,
    gcg_share: float = 0.4,
    name_share: float = 0.0,
) -> dict:
    """One conversation about a scene, turns in random order: `refer_turns` referring turns, `qa_turns` questions
    and, for images, a GCG turn with probability `gcg_share`.

    Each referring turn names its shape in full ("the red circle") with probability `name_share`, otherwise it uses
    an expression drawn by kind. Answers name the target, so full names make copying the question right most of
    the time: with 60 % of them a from-scratch LLM learnt to name every fully named target within 1,200 steps,
    while with expressions drawn by kind alone it still named the same shape for every question after 3,000.
    """
    scene = files.scene
    turns, masks = [], []
    expressions = _pick_by_kind(rng, referring_expressions(scene), refer_turns)
    if name_share > 0:
        named = rng.random(len(expressions)) < name_share
        expressions = [Expression(f"the {scene.objects[e.target].name}", e.target, "attribute") if full else e
                       for e, full in zip(expressions, named, strict=True)]
    items: list = [("refer", e) for e in expressions]
    items += [("qa", q) for q in _pick_by_kind(rng, questions(scene), qa_turns)]
    if not scene.is_video and rng.random() < gcg_share:
        items.append(("gcg", None))
    for task, item in (items[i] for i in rng.permutation(len(items))):
        if task == "refer":
            answer = referring_answer(scene.objects[item.target])
            turns.append({"user": _refer_question(item, scene.is_video, rng), "assistant": answer})
            masks.append(files.mask(item.target))
        elif task == "qa":
            turns.append({"user": item.question, "assistant": item.answer})
        else:
            caption, order = grounded_caption(scene)
            question = GCG_EVAL_QUESTION if rng.random() < 0.5 else choose(rng, GCG_QUESTIONS)
            turns.append({"user": question, "assistant": caption})
            masks.extend(files.mask(k) for k in order)
    return {**files.source, "conversation": turns, "masks": masks}


def region_record(files: _SceneFiles, rng: np.random.Generator) -> dict:
    """A region question about one shape of an image scene."""
    index = int(rng.integers(len(files.scene.objects)))
    obj = files.scene.objects[index]
    turn = {"user": "What is region1?", "assistant": region_answer(obj)}
    return {**files.source, "conversation": [turn], "regions": [files.mask(index)]}


def test_records(files: _SceneFiles, rng: np.random.Generator) -> list[dict]:
    """Evaluation items of a held-out scene: 2 referring, 2 questions (1 for videos), a GCG item for images."""
    scene = files.scene
    out = []
    for e in _pick_by_kind(rng, referring_expressions(scene), 2):
        question = ("Please segment {expr}." if scene.is_video else "Please segment {expr} in this image.").format(
            expr=e.text
        )
        out.append({**files.source, "task": "refer", "kind": e.kind, "expression": e.text,
                    "conversation": [{"user": question, "assistant": referring_answer(scene.objects[e.target])}],
                    "masks": [files.mask(e.target)]})
    for q in _pick_by_kind(rng, questions(scene), 1 if scene.is_video else 2):
        out.append({**files.source, "task": "qa", "kind": q.kind,
                    "conversation": [{"user": q.question, "assistant": q.answer}], "masks": []})
    if not scene.is_video:
        caption, order = grounded_caption(scene)
        out.append({**files.source, "task": "gcg", "kind": "gcg",
                    "conversation": [{"user": GCG_EVAL_QUESTION, "assistant": caption}],
                    "masks": [files.mask(k) for k in order]})
    return out


def write_scenes(
    root: str | os.PathLike[str],
    split: str = "train",
    num_images: int = 2000,
    num_videos: int = 1000,
    first_seed: int | None = None,
    progress: bool = True,
    **conversation: Any,
) -> Path:
    """Generate scenes and write them with their JSONL files under `root` (reused if already written alike).

    Args:
        root: output folder; written to a temporary sibling first and renamed when complete.
        split: `train` (conversations + region questions) or `test` (evaluation items).
        num_images, num_videos: scenes of each modality.
        first_seed: seed of the first scene (default: 0 for train, :data:`TEST_FIRST_SEED` for test).
        progress: show a progress bar.
        conversation: `training_record` options (`refer_turns`, `qa_turns`, `gcg_share`, `name_share`).

    Returns:
        The folder.

    Raises:
        Sa2VAInputError: an unknown split, negative counts, training seeds reaching the held-out range, or a `root`
            that already holds different scenes.
        Sa2VACheckpointError: `root` exists and holds other files.
    """
    if split not in ("train", "test"):
        raise Sa2VAInputError(f"split must be 'train' or 'test', got {split!r}.")
    if num_images < 0 or num_videos < 0 or num_images + num_videos == 0:
        raise Sa2VAInputError(f"need a positive number of scenes, got {num_images} images and {num_videos} videos.")
    first = first_seed if first_seed is not None else (0 if split == "train" else TEST_FIRST_SEED)
    if split == "train" and first + max(num_images, num_videos) > TEST_FIRST_SEED:
        raise Sa2VAInputError(f"training seeds must stay below {TEST_FIRST_SEED} (the held-out scenes).")
    root = Path(root)
    manifest = {"split": split, "num_images": num_images, "num_videos": num_videos, "first_seed": first, "version": 3,
                **conversation}
    if (root / "scenes.json").is_file():
        if json.loads((root / "scenes.json").read_text()) == manifest:
            return root
        raise Sa2VAInputError(
            f"{root} holds other scenes ({(root / 'scenes.json').read_text().strip()}); delete it or choose another "
            "folder."
        )
    from sa2va.checkpoints.safe_io import atomic_folder

    jobs = [(first + i, False) for i in range(num_images)] + [(first + i, True) for i in range(num_videos)]
    with atomic_folder(root) as staging:
        lines: dict[str, list[str]] = {"train": [], "regions": [], "test": []}
        for seed, video in tqdm(jobs, desc=f"scenes ({split})", disable=not progress):
            rng = np.random.default_rng((seed, int(video), 11))
            files = _SceneFiles(staging, make_scene(seed, video=video))
            if split == "train":
                lines["train"].append(json.dumps(training_record(files, rng, **conversation)))
                if not video:
                    lines["regions"].append(json.dumps(region_record(files, rng)))
            else:
                lines["test"].extend(json.dumps(r) for r in test_records(files, rng))
        for name, rows in lines.items():
            if rows:
                (staging / f"{name}.jsonl").write_text("\n".join(rows) + "\n")
        (staging / "scenes.json").write_text(json.dumps(manifest, indent=1))
    return root


__all__ = ["GCG_EVAL_QUESTION", "TEST_FIRST_SEED", "test_records", "training_record", "write_scenes"]
