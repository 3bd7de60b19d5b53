"""Lazy, memory-bounded video frame sources.

A video reaches the model as a :class:`FrameSource`: something with a length that hands out one RGB PIL frame at a
time. Nothing of size ``(num_frames, height, width)`` is ever materialised here; each source keeps at most a small
LRU cache of decoded frames (``cache_size``, 3 by default), so a one-hour video costs the same memory as a short clip.

Sources:

* :class:`ListFrames`: a list of PIL images or numpy arrays (only references are kept).
* :class:`ArrayFrames`: one numpy array ``(num_frames, height, width[, channels])``, indexed without copying.
* :class:`FolderFrames`: a folder of jpg/jpeg/png/bmp/webp files in natural order (``2.jpg`` before ``10.jpg``),
  decoded on access.
* :class:`VideoFileFrames`: a video file (mp4, webm, mov, avi, mkv, ...) decoded lazily and sequentially with PyAV.
* :class:`SelectedFrames`: a view of a subset of another source's frames, made by :func:`open_video`.

:func:`open_video` turns any of the accepted inputs into a source and applies the ``stride`` / ``fps`` /
``max_frames`` selection. Every frame is normalised with :func:`sa2va.processing.images.to_rgb`, and a frame whose size
differs from the first frame's is resized to it (bilinear) with a warning, lazily when it is read.

Sources are not thread-safe: give each thread its own.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from fractions import Fraction
from numbers import Integral, Real
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image

from sa2va.errors import Sa2VAInputError
from sa2va.processing.images import to_rgb

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv"})
DEFAULT_CACHE_SIZE = 3


# --------------------------------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------------------------------


class FrameSource:
    """A video as a sequence of RGB frames that are decoded one at a time.

    Subclasses implement ``__len__`` and ``_read(index)``; this class adds the LRU cache, the index check and the
    resize-to-the-first-frame's-size rule. A duck-typed source only needs ``__len__``, ``frame``, ``size``,
    ``source_indices`` and ``fps``.

    Frames returned by :meth:`frame` may be the cached object (or, for :class:`ListFrames`, the caller's own RGB
    image): treat them as read-only and ``.copy()`` before drawing on them.

    Args:
        cache_size: How many decoded frames to keep (least recently used first out). ``0`` disables the cache.

    Raises:
        Sa2VAInputError: If ``cache_size`` is not an integer ``>= 0``.
    """

    def __init__(self, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if not _is_int(cache_size) or cache_size < 0:
            raise Sa2VAInputError(f"cache_size must be an integer >= 0, got {cache_size!r}.")
        self._cache_size = int(cache_size)
        self._cache: OrderedDict[int, Image.Image] = OrderedDict()
        self._size: tuple[int, int] | None = None
        # Exact frame rate; Fraction keeps 30000/1001 exact so fps resampling picks the same frames on every platform.
        self._rate: Fraction | None = None
        # Mismatched sizes already warned about: one warning per distinct size, not one per frame of a long video.
        self._warned_sizes: set[tuple[int, int]] = set()

    # --- what subclasses provide -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of frames (after any stride / fps / max_frames selection)."""
        raise NotImplementedError

    def _read(self, index: int) -> Image.Image:
        """Decode frame ``index`` (already range-checked) as an RGB PIL image of any size."""
        raise NotImplementedError

    def _describe(self) -> str:
        """Short human description used in messages, e.g. ``"'clip.mp4'"``."""
        return f"this {type(self).__name__}"

    # --- public API ------------------------------------------------------------------------------------------------

    @property
    def cache_size(self) -> int:
        """The most decoded frames this source keeps at any time."""
        return self._cache_size

    @property
    def num_cached(self) -> int:
        """How many decoded frames the cache holds right now (always ``<= cache_size``)."""
        return len(self._cache)

    @property
    def fps(self) -> float | None:
        """Frame rate of the frames this source hands out, or ``None`` when unknown (image lists and folders)."""
        return None if self._rate is None else float(self._rate)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of every frame handed out: the size of the first frame."""
        if self._size is None:
            self.frame(0)  # the first frame read fixes the size
        return self._size  # type: ignore[return-value]

    @property
    def source_indices(self) -> list[int]:
        """Original frame number of each frame, ``len(self)`` increasing integers."""
        return list(range(len(self)))

    def frame(self, index: int) -> Image.Image:
        """Return frame ``index`` as an RGB PIL image of size :attr:`size`.

        Random access works, but sources that decode sequentially (video files) are fastest in increasing order.

        Args:
            index: 0-based position among this source's frames.

        Returns:
            An RGB PIL image, ``(width, height) == self.size``.

        Raises:
            Sa2VAInputError: If ``index`` is not an integer in ``[0, len(self))`` or the frame cannot be decoded.
        """
        index = self._check_index(index)
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        image = self._fit_size(index, self._read(index))
        if self._cache_size:
            self._cache[index] = image
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return image

    def iter_frames(self) -> Iterator[tuple[int, Image.Image]]:
        """Yield ``(index, frame)`` for every frame in order; only the cache is kept between steps."""
        for index in range(len(self)):
            yield index, self.frame(index)

    def close(self) -> None:
        """Release open files and the cache. The source stays usable: it reopens what it needs on the next access."""
        self._cache.clear()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()}, num_frames={len(self)}, fps={self.fps})"

    # --- helpers ---------------------------------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        if not _is_int(index):
            raise Sa2VAInputError(f"Frame index must be an integer, got {type(index).__name__} {index!r}.")
        num_frames = len(self)
        if not 0 <= index < num_frames:
            raise Sa2VAInputError(
                f"Frame index {index} is out of range for {self._describe()} with {num_frames} frames; "
                f"expected 0 <= index < {num_frames}."
            )
        return int(index)

    def _fit_size(self, index: int, image: Image.Image) -> Image.Image:
        """Resize ``image`` to the first frame's size (the first frame read fixes the size)."""
        if self._size is None:
            self._size = image.size
            return image
        if image.size == self._size:
            return image
        if image.size not in self._warned_sizes:
            self._warned_sizes.add(image.size)
            (width, height), (ref_width, ref_height) = image.size, self._size
            warnings.warn(
                f"Frame {index} of {self._describe()} is {width}x{height} (width x height) but the first frame is "
                f"{ref_width}x{ref_height}; resizing it (and any later frame of size {width}x{height}) to "
                f"{ref_width}x{ref_height}. Pass frames of one size to avoid this.",
                stacklevel=3,
            )
        return image.resize(self._size, Image.Resampling.BILINEAR)


# --------------------------------------------------------------------------------------------------------------------
# In-memory sources
# --------------------------------------------------------------------------------------------------------------------


class ListFrames(FrameSource):
    """Frames from a list of PIL images and/or numpy arrays (anything :func:`to_rgb` accepts).

    Only references are kept: the caller's images are neither copied nor converted until read.

    Args:
        frames: ``num_frames >= 1`` PIL images or numpy arrays of shape ``(height, width[, channels])``.
        fps: Frame rate of the list, if known; needed only for ``open_video(..., fps=...)``.
        cache_size: See :class:`FrameSource`.

    Raises:
        Sa2VAInputError: If the list is empty, an item is not a PIL image or numpy array, the first frame cannot be
            converted to RGB, or ``fps`` is not a positive number.
    """

    def __init__(
        self,
        frames: Sequence[Image.Image | np.ndarray],
        *,
        fps: float | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        super().__init__(cache_size=cache_size)
        self._frames = list(frames)  # a list of references, not of pixels
        if not self._frames:
            raise Sa2VAInputError("The video is an empty list; expected at least one frame (PIL image or numpy array).")
        for index, item in enumerate(self._frames):
            if not isinstance(item, (Image.Image, np.ndarray)):
                raise Sa2VAInputError(
                    f"Video frame {index} is a {type(item).__name__}; expected a PIL image or a numpy array of shape "
                    f"(height, width[, channels]).{_tensor_hint(item, '(3, height, width)', '.permute(1, 2, 0)')}"
                )
        self._rate = _source_rate_arg(fps)
        self.frame(0)  # fixes `size` and fails early on an unreadable first frame

    def __len__(self) -> int:
        return len(self._frames)

    def _read(self, index: int) -> Image.Image:
        return to_rgb(self._frames[index])

    def _describe(self) -> str:
        return "the frame list"


class ArrayFrames(FrameSource):
    """Frames from one numpy array, read frame by frame without copying the array.

    Args:
        array: ``(num_frames, height, width, channels)`` with ``channels`` in 1 (gray), 3 (RGB) or 4 (RGBA), or
            ``(num_frames, height, width)`` gray; dtype as :func:`to_rgb` accepts (uint8, uint16, bool, float in
            ``[0, 1]``). Kept by reference (``np.shares_memory(source.array, array)``).
        fps: Frame rate, if known; needed only for ``open_video(..., fps=...)``.
        cache_size: See :class:`FrameSource`.

    Raises:
        Sa2VAInputError: If ``array`` has another shape, zero frames, zero width or height, an unsupported dtype, or
            ``fps`` is not a positive number.
    """

    def __init__(self, array: np.ndarray, *, fps: float | None = None, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        super().__init__(cache_size=cache_size)
        if not isinstance(array, np.ndarray):
            raise Sa2VAInputError(f"ArrayFrames expects a numpy array, got {type(array).__name__}.")
        shape = array.shape
        if array.ndim == 3 and shape[-1] in (3, 4):
            # (height, width, 3) is one RGB image, not 'height' gray frames of width 3: refuse to guess.
            raise Sa2VAInputError(
                f"Video array has shape {shape}, which looks like one (height, width, {shape[-1]}) image. "
                "Expected (num_frames, height, width, channels) or (num_frames, height, width); add a time axis "
                "with `array[None]`, or pass the image as `image=`."
            )
        if array.ndim not in (3, 4) or (array.ndim == 4 and shape[-1] not in (1, 3, 4)):
            raise Sa2VAInputError(
                f"Video array has shape {shape}; expected (num_frames, height, width, channels) with channels 1, 3 or "
                "4, or (num_frames, height, width) for gray frames."
            )
        if shape[0] == 0:
            raise Sa2VAInputError(f"Video array has shape {shape}: zero frames. Expected at least one frame.")
        self._array = array
        self._rate = _source_rate_arg(fps)
        self.frame(0)  # dtype / size problems surface here, before any model work

    @property
    def array(self) -> np.ndarray:
        """The caller's array, ``(num_frames, height, width[, channels])``, not a copy."""
        return self._array

    def __len__(self) -> int:
        return int(self._array.shape[0])

    def _read(self, index: int) -> Image.Image:
        return to_rgb(self._array[index])  # a view; to_rgb copies only this one frame

    def _describe(self) -> str:
        return f"the video array of shape {self._array.shape}"


# --------------------------------------------------------------------------------------------------------------------
# Folder of images
# --------------------------------------------------------------------------------------------------------------------


def natural_sort_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers by value: ``2.jpg < 10.jpg``, ``frame_9 < frame_10``; case-insensitive."""
    parts = re.split(r"(\d+)", name)
    # Even positions are text, odd positions digits, so two names always compare str with str and int with int; the
    # exact name breaks ties between names that differ only in case or leading zeros.
    return tuple(int(part) if i % 2 else part.casefold() for i, part in enumerate(parts)), name


class FolderFrames(FrameSource):
    """Frames from the image files of one folder, in natural order, decoded on access.

    Files with the extensions in ``IMAGE_EXTENSIONS`` (any case) are frames; hidden files (``.name``), other files and
    subfolders are ignored. EXIF orientation is not applied, like the reference's ``Image.open(path).convert('RGB')``.

    Args:
        path: The folder.
        cache_size: See :class:`FrameSource`.

    Raises:
        Sa2VAInputError: If ``path`` is not a folder, holds no image file, or its first image cannot be read.
    """

    def __init__(self, path: str | os.PathLike[str], *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        super().__init__(cache_size=cache_size)
        self.path = Path(path)
        if not self.path.is_dir():
            raise Sa2VAInputError(f"'{self.path}' is not a folder; expected a folder of frame images.")
        entries = [entry for entry in self.path.iterdir() if not entry.name.startswith(".")]
        self._files = sorted(
            (entry for entry in entries if entry.suffix.lower() in IMAGE_EXTENSIONS and entry.is_file()),
            key=lambda entry: natural_sort_key(entry.name),
        )
        if not self._files:
            raise Sa2VAInputError(
                f"Folder '{self.path}' holds no frame images ({len(entries)} other entries); expected files ending in "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}."
            )
        self.frame(0)

    @property
    def files(self) -> list[Path]:
        """The frame files in frame order."""
        return list(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def _read(self, index: int) -> Image.Image:
        path = self._files[index]
        try:
            with Image.open(path) as image:
                image.load()
                rgb = to_rgb(image)
                # Leaving the `with` destroys `image`'s pixels, so an RGB file (returned as is) must be copied out.
                return rgb.copy() if rgb is image else rgb
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise Sa2VAInputError(
                f"Cannot read frame {index} '{path}' ({error}). Expected a complete image file; re-save or remove it."
            ) from error

    def _describe(self) -> str:
        return f"folder '{self.path}'"


# --------------------------------------------------------------------------------------------------------------------
# Selection (stride / fps / max_frames)
# --------------------------------------------------------------------------------------------------------------------


class SelectedFrames(FrameSource):
    """A subset of another source's frames, in increasing order; holds no frames itself (the base caches).

    Args:
        base: The source to select from.
        indices: Increasing positions in ``base``, at least one.
        fps: Nominal frame rate of the selection (``None`` when unknown).
    """

    def __init__(self, base: FrameSource, indices: Sequence[int], fps: Fraction | None) -> None:
        super().__init__(cache_size=0)
        self.base = base
        self._indices = indices
        self._rate = fps

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def cache_size(self) -> int:
        return self.base.cache_size

    @property
    def num_cached(self) -> int:
        return self.base.num_cached

    @property
    def size(self) -> tuple[int, int]:
        return self.base.size

    @property
    def source_indices(self) -> list[int]:
        if type(self.base).source_indices is FrameSource.source_indices:
            return list(self._indices)  # the base numbers its frames 0..n-1: skip building its full list
        base_indices = self.base.source_indices
        return [base_indices[index] for index in self._indices]

    def frame(self, index: int) -> Image.Image:
        return self.base.frame(self._indices[self._check_index(index)])

    def close(self) -> None:
        self.base.close()

    def _describe(self) -> str:
        return f"{len(self)} selected frames of {self.base._describe()}"


def open_video(
    video: FrameSource | Sequence[Image.Image | np.ndarray] | np.ndarray | str | os.PathLike[str],
    *,
    stride: int = 1,
    fps: float | None = None,
    max_frames: int | None = None,
) -> FrameSource:
    """Open any supported video input as a lazy :class:`FrameSource` and select its frames.

    Selection, in this order:

    * ``fps``: keep frame ``floor(k * source_fps / fps)`` for ``k = 0, 1, ...`` (exact rational arithmetic), i.e. at
      most ``fps`` frames per second, starting with frame 0. A target at or above the source rate keeps every frame.
    * ``stride``: keep frames ``0, stride, 2 * stride, ...``. ``stride`` and ``fps`` cannot be combined.
    * ``max_frames``: keep the first ``max_frames`` of what is left.

    The result always starts with the source's first frame, whose size every frame is resized to.

    Args:
        video: One of: a :class:`FrameSource`; a list/tuple of PIL images or ``(height, width[, channels])`` numpy
            arrays; a ``(num_frames, height, width[, channels])`` numpy array; the path of a folder of frame images;
            the path of a video file.
        stride: Keep every ``stride``-th frame, ``>= 1``.
        fps: Resample to at most this many frames per second; needs a source with a frame rate (video files, or
            :class:`ListFrames` / :class:`ArrayFrames` built with ``fps=``).
        max_frames: Keep at most this many frames, ``>= 1``.

    Returns:
        A :class:`FrameSource` with ``len >= 1``; the input source itself when nothing is selected away.

    Raises:
        Sa2VAInputError: For an unsupported type, a missing path, a video with no frames or that cannot be read, or
            invalid ``stride`` / ``fps`` / ``max_frames`` values (checked before anything is opened).
    """
    target = _check_selection(stride, fps, max_frames)
    source = _as_source(video)
    num_frames = len(source)
    rate = _exact_rate(source)
    indices: Sequence[int] = range(num_frames)
    out_rate = rate
    if target is not None:
        if rate is None:
            raise Sa2VAInputError(
                f"fps={fps} needs the source's frame rate, but {source._describe()} has none. Use stride= instead, or give the rate with ListFrames(frames, fps=...) / "
                "ArrayFrames(array, fps=...)."
            )
        if target < rate:
            step = rate / target  # > 1 source frames per kept frame
            # k is kept while floor(k * step) < num_frames, i.e. k < num_frames / step.
            count = -(-num_frames * step.denominator // step.numerator)
            indices = [k * step.numerator // step.denominator for k in range(count)]
            out_rate = target
    elif stride > 1:
        indices = range(0, num_frames, stride)
        out_rate = None if rate is None else rate / stride
    if max_frames is not None:
        indices = indices[:max_frames]
    if len(indices) == num_frames:
        return source
    if isinstance(source, SelectedFrames):
        # Select from the underlying source directly rather than stacking views.
        indices = [source._indices[index] for index in indices]
        source = source.base
    return SelectedFrames(source, indices, out_rate)


def _as_source(video: Any) -> FrameSource:
    if isinstance(video, FrameSource):
        return video
    if isinstance(video, (list, tuple)):
        return ListFrames(video)
    if isinstance(video, np.ndarray):
        return ArrayFrames(video)
    if isinstance(video, (str, os.PathLike)):
        path = Path(video).expanduser()
        if not path.exists():
            raise Sa2VAInputError(f"Video path '{path}' does not exist; expected a video file or a folder of frames.")
        if path.is_dir():
            return FolderFrames(path)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise Sa2VAInputError(
                f"'{path}' is a single image, not a video. Pass it as `image=`, or pass the folder that holds the "
                "frames."
            )
        from sa2va.video.video_file import VideoFileFrames  # PyAV-backed; imported only for files

        return VideoFileFrames(path)
    raise Sa2VAInputError(
        f"Unsupported video type {type(video).__name__}. Expected a list of PIL images or numpy arrays, a "
        "(num_frames, height, width[, channels]) numpy array, a folder of frame images, a video file path, or a "
        f"FrameSource.{_tensor_hint(video, '(num_frames, 3, height, width)', '.permute(0, 2, 3, 1)')}"
    )


# --------------------------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _to_fraction(value: Real) -> Fraction:
    if isinstance(value, (Fraction, Integral)):
        return Fraction(value)
    # 29.97 -> 2997/100 instead of the binary float's 53-bit fraction, so floor(k * ratio) lands on whole frames.
    return Fraction(float(value)).limit_denominator(1_000_000)


def _check_positive_rate(value: object, name: str) -> Fraction:
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise Sa2VAInputError(f"{name} must be a positive, finite number of frames per second, got {value!r}.")
    return _to_fraction(value)


def _source_rate_arg(fps: float | None) -> Fraction | None:
    return None if fps is None else _check_positive_rate(fps, "fps")


def _exact_rate(source: FrameSource) -> Fraction | None:
    rate = getattr(source, "_rate", None)
    if isinstance(rate, Fraction):
        return rate
    fps = source.fps  # a duck-typed source: trust its float
    return None if fps is None else _to_fraction(fps)


def _check_selection(stride: int, fps: float | None, max_frames: int | None) -> Fraction | None:
    if not _is_int(stride) or stride < 1:
        raise Sa2VAInputError(f"stride must be an integer >= 1 (1 keeps every frame), got {stride!r}.")
    if max_frames is not None and (not _is_int(max_frames) or max_frames < 1):
        raise Sa2VAInputError(f"max_frames must be None or an integer >= 1, got {max_frames!r}.")
    if fps is None:
        return None
    target = _check_positive_rate(fps, "fps")
    if stride != 1:
        raise Sa2VAInputError(
            f"Got both stride={stride} and fps={fps}; pass only one (fps resamples by time, stride by frame count)."
        )
    return target


def _tensor_hint(value: object, shape: str, permute: str) -> str:
    """Extra sentence for a torch tensor passed where numpy is expected (no torch import needed)."""
    if type(value).__name__ == "Tensor" and hasattr(value, "numpy"):
        return f" Convert a {shape} uint8 tensor with `tensor{permute}.cpu().numpy()`."
    return ""


__all__ = [
    "DEFAULT_CACHE_SIZE",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ArrayFrames",
    "FolderFrames",
    "FrameSource",
    "ListFrames",
    "SelectedFrames",
    "natural_sort_key",
    "open_video",
]
