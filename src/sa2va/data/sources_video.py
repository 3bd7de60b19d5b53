"""Readers of the public video datasets: referring video segmentation (ReVOS, MeViS, Ref-YouTube-VOS, Ref-DAVIS17),
Ref-SAV, and ChatUniVi-style video QA (REFERENCE_SPEC §7.4).

Frames and masks are decoded in `__getitem__` and only for the sampled frames. Every video item carries
`frames` (RGB PIL, e.g. 5) and one `(num_frames, H, W)` bool mask per `[SEG]`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from sa2va.data.coco_masks import rle_mask
from sa2va.data.records import (
    REFSAV_MODALITY_LENGTH,
    VIDEO_MODALITY_LENGTH,
    BadRecord,
    Sa2VADataError,
    check_index,
    expect,
    get_field,
    item_rng,
    load_annotation,
    load_json,
    parse_messages,
    parse_records,
    read_image,
    record_label,
    sample_sorted_frames,
    segment_frames,
)
from sa2va.data.sample import TrainingSample, Turn
from sa2va.data.templates import IMAGE_PREFIX, referring_turn, refvos_question, seg_question
from sa2va.errors import Sa2VAInputError
from sa2va.video.frames import open_video

PathLike = str | os.PathLike[str]
RefVOSVariant = Literal["default", "revos", "mevis", "refytvos", "davis"]
# How each dataset names an expression's masks in mask_dict: its own `anno_id` list ("default"), or one sequential id
# per expression over the whole file ("refytvos": Ref-YouTube-VOS and Ref-DAVIS17 mask_dict.pkl).
_ANNO_MODE = {
    "default": "anno_id",
    "revos": "anno_id",
    "mevis": "anno_id",
    "refytvos": "sequential",
    "davis": "sequential",
}


def _union_rles(entries: list[Any], height: int, width: int) -> np.ndarray:
    """Union of per-frame mask entries (an RLE, a list of RLEs, or None for "not in this frame")."""
    mask = np.zeros((height, width), dtype=bool)
    for entry in entries:
        for rle in entry if isinstance(entry, list) else [entry]:
            if rle is not None:
                mask |= rle_mask(rle, height, width)
    return mask


# --------------------------------------------------------------------------------------------------------------------
# ReVOS / MeViS / Ref-YouTube-VOS / Ref-DAVIS17
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expression:
    label: str
    text: str
    anno_ids: tuple[str, ...]


@dataclass(frozen=True)
class _RefVideo:
    video: str
    frames: tuple[str, ...]  # sorted frame names, without extension
    expressions: tuple[_Expression, ...]


class RefVOSDataset:
    """Referring video object segmentation in the `meta_expressions.json` + `mask_dict` layout.

    `meta_expressions.json`: `{"videos": {video: {"frames": [name, ...], "expressions": {exp_id: {"exp": str,
    "anno_id": [ids], "obj_id": [...]}}}}}`; frames are `frame_root/video/name.jpg`. The mask file (`mask_dict.json`,
    or `mask_dict.pkl` read with the restricted unpickler) maps a string annotation id to one entry per frame of the
    video (sorted frame order): a COCO RLE, or `null` where the object is absent. Expression ids are taken in sorted
    order; with `variant="refytvos"` / `"davis"` the masks of the k-th expression of the file are `mask_dict[str(k)]`
    (the files carry no `anno_id`), otherwise those of its `anno_id` list, unioned.

    An item is one video: `num_expressions` expressions drawn with replacement, `num_frames` sorted frames (without
    replacement when the video has more than `num_frames + 1` frames), one referring turn per expression (an
    expression with `?` is asked verbatim; otherwise `.` are removed, it is lowercased and put into a
    `SEG_QUESTIONS` template), and per expression a `(num_frames, H, W)` mask.

    Args:
        meta_expressions_json: the expressions file.
        mask_dict: the masks file (`.json` or `.pkl`).
        frame_root: folder holding one folder of JPEG frames per video.
        variant: `"default"` / `"revos"` / `"mevis"` (`anno_id` lists) or `"refytvos"` / `"davis"` (sequential ids).
        num_expressions, num_frames: per item.
        seed: item `i` is drawn from `(seed, i)`.
        skip_bad_records: drop malformed expressions (counted in `num_skipped`) instead of raising.

    Raises:
        Sa2VADataError: unreadable files, unknown variant, or a malformed expression (unless `skip_bad_records`).
    """

    name = "refvos"

    def __init__(
        self,
        meta_expressions_json: PathLike,
        mask_dict: PathLike,
        frame_root: PathLike,
        *,
        variant: RefVOSVariant | str = "default",
        num_expressions: int = 5,
        num_frames: int = 5,
        seed: int = 0,
        skip_bad_records: bool = False,
    ) -> None:
        if variant not in _ANNO_MODE:
            raise Sa2VADataError(f"unknown RefVOS variant {variant!r}; expected one of {list(_ANNO_MODE)}.")
        if num_expressions < 1 or num_frames < 1:
            raise Sa2VADataError("num_expressions and num_frames must be >= 1.")
        self.path, self.mask_path, self.frame_root = Path(meta_expressions_json), Path(mask_dict), Path(frame_root)
        self.variant, self.num_expressions, self.num_frames, self.seed = variant, num_expressions, num_frames, seed
        meta = load_json(self.path)
        if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
            raise Sa2VADataError(f'{self.path}: expected {{"videos": {{video: {{"frames", "expressions"}}}}}}.')
        self._masks = load_annotation(self.mask_path)
        if not isinstance(self._masks, dict):
            raise Sa2VADataError(f"{self.mask_path}: expected a mapping from annotation id to per-frame masks.")
        sequential = _ANNO_MODE[variant] == "sequential"
        items: list[tuple[str, Any]] = []
        counter = 0  # the sequential annotation id counts every expression of the file, valid or not
        for video, info in meta["videos"].items():
            frames = info.get("frames") if isinstance(info, dict) else None
            expressions = info.get("expressions") if isinstance(info, dict) else None
            exp_ids = sorted(expressions) if isinstance(expressions, dict) else [None]
            for exp_id in exp_ids:
                label = f"video {video!r}, expression {exp_id!r}"
                exp = expressions[exp_id] if exp_id is not None else None
                anno = [str(counter)] if sequential else None
                items.append((label, (label, video, frames, exp, anno)))
                counter += 1
        parsed, report = parse_records(
            items, self._parse, path=self.path, skip_bad_records=skip_bad_records, name=self.name
        )
        self.num_skipped, self.num_filtered = report.num_skipped, report.num_filtered
        videos: dict[str, tuple[tuple[str, ...], list[_Expression]]] = {}
        for video, frames, expression in parsed:
            videos.setdefault(video, (frames, []))[1].append(expression)
        self._videos = [_RefVideo(v, f, tuple(e)) for v, (f, e) in videos.items()]

    def _parse(self, item: tuple[str, str, Any, Any, list[str] | None]) -> tuple[str, tuple[str, ...], _Expression]:
        label, video, frames, exp, anno = item
        expect(
            isinstance(frames, list) and len(frames) > 0 and all(isinstance(f, str) for f in frames),
            '"frames" must be a non-empty list of frame names.',
        )
        expect(isinstance(exp, dict), 'the video needs an "expressions" object {exp_id: {"exp", ...}}.')
        text = get_field(exp, "exp", str)
        if anno is None:
            ids = get_field(exp, "anno_id", (list, int, str))
            anno = [str(a) for a in (ids if isinstance(ids, list) else [ids])]
        for anno_id in anno:
            entries = self._masks.get(anno_id)
            expect(entries is not None, f"annotation id {anno_id} is not in {self.mask_path.name}.")
            expect(
                isinstance(entries, list) and len(entries) == len(frames),
                f"annotation {anno_id} has {len(entries) if isinstance(entries, list) else 'no'} per-frame masks for "
                f"{len(frames)} frames.",
            )
        return video, tuple(sorted(frames)), _Expression(label, text, tuple(anno))

    def __len__(self) -> int:
        return len(self._videos)

    @property
    def modality_lengths(self) -> list[int]:
        """Length-grouping key of every item (videos: 10000)."""
        return [VIDEO_MODALITY_LENGTH] * len(self)

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        """Item `index` (`draw > 0` re-draws expressions, frames and templates, for repeats).

        Returns:
            `num_expressions` turns, `num_frames` frames, and one `(num_frames, H, W)` bool mask per turn.
        """
        index = check_index(index, len(self), self.name)
        video = self._videos[index]
        rng = item_rng(self.seed, index, draw)
        picks = rng.integers(0, len(video.expressions), size=self.num_expressions)
        frame_ids = sample_sorted_frames(rng, len(video.frames), self.num_frames)
        expressions = [video.expressions[int(p)] for p in picks]
        turns = [referring_turn(refvos_question(e.text, rng), rng, first=k == 0) for k, e in enumerate(expressions)]
        where = f"{self.path}: video {video.video!r}"
        images: dict[int, Image.Image] = {}
        for f in frame_ids:
            if int(f) not in images:
                images[int(f)] = read_image(self.frame_root / video.video / f"{video.frames[f]}.jpg", where)
        frames = [images[int(f)] for f in frame_ids]
        width, height = frames[0].size
        masks = []
        for expression in expressions:
            try:
                per_frame = [
                    _union_rles([self._masks[a][int(f)] for a in expression.anno_ids], height, width) for f in frame_ids
                ]
            except Sa2VAInputError as error:
                raise Sa2VADataError(f"{self.mask_path}: {expression.label}: {error}") from None
            masks.append(np.stack(per_frame))  # (num_frames, H, W)
        return TrainingSample(conversation=turns, frames=frames, masks=masks, source=f"{self.name}:{where}")


# --------------------------------------------------------------------------------------------------------------------
# Ref-SAV
# --------------------------------------------------------------------------------------------------------------------


def _dedupe_sav_path(video_path: str, anno_path: str) -> tuple[str, str]:
    """Ref-SAV.json paths repeat the shard folder (`sav_000/sav_train/sav_000/x.mp4`); drop the first copy, as the
    reference does, when the folders around `sav_train` are the same."""
    parts = video_path.split("/")
    if parts.count("sav_train") != 1:
        return video_path, anno_path
    at = parts.index("sav_train")
    if 0 < at < len(parts) - 1 and parts[at - 1] == parts[at + 1]:
        anno_parts = anno_path.split("/")
        del parts[at - 1]
        if len(anno_parts) > at - 1:
            del anno_parts[at - 1]
        return "/".join(parts), "/".join(anno_parts)
    return video_path, anno_path


@dataclass(frozen=True)
class _SavVideo:
    label: str
    video_path: Path
    anno_path: Path
    objects: tuple[tuple[int, str], ...]  # (masklet column, formatted expression)


class RefSAVDataset:
    """Ref-SAV: `Ref-SAV.json` = `{video: {"video_path", "anno_path", "objects": {obj_id: {"formated": str, ...}}}}`
    with paths relative to `video_root` (SA-V `sav_train/sav_xxx/*.mp4` and `*_manual.json`).

    The SA-V annotation file's `"masklet"` holds one list of RLEs per annotated frame (one RLE per object, indexed by
    `int(obj_id)`); annotated frames are every `frame_step`-th (4th) frame of the mp4. An item is one video:
    `num_expressions` objects drawn with replacement, `num_frames` sorted annotated frames, and one referring turn per
    object with its `formated` expression put into a `SEG_QUESTIONS` template as is.

    Args:
        json_path: `Ref-SAV.json`.
        video_root: folder the paths are relative to.
        num_expressions, num_frames, frame_step: per item / frames between annotations.
        seed: item `i` is drawn from `(seed, i)`.
        skip_bad_records: drop malformed videos (counted in `num_skipped`) instead of raising.
    """

    name = "refsav"

    def __init__(
        self,
        json_path: PathLike,
        video_root: PathLike,
        *,
        num_expressions: int = 5,
        num_frames: int = 5,
        frame_step: int = 4,
        seed: int = 0,
        skip_bad_records: bool = False,
    ) -> None:
        if min(num_expressions, num_frames, frame_step) < 1:
            raise Sa2VADataError("num_expressions, num_frames and frame_step must be >= 1.")
        self.path, self.video_root, self.seed = Path(json_path), Path(video_root), seed
        self.num_expressions, self.num_frames, self.frame_step = num_expressions, num_frames, frame_step
        data = load_json(self.path)
        if not isinstance(data, dict):
            raise Sa2VADataError(f"{self.path}: expected an object {{video: {{video_path, anno_path, objects}}}}.")

        def parse(item: tuple[str, Any]) -> _SavVideo:
            label, info = item
            video_path, anno_path = _dedupe_sav_path(
                get_field(info, "video_path", str), get_field(info, "anno_path", str)
            )
            objects = get_field(info, "objects", dict)
            expect(len(objects) > 0, '"objects" is empty.')
            parsed = []
            for obj_id, obj in objects.items():
                expect(str(obj_id).isdigit(), f"object id {obj_id!r} must be a masklet column number.")
                parsed.append((int(obj_id), get_field(obj, "formated", str, f"object {obj_id}")))
            return _SavVideo(label, self.video_root / video_path, self.video_root / anno_path, tuple(parsed))

        self._videos, report = parse_records(
            [(f"video {v!r}", (f"video {v!r}", info)) for v, info in data.items()],
            parse,
            path=self.path,
            skip_bad_records=skip_bad_records,
            name=self.name,
        )
        self.num_skipped, self.num_filtered = report.num_skipped, report.num_filtered

    def __len__(self) -> int:
        return len(self._videos)

    @property
    def modality_lengths(self) -> list[int]:
        """Length-grouping key of every item (Ref-SAV videos: 20000, batched apart as in the reference)."""
        return [REFSAV_MODALITY_LENGTH] * len(self)

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        """Item `index` (`draw > 0` re-draws). Masks: one `(num_frames, H, W)` bool per turn."""
        index = check_index(index, len(self), self.name)
        video = self._videos[index]
        rng = item_rng(self.seed, index, draw)
        where = f"{self.path}: {video.label}"
        try:
            annotation = load_json(video.anno_path)
        except Sa2VADataError as error:
            raise Sa2VADataError(f"{where}: {error}") from None
        masklet = annotation.get("masklet") if isinstance(annotation, dict) else None
        if not isinstance(masklet, list) or not masklet:
            raise Sa2VADataError(f'{where}: {video.anno_path} has no "masklet" list.')
        picks = rng.integers(0, len(video.objects), size=self.num_expressions)
        frame_ids = sample_sorted_frames(rng, len(masklet), self.num_frames)
        objects = [video.objects[int(p)] for p in picks]
        turns = [referring_turn(seg_question(text, rng), rng, first=k == 0) for k, (_, text) in enumerate(objects)]
        try:
            with open_video(video.video_path, stride=self.frame_step) as source:
                if len(source) != len(masklet):
                    raise Sa2VADataError(
                        f"{where}: {video.video_path} has {len(source)} frames at step {self.frame_step} but the "
                        f"masklet has {len(masklet)}."
                    )
                decoded = {int(f): source.frame(int(f)).copy() for f in sorted(set(frame_ids.tolist()))}
        except Sa2VADataError:
            raise
        except Sa2VAInputError as error:
            raise Sa2VADataError(f"{where}: {error}") from None
        frames = [decoded[int(f)] for f in frame_ids]
        width, height = frames[0].size
        masks = []
        for column, _ in objects:
            try:
                per_frame = [_union_rles([_masklet_entry(masklet, int(f), column)], height, width) for f in frame_ids]
            except (Sa2VAInputError, BadRecord) as error:
                raise Sa2VADataError(f"{where}: {video.anno_path}: {error}") from None
            masks.append(np.stack(per_frame))  # (num_frames, H, W)
        return TrainingSample(conversation=turns, frames=frames, masks=masks, source=f"{self.name}:{where}")


def _masklet_entry(masklet: list[Any], frame: int, column: int) -> Any:
    row = masklet[frame]
    expect(isinstance(row, list) and column < len(row), f"masklet frame {frame} has no object {column}.")
    return row[column]


# --------------------------------------------------------------------------------------------------------------------
# Video QA (ChatUniVi video_chat.json)
# --------------------------------------------------------------------------------------------------------------------


class VideoQADataset:
    """Video conversations in ChatUniVi's `video_chat.json` layout: a JSON list of `{"id", "video": file,
    "conversations": [{"from": "human" | "gpt", "value"}, ...]}`.

    `<video>` is removed from the questions (then stripped), the first question gets `"<image>\\n"`, answers are
    stripped; questions and answers are paired in order. Frames: all when the video has at most `num_frames`,
    otherwise one random frame from each of `num_frames` equal segments. A missing `.mkv` falls back to the `.mp4`.

    Args:
        json_path: the conversation file.
        video_root: folder the `video` names are relative to (files or frame folders).
        num_frames: frames per item.
        seed: item `i` is drawn from `(seed, i)` (frame positions).
        skip_bad_records: drop malformed records (counted in `num_skipped`) instead of raising.
    """

    name = "videoqa"

    def __init__(
        self,
        json_path: PathLike,
        video_root: PathLike,
        *,
        num_frames: int = 5,
        seed: int = 0,
        skip_bad_records: bool = False,
    ) -> None:
        if num_frames < 1:
            raise Sa2VADataError(f"num_frames must be >= 1, got {num_frames}.")
        self.path, self.video_root, self.num_frames, self.seed = Path(json_path), Path(video_root), num_frames, seed
        data = load_json(self.path)
        if not isinstance(data, list):
            raise Sa2VADataError(f"{self.path}: expected a JSON list of records, got {type(data).__name__}.")

        def parse(record: Any) -> tuple[str, tuple[Turn, ...]]:
            video = get_field(record, "video", str)
            messages = parse_messages(get_field(record, "conversations", list))
            questions = [v.replace("<video>", "").strip() for role, v in messages if role == "human"]
            answers = [v.strip() for role, v in messages if role == "gpt"]
            expect(len(questions) == len(answers), f"{len(questions)} questions but {len(answers)} answers.")
            turns = tuple(
                Turn((IMAGE_PREFIX if k == 0 else "") + q, a) for k, (q, a) in enumerate(zip(questions, answers))
            )
            return video, turns

        self._records, report = parse_records(
            ((record_label(i, r), r) for i, r in enumerate(data)),
            parse,
            path=self.path,
            skip_bad_records=skip_bad_records,
            name=self.name,
        )
        self.num_skipped, self.num_filtered = report.num_skipped, report.num_filtered

    def __len__(self) -> int:
        return len(self._records)

    @property
    def modality_lengths(self) -> list[int]:
        """Length-grouping key of every item (videos: 10000)."""
        return [VIDEO_MODALITY_LENGTH] * len(self)

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        """Item `index` (`draw > 0` re-draws the frame positions). No masks."""
        index = check_index(index, len(self), self.name)
        video, turns = self._records[index]
        rng = item_rng(self.seed, index, draw)
        where = f"{self.path}: {record_label(index)}"
        path = self.video_root / video
        if not path.exists() and "mkv" in video and (self.video_root / video.replace("mkv", "mp4")).exists():
            path = self.video_root / video.replace("mkv", "mp4")
        try:
            with open_video(path) as source:
                positions = segment_frames(rng, len(source), self.num_frames)
                frames = [source.frame(p).copy() for p in positions]
        except Sa2VAInputError as error:
            raise Sa2VADataError(f"{where}: {error}") from None
        conversation = [Turn(t.user, t.assistant) for t in turns]
        return TrainingSample(conversation=conversation, frames=frames, source=f"{self.name}:{where}")


__all__ = ["RefVOSDataset", "RefSAVDataset", "VideoQADataset", "RefVOSVariant"]
