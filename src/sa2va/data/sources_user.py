"""`UserDataset`: the simple JSONL format for training on your own images and videos (also in docs/data_format.md).

One JSON object per line (blank lines are ignored)::

    {"image": "images/cat.jpg",
     "conversation": [{"user": "Please segment the cat.", "assistant": "Sure, it is [SEG]."}],
     "masks": [{"polygons": [[10, 10, 60, 10, 60, 60, 10, 60]]}]}

    {"video": "clips/dog.mp4",
     "conversation": [{"user": "Where is the dog?", "assistant": "It is [SEG]."}],
     "masks": [{"frames": [{"rle": {"size": [480, 640], "counts": "..."}}, null, ...]}]}

    {"conversation": [{"user": "What is 2 + 2?", "assistant": "4."}]}

Keys:

* `"image"`: an image file; or `"video"`: a video file, a folder of frames, or a list of frame files; or neither for a
  text-only sample. Relative paths are relative to `root` (default: the JSONL file's folder).
* `"conversation"`: the turns, each `{"user": str, "assistant": str}`. `"<image>\\n"` is put in front of the first
  user text of an image / video sample unless it already holds `<image>`; later turns must not.
* `"masks"`: one entry per `[SEG]` of the assistant texts, in order. For an image: `{"rle": COCO RLE}` (compressed
  string or list counts, `size` = `[height, width]` of the image) or `{"polygons": [[x0, y0, x1, y1, ...], ...]}`
  (pixel coordinates, unioned; rasterised like pycocotools). For a video: `{"frames": [...]}` with one entry per
  frame of the video, each an `{"rle"}` / `{"polygons"}` mask or `null` (object not visible).
* `"regions"` (optional, images only): visual-prompt regions `region1`, `region2`, ..., in the same mask forms; the
  processor adds the region sentence after the image, so refer to them as "region1" in the text.

Videos longer than `num_frames` are sampled like the reference's referring-video data: `num_frames` sorted frames,
drawn without replacement (with replacement for videos of at most `num_frames + 1` frames); the masks follow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sa2va.data.coco_masks import check_polygons, check_rle, polygons_to_mask, rle_mask
from sa2va.data.records import (
    IMAGE_MODALITY_LENGTH,
    VIDEO_MODALITY_LENGTH,
    BadRecord,
    Sa2VADataError,
    check_index,
    expect,
    get_field,
    item_rng,
    parse_records,
    read_image,
    sample_sorted_frames,
)
from sa2va.data.sample import TrainingSample, Turn
from sa2va.data.templates import IMAGE_PREFIX
from sa2va.errors import Sa2VAInputError
from sa2va.video.frames import open_video


@dataclass(frozen=True)
class _UserRecord:
    label: str
    image: Path | None
    video: Path | tuple[Path, ...] | None
    turns: tuple[Turn, ...]
    masks: tuple[Any, ...]
    regions: tuple[Any, ...]


def _check_mask_spec(spec: Any, what: str, video: bool) -> None:
    expect(isinstance(spec, dict), f'{what} must be an object with "rle", "polygons" or "frames".')
    if video:
        expect("frames" in spec, f'{what} of a video needs "frames": one mask (or null) per frame.')
        frames = spec["frames"]
        expect(isinstance(frames, list) and len(frames) > 0, f'{what}["frames"] must be a non-empty list.')
        for k, entry in enumerate(frames):
            if entry is not None:
                _check_mask_spec(entry, f'{what}["frames"][{k}]', video=False)
        return
    if "rle" in spec:
        check_rle(spec["rle"])
    elif "polygons" in spec:
        check_polygons(spec["polygons"])
    else:
        raise BadRecord(f'{what} needs "rle" or "polygons" (an image mask; "frames" is for videos).')


def decode_mask_spec(spec: dict[str, Any], height: int, width: int) -> np.ndarray:
    """One user-format image mask entry (`{"rle"}` or `{"polygons"}`) → `(height, width)` bool."""
    if "rle" in spec:
        return rle_mask(spec["rle"], height, width)
    return polygons_to_mask(spec["polygons"], height, width)


class UserDataset:
    """Your own data in the JSONL format of the module docstring.

    Args:
        jsonl_path: the JSONL file.
        root: folder relative paths are resolved against (default: the JSONL file's folder).
        num_frames: frames per video item (`None`: every frame of the video).
        seed: item `i` is drawn from `(seed, i)` (video frame sampling).
        skip_bad_records: drop malformed lines (counted in `num_skipped`) instead of raising.

    Raises:
        Sa2VADataError: unreadable file, or a malformed line (unless `skip_bad_records`).
    """

    name = "user"

    def __init__(
        self,
        jsonl_path: str | os.PathLike[str],
        root: str | os.PathLike[str] | None = None,
        *,
        num_frames: int | None = 5,
        seed: int = 0,
        skip_bad_records: bool = False,
    ) -> None:
        if num_frames is not None and num_frames < 1:
            raise Sa2VADataError(f"num_frames must be >= 1 or None, got {num_frames}.")
        self.path = Path(jsonl_path)
        self.root = Path(root) if root is not None else self.path.parent
        self.num_frames, self.seed = num_frames, seed
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise Sa2VADataError(f"cannot read {self.path} ({error}).") from None
        items = [(f"line {n}", (f"line {n}", line)) for n, line in enumerate(lines, start=1) if line.strip()]
        self._records, report = parse_records(
            items, self._parse, path=self.path, skip_bad_records=skip_bad_records, name=self.name
        )
        self.num_skipped, self.num_filtered = report.num_skipped, report.num_filtered

    def _resolve(self, value: Any, what: str) -> Path:
        expect(isinstance(value, str) and value != "", f'"{what}" must be a path string.')
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    def _parse(self, item: tuple[str, str]) -> _UserRecord:
        label, line = item
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadRecord(f"not valid JSON ({error}).") from None
        expect(isinstance(record, dict), "each line must be a JSON object.")
        expect(not ("image" in record and "video" in record), 'give "image" or "video", not both.')
        image = self._resolve(record["image"], "image") if "image" in record else None
        video: Path | tuple[Path, ...] | None = None
        if "video" in record:
            value = record["video"]
            if isinstance(value, list):
                expect(len(value) > 0, '"video" frame list is empty.')
                video = tuple(self._resolve(v, "video") for v in value)
            else:
                video = self._resolve(value, "video")
        conversation = get_field(record, "conversation", list)
        expect(len(conversation) > 0, '"conversation" is empty.')
        turns = []
        for k, turn in enumerate(conversation):
            user = get_field(turn, "user", str, f"turn {k}")
            assistant = get_field(turn, "assistant", str, f"turn {k}")
            if "<image>" in user:
                expect(
                    k == 0 and (image is not None or video is not None),
                    "<image> may only appear in the first user text of an image or video sample.",
                )
            elif k == 0 and (image is not None or video is not None):
                user = IMAGE_PREFIX + user
            turns.append(Turn(user, assistant))
        masks = record.get("masks", [])
        expect(isinstance(masks, list), '"masks" must be a list (one entry per [SEG]).')
        num_seg = sum(t.assistant.count("[SEG]") for t in turns)
        expect(num_seg == len(masks), f"the answers hold {num_seg} [SEG] but {len(masks)} masks are given.")
        expect(not masks or image is not None or video is not None, "masks need an image or a video.")
        for k, spec in enumerate(masks):
            _check_mask_spec(spec, f"masks[{k}]", video=video is not None)
            if isinstance(video, tuple):
                frames = len(spec["frames"])
                expect(frames == len(video), f"masks[{k}] has {frames} frames, the video {len(video)}.")
        regions = record.get("regions", [])
        expect(isinstance(regions, list), '"regions" must be a list of masks.')
        expect(not regions or image is not None, '"regions" (visual prompts) are supported for images only.')
        for k, spec in enumerate(regions):
            _check_mask_spec(spec, f"regions[{k}]", video=False)
        return _UserRecord(label, image, video, tuple(turns), tuple(masks), tuple(regions))

    def __len__(self) -> int:
        return len(self._records)

    @property
    def modality_lengths(self) -> list[int]:
        """Length-grouping key of every item: 10000 for videos, 100 for images and text."""
        return [VIDEO_MODALITY_LENGTH if r.video is not None else IMAGE_MODALITY_LENGTH for r in self._records]

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        """Item `index` (`draw > 0` re-draws the video frames).

        Returns:
            The turns; `(H, W)` masks for an image, `(num_frames, H, W)` for a video; `region_masks` `(n, H, W)`.
        """
        index = check_index(index, len(self), self.name)
        record = self._records[index]
        where = f"{self.path}: {record.label}"
        conversation = [Turn(t.user, t.assistant) for t in record.turns]
        try:
            if record.image is not None:
                image = read_image(record.image, where)
                width, height = image.size
                masks = [decode_mask_spec(spec, height, width) for spec in record.masks]
                regions = np.stack([decode_mask_spec(s, height, width) for s in record.regions]) if record.regions else None
                return TrainingSample(
                    conversation, image=image, masks=masks, region_masks=regions, source=f"{self.name}:{where}"
                )
            if record.video is not None:
                return self._video_sample(record, item_rng(self.seed, index, draw), conversation, where)
        except Sa2VADataError:
            raise
        except Sa2VAInputError as error:
            raise Sa2VADataError(f"{where}: {error}") from None
        return TrainingSample(conversation, source=f"{self.name}:{where}")

    def _video_sample(
        self, record: _UserRecord, rng: np.random.Generator, conversation: list[Turn], where: str
    ) -> TrainingSample:
        source = None if isinstance(record.video, tuple) else open_video(record.video)
        try:
            num_total = len(record.video) if source is None else len(source)
            for k, spec in enumerate(record.masks):
                if len(spec["frames"]) != num_total:
                    raise Sa2VADataError(
                        f"{where}: masks[{k}] has {len(spec['frames'])} frames, the video {num_total}."
                    )
            if self.num_frames is None or num_total <= self.num_frames:
                picked = list(range(num_total))
            else:
                picked = [int(i) for i in sample_sorted_frames(rng, num_total, self.num_frames)]
            cache: dict[int, Image.Image] = {}
            for i in sorted(set(picked)):  # increasing order: video files decode forward only
                cache[i] = read_image(record.video[i], where) if source is None else source.frame(i).copy()
        finally:
            if source is not None:
                source.close()
        sizes = {image.size for image in cache.values()}
        if len(sizes) > 1:
            raise Sa2VADataError(f"{where}: the video frames have different sizes {sorted(sizes)}; use one size.")
        frames = [cache[i] for i in picked]
        width, height = frames[0].size
        masks = []
        for spec in record.masks:
            per_frame = [
                decode_mask_spec(spec["frames"][i], height, width)
                if spec["frames"][i] is not None
                else np.zeros((height, width), dtype=bool)
                for i in picked
            ]
            masks.append(np.stack(per_frame))  # (num_frames, H, W)
        return TrainingSample(conversation, frames=frames, masks=masks, source=f"{self.name}:{where}")


__all__ = ["UserDataset"]
