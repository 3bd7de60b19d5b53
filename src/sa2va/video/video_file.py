"""Video files (mp4, webm, mov, avi, mkv, ...) as a lazy :class:`~sa2va.video.frames.FrameSource`, through PyAV."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

from PIL import Image

from sa2va.errors import Sa2VAInputError
from sa2va.video.frames import DEFAULT_CACHE_SIZE, VIDEO_EXTENSIONS, FrameSource

logger = logging.getLogger(__name__)

# Display-matrix rotation (degrees counter-clockwise, as PyAV reports it) -> the PIL transpose that applies it, so
# portrait phone videos come out the way players show them.
_ROTATIONS: dict[int, Image.Transpose] = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}



# --------------------------------------------------------------------------------------------------------------------
# Video file
# --------------------------------------------------------------------------------------------------------------------


def _import_av() -> ModuleType:
    try:
        import av
    except ImportError as error:  # pragma: no cover - av is a declared dependency
        raise ImportError("Reading video files needs PyAV: `pip install 'av>=12'`.") from error
    return av


class VideoFileFrames(FrameSource):
    """Frames of the first video stream of a file, decoded lazily and sequentially with PyAV.

    The decoder moves forward only; asking for an earlier frame than the last one decoded (and not cached) re-opens
    the file and decodes from the start, so read in increasing order. Frames between requested ones are decoded (the
    codec needs them) but never converted to RGB. A display-matrix rotation (portrait phone videos) is applied.

    The frame count is the container's declared count, or, when the container has none (webm, mkv), the number of
    packets of the stream counted in a first pass that reads but does not decode. Frame ``i`` is the ``i``-th frame
    the decoder outputs; the frame rate is the stream's average rate, which ``fps`` resampling treats as constant.

    Args:
        path: The video file.
        cache_size: See :class:`FrameSource`.

    Raises:
        Sa2VAInputError: If the file does not exist, is not a readable video (truncated, not a video, no video
            stream), or has no decodable frame. A file whose frames run out before the declared count raises when
            the missing frame is read.
    """

    def __init__(self, path: str | os.PathLike[str], *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        super().__init__(cache_size=cache_size)
        self.path = Path(path)
        if not self.path.is_file():
            raise Sa2VAInputError(f"Video file '{self.path}' does not exist or is not a file.")
        self._container: Any = None
        self._decoder: Iterator[Any] | None = None
        self._next_index = 0  # index of the frame the decoder outputs next
        self._num_frames, self._rate = self._probe()
        self.frame(0)

    def __len__(self) -> int:
        return self._num_frames

    def _describe(self) -> str:
        return f"'{self.path}'"

    def _not_a_video(self, error: BaseException) -> Sa2VAInputError:
        return Sa2VAInputError(
            f"Cannot read '{self.path}' as a video ({error}). Expected a complete, playable video file "
            f"({', '.join(sorted(VIDEO_EXTENSIONS))}, ...); the file may be truncated, still being written, or not a "
            "video."
        )

    def _probe(self) -> tuple[int, Fraction | None]:
        av = _import_av()
        try:
            # Stream objects must not outlive their container (PyAV crashes on a closed container's stream), so
            # everything needed is read inside the `with`.
            with av.open(str(self.path), metadata_errors="ignore") as container:
                if not container.streams.video:
                    raise Sa2VAInputError(
                        f"'{self.path}' has no video stream (streams: {[s.type for s in container.streams]}); "
                        "expected a video file."
                    )
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                num_frames = int(stream.frames or 0)
                counted = num_frames <= 0
                if counted:
                    # Matroska/WebM headers carry no frame count: count packets (demux only, no decoding). Each video
                    # packet is one frame; the empty packet PyAV yields at the end is the flush marker.
                    num_frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
        except (av.error.FFmpegError, OSError) as error:
            raise self._not_a_video(error) from error
        if num_frames <= 0:
            raise Sa2VAInputError(f"'{self.path}' has a video stream with no frames; expected at least one frame.")
        fps = Fraction(rate) if rate is not None and rate > 0 else None
        logger.debug("%s: %d frames (%s), fps %s", self.path, num_frames, "counted" if counted else "declared", fps)
        return num_frames, fps

    def _open_decoder(self) -> None:
        av = _import_av()
        self.close_decoder()
        try:
            container = av.open(str(self.path), metadata_errors="ignore")
        except (av.error.FFmpegError, OSError) as error:
            raise self._not_a_video(error) from error
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame+slice threads: decoding is the cost of reading a video
        self._container = container
        self._decoder = container.decode(stream)
        self._next_index = 0

    def _read(self, index: int) -> Image.Image:
        if self._decoder is None or index < self._next_index:
            if self._decoder is not None:
                logger.debug("%s: frame %d requested after %d, re-opening", self.path, index, self._next_index - 1)
            self._open_decoder()
        while True:
            decoded = self._decode_next()
            position = self._next_index
            self._next_index += 1
            if position == index:
                return self._to_image(decoded)

    def _decode_next(self) -> Any:
        av = _import_av()
        try:
            return next(self._decoder)
        except StopIteration:
            decoded = self._next_index
            self.close_decoder()
            if decoded == 0:
                raise Sa2VAInputError(
                    f"'{self.path}' has no decodable video frame; expected a playable video. The file may be "
                    "truncated or use a codec this FFmpeg build cannot decode."
                ) from None
            raise Sa2VAInputError(
                f"'{self.path}' ended after {decoded} decodable frames although its container declares "
                f"{self._num_frames}; the file is probably truncated or its header is wrong. Re-encode it (e.g. "
                f"`ffmpeg -i in.mp4 out.mp4`) or use only its first {decoded} frames."
            ) from None
        except (av.error.FFmpegError, OSError) as error:
            failed = self._next_index
            self.close_decoder()
            raise Sa2VAInputError(
                f"Decoding frame {failed} of '{self.path}' failed ({error}); the file is probably truncated or "
                f"corrupt. Re-encode it, or use only its first {failed} frames."
            ) from error

    def _to_image(self, decoded: Any) -> Image.Image:
        image = decoded.to_image()  # RGB PIL, colourspace taken from the frame
        rotation = round(getattr(decoded, "rotation", 0) or 0) % 360  # older PyAV frames have no `rotation`
        if rotation in _ROTATIONS:
            image = image.transpose(_ROTATIONS[rotation])
        elif rotation:
            logger.debug("%s: ignoring display rotation of %d degrees (not a multiple of 90)", self.path, rotation)
        return image

    def close_decoder(self) -> None:
        """Close the open file, if any, keeping the cache. The next uncached read re-opens it."""
        # Drop the generator before closing its container: it must never be advanced on a closed container.
        self._decoder = None
        self._next_index = 0
        if self._container is not None:
            container, self._container = self._container, None
            container.close()

    def close(self) -> None:
        self.close_decoder()
        super().close()


__all__ = ["VideoFileFrames"]
