"""Readers of the public image datasets: RefCOCO / RefCOCO+ / RefCOCOg (REFER format), LLaVA conversations and the
reference's fine-tuning example format.

Every reader is a map-style dataset: the constructor parses the annotation files (text only); `__getitem__(i)` reads
the image, decodes the masks and draws the random choices of the reference from `numpy.random.default_rng((seed,
i))`, so an item is the same every time it is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sa2va.data.coco_masks import check_polygons, check_segmentation, segmentation_to_mask
from sa2va.data.records import (
    IMAGE_MODALITY_LENGTH,
    Sa2VADataError,
    check_index,
    expect,
    get_field,
    item_rng,
    load_annotation,
    load_json,
    merge_messages,
    parse_messages,
    parse_records,
    read_image,
    record_label,
)
from sa2va.data.sample import TrainingSample, Turn
from sa2va.data.templates import clean_refcoco_phrase, referring_turns
from sa2va.errors import Sa2VAInputError

PathLike = str | os.PathLike[str]


def _decode(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    try:
        return segmentation_to_mask(segmentation, height, width)
    except Sa2VAInputError as error:
        raise Sa2VADataError(f"{where}: {error}") from None


# --------------------------------------------------------------------------------------------------------------------
# RefCOCO family
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RefObject:
    ann_id: int
    phrase: str  # the sentence drawn for this object at construction, cleaned
    segmentation: Any  # COCO polygons or RLE


@dataclass(frozen=True)
class _RefImage:
    image_id: int
    file_name: str
    objects: tuple[_RefObject, ...]


class RefCOCODataset:
    """RefCOCO, RefCOCO+ and RefCOCOg in the REFER format, as the reference trains on them (REFERENCE_SPEC §7.4).

    Files: `refs(unc).p` (RefCOCO, RefCOCO+) or `refs(umd).p` (RefCOCOg), a pickled list of refs
    `{"ref_id", "ann_id", "image_id", "split", "sentences": [{"raw", ...}], ...}`, read with a restricted unpickler
    that only builds plain builtin data (no code in the file can run; see `sa2va.data.safe_pickle`); and the COCO
    `instances.json` of the same folder (`images` with `id` / `file_name`, `annotations` with `id` / `image_id` /
    `segmentation`, polygons or RLE).

    One item per image that has refs of `split`. Each referred object keeps one sentence, drawn once at
    construction (the reference's `text_mode="random"`), lowercased with one trailing `.` removed. An item picks
    `num_pairs` objects with replacement and asks about each in turn: `"<image>\\n"` + a `SEG_QUESTIONS` template on
    the first turn, a template on the others, an `ANSWER_LIST` answer each.

    Args:
        refs_pickle: the REFER refs pickle.
        instances_json: the COCO instances file.
        image_root: folder of the COCO images (e.g. `train2014/`).
        split: refs of this split are used.
        num_pairs: (object, sentence) pairs per item.
        seed: item `i` is drawn from `(seed, i)`; the per-object sentences from `seed`.
        skip_bad_records: drop malformed refs (counted in `num_skipped`) instead of raising.

    Raises:
        Sa2VADataError: unreadable files, or a malformed ref (unless `skip_bad_records`).
    """

    name = "refcoco"

    def __init__(
        self,
        refs_pickle: PathLike,
        instances_json: PathLike,
        image_root: PathLike,
        *,
        split: str = "train",
        num_pairs: int = 5,
        seed: int = 0,
        skip_bad_records: bool = False,
    ) -> None:
        if num_pairs < 1:
            raise Sa2VADataError(f"num_pairs must be >= 1, got {num_pairs}.")
        self.refs_pickle, self.instances_json = Path(refs_pickle), Path(instances_json)
        self.image_root = Path(image_root)
        self.split, self.num_pairs, self.seed = split, num_pairs, seed
        refs = load_annotation(self.refs_pickle)
        if not isinstance(refs, list):
            raise Sa2VADataError(f"{self.refs_pickle}: expected a pickled list of refs, got {type(refs).__name__}.")
        instances = load_json(self.instances_json)
        if not isinstance(instances, dict) or not all(
            isinstance(instances.get(k), list) for k in ("images", "annotations")
        ):
            raise Sa2VADataError(
                f'{self.instances_json}: expected a COCO object with "images" and "annotations" lists.'
            )
        anns = {a.get("id"): a for a in instances["annotations"] if isinstance(a, dict)}
        images = {i.get("id"): i for i in instances["images"] if isinstance(i, dict)}

        def parse(ref: Any) -> tuple[int, int, str, list[str], Any]:
            get_field(ref, "split", str)
            ann_id = get_field(ref, "ann_id", int)
            sentences = get_field(ref, "sentences", list)
            texts = []
            for sentence in sentences:
                raw = sentence.get("raw") if isinstance(sentence, dict) else None
                expect(
                    isinstance(raw, str) and clean_refcoco_phrase(raw) != "", 'every sentence needs a non-empty "raw".'
                )
                texts.append(raw.lower())
            expect(len(texts) > 0, 'the ref has no "sentences".')
            ann = anns.get(ann_id)
            expect(ann is not None, f"ann_id {ann_id} is not in {self.instances_json.name}.")
            image_id = ref.get("image_id", ann.get("image_id"))
            image = images.get(image_id)
            expect(
                image is not None and isinstance(image.get("file_name"), str),
                f"image_id {image_id!r} has no image with a file_name in {self.instances_json.name}.",
            )
            segmentation = get_field(ann, "segmentation", (list, dict), f"annotation {ann_id}")
            check_segmentation(segmentation)
            return ann_id, image_id, image["file_name"], texts, segmentation

        items = [
            (record_label(i, ref, "ref_id"), ref)
            for i, ref in enumerate(refs)
            if not (isinstance(ref, dict) and "split" in ref and ref["split"] != split)
        ]
        parsed, report = parse_records(
            items, parse, path=self.refs_pickle, skip_bad_records=skip_bad_records, name=self.name
        )
        self.num_skipped, self.num_filtered = report.num_skipped, report.num_filtered
        # Several refs may point at one object: the last one's sentences win, the first one's position stays.
        by_ann: dict[int, tuple[int, int, str, list[str], Any]] = {}
        for entry in parsed:
            by_ann[entry[0]] = entry
        sentence_rng = np.random.default_rng((seed, 0x5E4))  # one draw per object, at load, as the reference
        grouped: dict[int, list[_RefObject]] = {}
        names: dict[int, str] = {}
        for ann_id, image_id, file_name, texts, segmentation in by_ann.values():
            phrase = clean_refcoco_phrase(texts[int(sentence_rng.integers(len(texts)))])
            grouped.setdefault(image_id, []).append(_RefObject(ann_id, phrase, segmentation))
            names[image_id] = file_name
        self._images = [_RefImage(i, names[i], tuple(objects)) for i, objects in grouped.items()]

    def __len__(self) -> int:
        return len(self._images)

    @property
    def modality_lengths(self) -> list[int]:
        """Length-grouping key of every item (images: 100)."""
        return [IMAGE_MODALITY_LENGTH] * len(self)

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        """Item `index`; `draw > 0` gives an independent re-draw of its random choices (used for repeats).

        Returns:
            `num_pairs` turns, the RGB image, and `num_pairs` `(H, W)` bool masks.
        """
        index = check_index(index, len(self), self.name)
        entry = self._images[index]
        rng = item_rng(self.seed, index, draw)
        picks = rng.integers(0, len(entry.objects), size=self.num_pairs)
        objects = [entry.objects[int(p)] for p in picks]
        turns = referring_turns([o.phrase for o in objects], rng)
        where = f"{self.refs_pickle}: image {entry.image_id}"
        image = read_image(self.image_root / entry.file_name, where)
        width, height = image.size
        decoded: dict[int, np.ndarray] = {}
        for obj in objects:
            if obj.ann_id not in decoded:
                decoded[obj.ann_id] = _decode(obj.segmentation, height, width, f"{where}, annotation {obj.ann_id}")
        return TrainingSample(
            conversation=turns,
            image=image,
            masks=[decoded[o.ann_id] for o in objects],
            source=f"{self.name}:{self.refs_pickle}:image {entry.image_id}",
        )


# --------------------------------------------------------------------------------------------------------------------
# Fine-tuning example format (docs/finetune.md of the reference)
# --------------------------------------------------------------------------------------------------------------------


class FinetuneDataset:
    """The reference's fine-tuning format: a JSON list of `{"image": file, "mask": [polygons per object],
    "text": [one description per object]}`.

    Every object of the image becomes one referring turn, in file order (cleaned like RefCOCO: lowercased, one
    trailing `.` removed), with a random `SEG_QUESTIONS` template and `ANSWER_LIST` answer.

    Args:
        annotations_json: the annotation list.
        image_root: folder the `image` names are relative to.
        seed: item `i` is drawn from `(seed, i)`.
        skip_bad_records: drop malformed records (counted in `num_skipped`) instead of raising.
    """

    name = "finetune"

    def __init__(
        self, annotations_json: PathLike, image_root: PathLike, *, seed: int = 0, skip_bad_records: bool = False
    ) -> None:
        self.path, self.image_root, self.seed = Path(annotations_json), Path(image_root), seed
        data = load_json(self.path)
        if not isinstance(data, list):
            raise Sa2VADataError(f"{self.path}: expected a JSON list of records, got {type(data).__name__}.")

        def parse(record: Any) -> tuple[str, list[str], list[Any]]:
            image = get_field(record, "image", str)
            masks = get_field(record, "mask", list)
            texts = get_field(record, "text", list)
            expect(len(masks) == len(texts) > 0, f'"mask" ({len(masks)}) and "text" ({len(texts)}) must pair up.')
            expect(
                all(isinstance(t, str) and clean_refcoco_phrase(t) for t in texts),
                '"text" must hold non-empty strings.',
            )
            for polygons in masks:
                check_polygons(polygons)
            return image, [clean_refcoco_phrase(t) for t in texts], masks

        self._records, report = parse_records(
            ((record_label(i), r) for i, r in enumerate(data)),
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
        """Length-grouping key of every item (images: 100)."""
        return [IMAGE_MODALITY_LENGTH] * len(self)

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        """Item `index` (`draw` re-draws the templates). Masks: one `(H, W)` bool per object."""
        index = check_index(index, len(self), self.name)
        image_name, phrases, polygons = self._records[index]
        rng = item_rng(self.seed, index, draw)
        where = f"{self.path}: {record_label(index)}"
        image = read_image(self.image_root / image_name, where)
        width, height = image.size
        masks = [_decode(p, height, width, where) for p in polygons]
        return TrainingSample(
            conversation=referring_turns(phrases, rng), image=image, masks=masks, source=f"{self.name}:{where}"
        )


# --------------------------------------------------------------------------------------------------------------------
# LLaVA conversations
# --------------------------------------------------------------------------------------------------------------------


class LLaVADataset:
    """LLaVA-style conversations (e.g. `llava_v1_5_mix665k.json`): a JSON list of
    `{"id", "image"?: file, "conversations": [{"from": "human" | "gpt", "value": str}, ...]}`.

    Text is turned into turns as the reference encodes it: leading answers are dropped, consecutive questions are
    concatenated, answers are stripped. With an image, the message holding `<image>` is stripped and keeps the tag
    where it is (it must be the first message); without one, `<image>` tags are removed. Records without `image` are
    pure-text samples (`image=None`), unless `skip_pure_text` leaves them out.

    Args:
        json_path: the conversation file.
        image_root: folder the `image` names are relative to.
        skip_pure_text: leave out records without an image (the reference does for Qwen-VL).
        seed: unused by this reader's content (kept for a uniform interface).
        skip_bad_records: drop malformed records (counted in `num_skipped`) instead of raising.
    """

    name = "llava"

    def __init__(
        self,
        json_path: PathLike,
        image_root: PathLike,
        *,
        skip_pure_text: bool = False,
        seed: int = 0,
        skip_bad_records: bool = False,
    ) -> None:
        self.path, self.image_root, self.seed = Path(json_path), Path(image_root), seed
        data = load_json(self.path)
        if not isinstance(data, list):
            raise Sa2VADataError(f"{self.path}: expected a JSON list of records, got {type(data).__name__}.")

        def parse(record: Any) -> tuple[str | None, tuple[Turn, ...]] | None:
            image = record.get("image") if isinstance(record, dict) else None
            expect(image is None or isinstance(image, str), '"image" must be a file name.')
            if image is None and skip_pure_text:
                return None
            messages = parse_messages(get_field(record, "conversations", list))
            converted = []
            for position, (role, value) in enumerate(messages):
                if role == "human" and "<image>" in value:
                    if image is None:
                        value = value.replace("<image>", "")
                    else:
                        expect(
                            position == 0 or all(r == "gpt" for r, _ in messages[:position]),
                            "<image> must be in the first question.",
                        )
                        value = value.strip()
                converted.append((role, value))
            turns = merge_messages(converted)
            expect(len(turns) > 0, "the conversation has no question followed by an answer.")
            return image, tuple(turns)

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
        """Length-grouping key of every item (images and pure text: 100)."""
        return [IMAGE_MODALITY_LENGTH] * len(self)

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        """Item `index` (nothing is random here; `draw` is accepted for a uniform interface). No masks."""
        index = check_index(index, len(self), self.name)
        image_name, turns = self._records[index]
        where = f"{self.path}: {record_label(index)}"
        image = read_image(self.image_root / image_name, where) if image_name is not None else None
        conversation = [Turn(t.user, t.assistant) for t in turns]
        return TrainingSample(conversation=conversation, image=image, source=f"{self.name}:{where}")


__all__ = ["RefCOCODataset", "FinetuneDataset", "LLaVADataset"]
