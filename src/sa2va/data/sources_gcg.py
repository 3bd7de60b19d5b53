"""Grounded conversation generation (GCG) readers: GranDf, OpenPSG, RefCOCOg-GCG and Flickr30k-GCG (GLaMM's
annotation files), as the reference trains on them (REFERENCE_SPEC §4, §7.4).

An item is one turn: `"<image>\\n"` + a random `GCG_QUESTIONS` entry, answered by the caption with each grounded span
wrapped as `"<p> span </p> [SEG]"`; the masks are sorted by span start, so mask `k` belongs to the `k`-th `[SEG]`.
Records whose caption has no grounded phrase are left out (the reference skips them), counted in `num_filtered`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sa2va.data.coco_masks import check_rle, check_segmentation, rle_mask, segmentation_to_mask
from sa2va.data.records import (
    IMAGE_MODALITY_LENGTH,
    BadRecord,
    Sa2VADataError,
    check_index,
    expect,
    get_field,
    item_rng,
    load_json,
    parse_records,
    read_image,
    record_label,
)
from sa2va.data.sample import TrainingSample, Turn
from sa2va.data.templates import gcg_question, tag_caption
from sa2va.errors import Sa2VAInputError

GCGVariant = Literal["grandf", "psg", "refcocog", "flickr"]
# The reference's names for the same layouts.
_ALIASES = {"grandf": "grandf", "psg": "psg", "openpsg": "psg", "generic": "grandf", "refcocog": "refcocog",
            "flickr": "flickr", "flickr30k": "flickr"}  # fmt: skip


@dataclass(frozen=True)
class _Phrase:
    start: int
    end: int
    kind: str  # "rles": a list of RLEs to union; "segmentation": COCO polygons / RLE; "rle": one RLE
    mask: Any


@dataclass(frozen=True)
class _GCGRecord:
    label: str
    file_name: str
    caption: str
    phrases: tuple[_Phrase, ...]  # sorted by start


def _span(value: Any) -> tuple[int, int]:
    expect(
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] <= value[1],
        f"a character span must be [start, end] with 0 <= start <= end, got {value!r}.",
    )
    return int(value[0]), int(value[1])


def _size_field(record: dict, key: str) -> int:
    value = get_field(record, key, (int, float, str))
    try:
        return int(float(value))
    except ValueError:
        raise BadRecord(f'"{key}" must be a number, got {value!r}.') from None


class GCGDataset:
    """GLaMM's GCG annotation files.

    Layouts (`variant`):

    * `"grandf"` / `"psg"` (GranDf_HA_GCG_train.json, OpenPsgGCG_train.json): a JSON list of
      `{"file_name", "caption", "groundings": {phrase: {"token_positives": [start, end], "rle_masks": [RLE, ...]}}}`;
      the caption is stripped of `"` and spaces, a phrase's mask is the union of its RLEs.
    * `"refcocog"` (RefCOCOg_GCG_train.json): a JSON list of one-key objects `{key: {"img_file_name", "caption",
      "refs": [{"sentence", "segmentation": polygons}]}}`; the caption is stripped and lowercased, a ref is grounded at
      the first occurrence of its lowercased sentence (refs not found in the caption are dropped), span length is the
      sentence's.
    * `"flickr"` (flickr_mergedGT_GCG_train.json): COCO style, `images` with `id`, `file_name`, `caption`, `height`,
      `width`, and `annotations` with `image_id`, `bbox`, `area`, `tokens_positive` (first span used), `sam_mask`
      (RLE), optional `ignore`. Captions under 3 words and images smaller than 32 px are left out; annotations that are
      ignored, have no area or a box outside the image are dropped, as in the reference.

    Args:
        annotations: the annotation file.
        image_root: folder the image names are relative to.
        variant: the layout, see above (`"openpsg"`, `"flickr30k"` are accepted too).
        seed: item `i` is drawn from `(seed, i)` (the question template).
        skip_bad_records: drop malformed records (counted in `num_skipped`) instead of raising.

    Raises:
        Sa2VADataError: unreadable file, unknown variant, or a malformed record (unless `skip_bad_records`).
    """

    name = "gcg"

    def __init__(
        self,
        annotations: str | os.PathLike[str],
        image_root: str | os.PathLike[str],
        *,
        variant: GCGVariant | str = "grandf",
        seed: int = 0,
        skip_bad_records: bool = False,
    ) -> None:
        if variant not in _ALIASES:
            raise Sa2VADataError(f"unknown GCG variant {variant!r}; expected one of {sorted(set(_ALIASES))}.")
        self.variant = _ALIASES[variant]
        self.path, self.image_root, self.seed = Path(annotations), Path(image_root), seed
        data = load_json(self.path)
        if self.variant == "flickr":
            items, parse = self._flickr_items(data)
        else:
            if not isinstance(data, list):
                raise Sa2VADataError(f"{self.path}: expected a JSON list of records, got {type(data).__name__}.")
            parse = self._parse_refcocog if self.variant == "refcocog" else self._parse_generic
            items = [(record_label(i), (record_label(i), r)) for i, r in enumerate(data)]
        self._records, report = parse_records(
            items, parse, path=self.path, skip_bad_records=skip_bad_records, name=f"{self.name}/{self.variant}"
        )
        self.num_skipped, self.num_filtered = report.num_skipped, report.num_filtered

    # ------------------------------------------------------------------ parsing
    @staticmethod
    def _finish(label: str, file_name: str, caption: str, phrases: list[_Phrase]) -> _GCGRecord | None:
        if not phrases:
            return None  # nothing grounded: the reference skips the sample
        ordered = sorted(phrases, key=lambda p: p.start)  # stable, as the reference's sort
        return _GCGRecord(label, file_name, caption, tuple(ordered))

    def _parse_generic(self, item: tuple[str, Any]) -> _GCGRecord | None:
        label, record = item
        file_name = get_field(record, "file_name", str)
        caption = get_field(record, "caption", str).strip('"').strip()
        groundings = record.get("groundings", {})
        expect(isinstance(groundings, dict), '"groundings" must be an object {phrase: grounding}.')
        phrases = []
        for phrase, grounding in groundings.items():
            span = _span(get_field(grounding, "token_positives", list, f"grounding {phrase!r}"))
            rles = get_field(grounding, "rle_masks", list, f"grounding {phrase!r}")
            for rle in rles:
                check_rle(rle)
            phrases.append(_Phrase(span[0], span[1], "rles", rles))
        return self._finish(label, file_name, caption, phrases)

    def _parse_refcocog(self, item: tuple[str, Any]) -> _GCGRecord | None:
        label, line = item
        expect(isinstance(line, dict) and len(line) > 0, "expected an object {key: record}.")
        record = next(iter(line.values()))
        file_name = get_field(record, "img_file_name", str)
        caption = get_field(record, "caption", str).strip('"').strip().lower()
        refs = record.get("refs", [])
        expect(isinstance(refs, list), '"refs" must be a list.')
        phrases = []
        for ref in refs:
            sentence = get_field(ref, "sentence", str)
            segmentation = get_field(ref, "segmentation", (list, dict), f"ref {sentence!r}")
            if sentence.lower() not in caption:
                continue
            check_segmentation(segmentation)
            start = caption.find(sentence.lower())
            phrases.append(_Phrase(start, start + len(sentence), "segmentation", segmentation))
        return self._finish(label, file_name, caption, phrases)

    def _flickr_items(self, data: Any) -> tuple[list[tuple[str, Any]], Any]:
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
            raise Sa2VADataError(f'{self.path}: expected a COCO object with "images" and "annotations" lists.')
        by_image: dict[Any, list[Any]] = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann.get("image_id") if isinstance(ann, dict) else None, []).append(ann)
        items = [
            (record_label(i, image), (record_label(i, image), image, by_image.get(image.get("id"), [])))
            for i, image in enumerate(data["images"])
            if isinstance(image, dict)
        ]
        return items, self._parse_flickr

    def _parse_flickr(self, item: tuple[str, Any, list[Any]]) -> _GCGRecord | None:
        label, image, anns = item
        file_name = get_field(image, "file_name", str)
        caption = get_field(image, "caption", str)
        width, height = _size_field(image, "width"), _size_field(image, "height")
        if len(caption.split(" ")) < 3 or min(width, height) < 32:
            return None
        phrases = []
        for ann in anns:
            expect(isinstance(ann, dict), "every annotation must be an object.")
            if ann.get("ignore", False):
                continue
            bbox = get_field(ann, "bbox", list, "annotation box")
            expect(len(bbox) == 4, f"an annotation bbox must be [x, y, w, h], got {bbox!r}.")
            x1, y1, w, h = (float(v) for v in bbox)
            inter_w = max(0.0, min(x1 + w, width) - max(x1, 0.0))
            inter_h = max(0.0, min(y1 + h, height) - max(y1, 0.0))
            if inter_w * inter_h == 0 or float(ann.get("area", 0)) <= 0 or w < 1 or h < 1:
                continue
            spans = get_field(ann, "tokens_positive", list)
            expect(len(spans) > 0, '"tokens_positive" is empty.')
            start, end = _span(spans[0])
            rle = get_field(ann, "sam_mask", dict)
            check_rle(rle)
            phrases.append(_Phrase(start, end, "rle", rle))
        return self._finish(label, file_name, caption, phrases)

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self._records)

    @property
    def modality_lengths(self) -> list[int]:
        """Length-grouping key of every item (images: 100)."""
        return [IMAGE_MODALITY_LENGTH] * len(self)

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        """Item `index` (`draw` re-draws the question).

        Returns:
            One turn; masks: one `(H, W)` bool per grounded phrase, in `[SEG]` order.
        """
        index = check_index(index, len(self), self.name)
        record = self._records[index]
        rng = item_rng(self.seed, index, draw)
        question = gcg_question(rng)
        answer = tag_caption(record.caption, [(p.start, p.end) for p in record.phrases])
        where = f"{self.path}: {record.label}"
        image = read_image(self.image_root / record.file_name, where)
        width, height = image.size
        try:
            masks = [self._mask(p, height, width) for p in record.phrases]
        except Sa2VAInputError as error:
            raise Sa2VADataError(f"{where}: {error}") from None
        return TrainingSample(
            conversation=[Turn(question, answer)], image=image, masks=masks, source=f"{self.name}:{where}"
        )

    @staticmethod
    def _mask(phrase: _Phrase, height: int, width: int) -> np.ndarray:
        if phrase.kind == "rles":
            mask = np.zeros((height, width), dtype=bool)
            for rle in phrase.mask:
                mask |= rle_mask(rle, height, width)
            return mask
        if phrase.kind == "rle":
            return rle_mask(phrase.mask, height, width)
        return segmentation_to_mask(phrase.mask, height, width)


__all__ = ["GCGDataset", "GCGVariant"]
