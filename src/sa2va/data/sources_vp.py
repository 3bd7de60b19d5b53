"""Visual-prompt reader: Osprey-724K region conversations and descriptions (REFERENCE_SPEC §3, §7.4).

Each record names an image, its size, the regions (one COCO segmentation each) and either a conversation or one
description per region. The sample carries the regions as `region_masks`; the processor turns them into the
`"There are N part regions in the picture: region1<vp>…</vp>, ….\\n"` sentence right after the image placeholder,
so the first user text here is `"<image>"` followed directly by the question (no newline: the sentence ends with one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from sa2va.data.coco_masks import (
    check_segmentation,
    polygon_to_counts,
    rle_counts,
    sample_counts,
    segmentation_to_mask,
)
from sa2va.data.records import (
    IMAGE_MODALITY_LENGTH,
    Sa2VADataError,
    check_index,
    expect,
    get_field,
    item_rng,
    load_json,
    merge_messages,
    parse_messages,
    parse_records,
    read_image,
    record_label,
)
from sa2va.data.sample import TrainingSample, Turn
from sa2va.data.templates import SHORT_ANSWER_LIMIT, vp_question
from sa2va.errors import Sa2VAInputError

OspreyVariant = Literal["conversation", "description", "short", "part", "positive_neg"]
_VARIANTS = ("conversation", "description", "short", "part", "positive_neg")
REGION_GRID = 16  # InternVL: 448 / 14 * 0.5 cells per side
MIN_REGION_CELLS = 4  # the reference drops samples with a smaller region


@lru_cache(maxsize=256)
def _nearest_rows(size: int, grid: int) -> np.ndarray:
    """Source rows that `F.interpolate(mode="nearest")` reads for each of `grid` output rows (torch's own rounding)."""
    index = torch.arange(size, dtype=torch.float64).reshape(1, 1, size, 1)
    picked = F.interpolate(index, size=(grid, 1), mode="nearest")
    return picked.reshape(grid).to(torch.int64).numpy()


def region_cell_count(segmentation: Any, height: int, width: int, grid: int = REGION_GRID) -> int:
    """Cells of the `grid × grid` nearest-resized region mask that are set, read from run lengths (no full decode).

    Args:
        segmentation: COCO polygons or RLE at `(height, width)`.
        height, width: the mask size.
        grid: cells per side.

    Returns:
        The number of set cells (what the collator's `region_cells` will count).
    """
    rows, cols = _nearest_rows(height, grid), _nearest_rows(width, grid)
    positions = (cols[None, :] * height + rows[:, None]).ravel()  # column-major flat index of each cell's pixel
    if isinstance(segmentation, dict):
        return int(sample_counts(rle_counts(segmentation), positions).sum())
    hit = np.zeros(len(positions), dtype=bool)
    for polygon in segmentation:
        if len(polygon) == 4:  # pycocotools reads 4 numbers as a box; decode it the same way as at load time
            box = segmentation_to_mask([polygon], height, width)
            hit |= box.ravel(order="F")[positions]
        else:
            hit |= sample_counts(polygon_to_counts(polygon, height, width), positions)
    return int(hit.sum())


@dataclass(frozen=True)
class _OspreyRecord:
    label: str
    file_name: str
    height: int
    width: int
    segmentations: tuple[Any, ...]
    messages: tuple[tuple[str, str], ...]  # conversation layouts: (role, text) as in the file
    descriptions: tuple[str, ...]  # description layout


class OspreyDataset:
    """Osprey-724K (`osprey_conversation.json`, `osprey_detail_description.json`, `osprey_short_form.json`,
    `osprey_part_level.json`, `osprey_lvis_positive_negative.json`): a JSON list of `{"file_name", "height", "width",
    "annotation": [{"segmentation": polygons | RLE}, ...], "conversations": [{"from", "value"}, ...]}` or, for
    descriptions, `"description"` / `"descriptions": [str, ...]` (one per region).

    Text follows the reference: `<` and `>` are removed from every message (so `<region1>` reads `region1`); the
    `"short"` layout appends `" Answer the question using a single word or phrase."` to every question; descriptions
    are asked with a random `VP_QUESTIONS` entry about `region{i}`. The first user text is `"<image>"` + the question;
    the processor inserts the region sentence after the image (see the module docstring). Records with a region
    covering fewer than 4 cells of the 16×16 grid are left out at construction (`num_filtered`), as the reference
    drops them.

    Args:
        json_path: the annotation file.
        image_root: folder of the images, or several folders searched in order (the reference's COCO 2014/2017 set).
        variant: the layout, see above.
        seed: item `i` is drawn from `(seed, i)` (description questions).
        skip_bad_records: drop malformed records (counted in `num_skipped`) instead of raising.

    Raises:
        Sa2VADataError: unreadable file, unknown variant, or a malformed record (unless `skip_bad_records`).
    """

    name = "osprey"

    def __init__(
        self,
        json_path: str | os.PathLike[str],
        image_root: str | os.PathLike[str] | list[str | os.PathLike[str]],
        *,
        variant: OspreyVariant | str = "conversation",
        seed: int = 0,
        skip_bad_records: bool = False,
    ) -> None:
        if variant not in _VARIANTS:
            raise Sa2VADataError(f"unknown Osprey variant {variant!r}; expected one of {list(_VARIANTS)}.")
        self.variant, self.seed, self.path = variant, seed, Path(json_path)
        roots = image_root if isinstance(image_root, (list, tuple)) else [image_root]
        self.image_roots = [Path(r) for r in roots]
        data = load_json(self.path)
        if not isinstance(data, list):
            raise Sa2VADataError(f"{self.path}: expected a JSON list of records, got {type(data).__name__}.")
        self._records, report = parse_records(
            [(record_label(i), (record_label(i), r)) for i, r in enumerate(data)],
            self._parse,
            path=self.path,
            skip_bad_records=skip_bad_records,
            name=f"{self.name}/{variant}",
        )
        self.num_skipped, self.num_filtered = report.num_skipped, report.num_filtered

    def _parse(self, item: tuple[str, Any]) -> _OspreyRecord | None:
        label, record = item
        file_name = get_field(record, "file_name", str)
        height, width = get_field(record, "height", int), get_field(record, "width", int)
        expect(height > 0 and width > 0, f"height and width must be positive, got {height}x{width}.")
        annotation = get_field(record, "annotation", list)
        expect(len(annotation) > 0, '"annotation" holds no region.')
        segmentations = []
        for region in annotation:
            segmentation = get_field(region, "segmentation", (list, dict), "region")
            check_segmentation(segmentation)
            if isinstance(segmentation, dict):
                size = list(segmentation["size"])
                expect(size == [height, width], f"a region RLE has size {size}, the record says [{height}, {width}].")
            segmentations.append(segmentation)
        messages: tuple[tuple[str, str], ...] = ()
        descriptions: tuple[str, ...] = ()
        if self.variant == "description":
            key = "description" if "description" in record else "descriptions"
            values = get_field(record, key, list)
            expect(len(values) > 0 and all(isinstance(v, str) for v in values), f'"{key}" must be a list of strings.')
            descriptions = tuple(values)
        else:
            messages = tuple(parse_messages(get_field(record, "conversations", list)))
            expect(len(merge_messages(list(messages))) > 0, "the conversation has no question followed by an answer.")
        try:
            counts = [region_cell_count(s, height, width) for s in segmentations]
        except Sa2VAInputError as error:
            raise Sa2VADataError(str(error)) from None
        if min(counts) < MIN_REGION_CELLS:
            return None
        return _OspreyRecord(label, file_name, height, width, tuple(segmentations), messages, descriptions)

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
        """Item `index` (`draw` re-draws the description questions).

        Returns:
            The turns, the image, no `[SEG]` masks, and `region_masks` `(num_regions, H, W)` bool.
        """
        index = check_index(index, len(self), self.name)
        record = self._records[index]
        rng = item_rng(self.seed, index, draw)
        turns = self._turns(record, rng)
        where = f"{self.path}: {record.label}"
        image = read_image(self._find_image(record.file_name, where), where)
        if image.size != (record.width, record.height):
            raise Sa2VADataError(
                f"{where}: the image is {image.size[0]}x{image.size[1]} but the record says "
                f"{record.width}x{record.height} (width x height)."
            )
        try:
            regions = np.stack([segmentation_to_mask(s, record.height, record.width) for s in record.segmentations])
        except Sa2VAInputError as error:
            raise Sa2VADataError(f"{where}: {error}") from None
        return TrainingSample(conversation=turns, image=image, region_masks=regions, source=f"{self.name}:{where}")

    def _turns(self, record: _OspreyRecord, rng: np.random.Generator) -> list[Turn]:
        limit = SHORT_ANSWER_LIMIT if self.variant == "short" else ""
        if self.variant == "description":
            messages = []
            for i, description in enumerate(record.descriptions):
                messages.append(("human", vp_question(i + 1, rng) + limit))
                messages.append(("gpt", description.replace("<", "").replace(">", "")))
        else:
            messages = [
                (role, text.replace("<", "").replace(">", "") + (limit if role == "human" else ""))
                for role, text in record.messages
            ]
        if messages[0][0] == "human":
            # The reference puts the image (and region sentence) before the first message and strips that message.
            messages[0] = ("human", "<image>" + messages[0][1].rstrip())
        return merge_messages(messages)

    def _find_image(self, file_name: str, where: str) -> Path:
        for root in self.image_roots:
            if (root / file_name).is_file():
                return root / file_name
        folders = ", ".join(str(r) for r in self.image_roots)
        raise Sa2VADataError(f"{where}: image {file_name} is in none of the image folders ({folders}).")


__all__ = ["OspreyDataset", "OspreyVariant", "region_cell_count", "REGION_GRID", "MIN_REGION_CELLS"]
