"""Shared plumbing of the dataset readers: the data error, annotation loading, per-record validation with
`skip_bad_records`, image reading and the reference's frame-sampling rules.

Readers parse annotation files in their constructor (cheap, text only) and decode images, frames and masks in
`__getitem__`. A record that is malformed at parse time raises :class:`Sa2VADataError` naming the file and the record,
or, with `skip_bad_records=True`, is dropped, counted in the reader's `num_skipped` and reported in one log line.
Problems only visible while decoding (a missing image, an RLE that does not decode) always raise.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from sa2va.data.sample import Turn
from sa2va.errors import Sa2VAInputError
from sa2va.processing.images import to_rgb

logger = logging.getLogger(__name__)

T = TypeVar("T")

IMAGE_MODALITY_LENGTH = 100  # length-grouping keys of the reference (images, videos, Ref-SAV videos)
VIDEO_MODALITY_LENGTH = 10000
REFSAV_MODALITY_LENGTH = 20000


class Sa2VADataError(Sa2VAInputError):
    """A training annotation file or one of its records is malformed, or a file it names cannot be read."""


class BadRecord(Exception):
    """Raised by a record parser: what is wrong with the record (the driver adds the file and record names)."""


@dataclass
class ParseReport:
    """What parsing one annotation file dropped.

    Attributes:
        num_skipped: malformed records dropped because `skip_bad_records=True`.
        num_filtered: well-formed records the reference also leaves out (e.g. GCG samples without a grounded phrase,
            Osprey samples with a region under 4 cells).
    """

    num_skipped: int = 0
    num_filtered: int = 0


def record_label(index: int | str, record: Any = None, key: str = "id") -> str:
    """`"record 3 (id 'abc')"`: how errors name a record."""
    label = f"record {index!r}" if isinstance(index, str) else f"record {index}"
    if isinstance(record, dict) and key in record and isinstance(record[key], (str, int)):
        label += f" ({key} {record[key]!r})"
    return label


def parse_records(
    items: Iterable[tuple[str, Any]],
    parse: Callable[[Any], T | None],
    *,
    path: str | os.PathLike[str],
    skip_bad_records: bool,
    name: str,
) -> tuple[list[T], ParseReport]:
    """Run `parse` over every record, collecting results.

    Args:
        items: `(label, record)` pairs; the label names the record in errors (see :func:`record_label`).
        parse: returns the parsed record, `None` to leave a well-formed record out, or raises :class:`BadRecord`.
        path: the annotation file, named in errors.
        skip_bad_records: drop malformed records instead of raising.
        name: the reader's name, for the log line.

    Returns:
        The parsed records in order, and what was dropped.

    Raises:
        Sa2VADataError: a malformed record, unless `skip_bad_records`.
    """
    parsed: list[T] = []
    report = ParseReport()
    first_problem = ""
    for label, record in items:
        try:
            result = parse(record)
        except (BadRecord, Sa2VAInputError) as error:
            if not skip_bad_records:
                raise Sa2VADataError(
                    f"{path}: {label}: {error} Fix the record, or pass skip_bad_records=True to drop malformed records."
                ) from None
            report.num_skipped += 1
            first_problem = first_problem or f"{label}: {error}"
            continue
        if result is None:
            report.num_filtered += 1
        else:
            parsed.append(result)
    if report.num_skipped:
        logger.warning(
            "%s: skipped %d malformed record(s) of %s (first: %s)", name, report.num_skipped, path, first_problem
        )
    if report.num_filtered:
        logger.info("%s: left out %d record(s) of %s as the reference does", name, report.num_filtered, path)
    return parsed, report


def load_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON annotation file.

    Raises:
        Sa2VADataError: missing or not valid JSON.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise Sa2VADataError(f"cannot read annotation file {path} ({error}).") from None
    except json.JSONDecodeError as error:
        raise Sa2VADataError(f"{path} is not valid JSON ({error}).") from None


def load_annotation(path: str | os.PathLike[str]) -> Any:
    """A `.json` file, or a `.pkl` / `.p` / `.pickle` file read with the restricted unpickler (no code can run)."""
    from sa2va.data.safe_pickle import load_pickle

    path = Path(path)
    if path.suffix.lower() in (".pkl", ".p", ".pickle"):
        try:
            return load_pickle(path)
        except Sa2VAInputError as error:
            raise Sa2VADataError(str(error)) from None
    return load_json(path)


def expect(condition: bool, message: str) -> None:
    """Raise :class:`BadRecord` with `message` unless `condition` (record validation, never `assert`)."""
    if not condition:
        raise BadRecord(message)


def get_field(record: Any, key: str, kind: type | tuple[type, ...], what: str = "") -> Any:
    """`record[key]`, checked to be a dict field of type `kind`.

    Raises:
        BadRecord: the record is not a dict, lacks the key, or the value has the wrong type.
    """
    if not isinstance(record, dict):
        raise BadRecord(f"expected a JSON object, got {type(record).__name__}.")
    if key not in record:
        raise BadRecord(f'missing key "{key}"{f" ({what})" if what else ""}.')
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
        names = "/".join(k.__name__ for k in _as_tuple(kind))
        raise BadRecord(f'"{key}" must be {names}, got {type(value).__name__}.')
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def read_image(path: Path, where: str) -> Image.Image:
    """Open an image file as RGB.

    Args:
        path: the image file.
        where: `"file: record"` of the annotation naming it, for the error.

    Raises:
        Sa2VADataError: missing or unreadable.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (OSError, UnidentifiedImageError, Sa2VAInputError) as error:
        raise Sa2VADataError(f"{where}: cannot read image {path} ({error}).") from None


def sample_sorted_frames(rng: np.random.Generator, num_frames: int, k: int) -> np.ndarray:
    """The reference's key-frame draw for referring video data: `k` sorted indices, without replacement when the
    video has more than `k + 1` frames, with replacement otherwise (so short videos repeat frames).

    Returns:
        `(k,)` int64 sorted frame indices.
    """
    replace = num_frames <= k + 1
    return np.sort(rng.choice(num_frames, size=k, replace=replace))


def segment_frames(rng: np.random.Generator, num_frames: int, k: int) -> list[int]:
    """The reference's video-QA draw: all frames when there are at most `k`; otherwise the video is cut into `k`
    equal segments (`linspace(0, n, k + 1)` floored) and one random frame is taken from each.

    Returns:
        Increasing frame indices (`min(num_frames, k)` of them).
    """
    if num_frames <= k:
        return list(range(num_frames))
    bounds = np.linspace(0, num_frames, num=k + 1, dtype=int)
    return [int(rng.integers(bounds[i], bounds[i + 1])) for i in range(k)]


def item_rng(seed: int, index: int, draw: int = 0) -> np.random.Generator:
    """The generator of item `index`: `(seed, index)`, or `(seed, index, draw)` for a later draw of a repeat."""
    return np.random.default_rng((seed, index) if draw == 0 else (seed, index, draw))


def check_index(index: int, length: int, name: str) -> int:
    """Support negative indices like a list; raise IndexError outside the dataset."""
    if not isinstance(index, (int, np.integer)):
        raise TypeError(f"{name} indices must be integers, got {type(index).__name__}.")
    index = int(index)
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"{name} index {index} out of range for {length} items.")
    return index


def parse_messages(messages: Any, key: str = "conversations") -> list[tuple[str, str]]:
    """Validate a LLaVA-style message list `[{"from": "human" | "gpt", "value": str}, ...]`.

    Returns:
        `(role, value)` pairs.

    Raises:
        BadRecord: not a list of such dicts.
    """
    expect(isinstance(messages, list) and len(messages) > 0, f'"{key}" must be a non-empty list of messages.')
    pairs = []
    for position, message in enumerate(messages):
        expect(isinstance(message, dict), f'"{key}"[{position}] must be an object with "from" and "value".')
        role, value = message.get("from"), message.get("value")
        expect(role in ("human", "gpt"), f'"{key}"[{position}]["from"] must be "human" or "gpt", got {role!r}.')
        expect(isinstance(value, str), f'"{key}"[{position}]["value"] must be a string.')
        pairs.append((role, value))
    return pairs


def merge_messages(messages: list[tuple[str, str]]) -> list[Turn]:
    """Messages into turns as the reference encodes them: leading answers are dropped, consecutive user messages are
    concatenated (no separator), each answer closes a turn and is stripped, a trailing question is dropped.

    Args:
        messages: `(role, text)` pairs, role `"human"` or `"gpt"`, texts already transformed by the caller.
    """
    turns: list[Turn] = []
    pending = ""
    started = False
    for role, text in messages:
        if role == "human":
            pending += text
            started = True
        elif started:
            turns.append(Turn(user=pending, assistant=text.strip()))
            pending = ""
    return turns


__all__ = [
    "Sa2VADataError",
    "BadRecord",
    "ParseReport",
    "record_label",
    "parse_records",
    "load_json",
    "load_annotation",
    "expect",
    "get_field",
    "read_image",
    "sample_sorted_frames",
    "segment_frames",
    "item_rng",
    "check_index",
    "parse_messages",
    "merge_messages",
    "IMAGE_MODALITY_LENGTH",
    "VIDEO_MODALITY_LENGTH",
    "REFSAV_MODALITY_LENGTH",
]
