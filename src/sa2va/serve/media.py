"""Uploaded files: read to disk within the size limit, then told apart (image or video) and checked (frame count)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from PIL import Image, UnidentifiedImageError

from sa2va.errors import Sa2VAInputError, Sa2VALimitError
from sa2va.serve.limits import MIB
from sa2va.video.frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FrameSource, open_video

CHUNK_BYTES = MIB
ACCEPTED = f"an image ({', '.join(sorted(IMAGE_EXTENSIONS))}) or a video ({', '.join(sorted(VIDEO_EXTENSIONS))})"


class AsyncUpload(Protocol):
    """What :func:`save_upload` reads: FastAPI's `UploadFile`."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


@dataclass
class Media:
    """One uploaded image or video, stored as a file in the server's upload folder.

    Attributes:
        kind: "image" or "video".
        path: the stored upload (deleted by :meth:`discard`).
        filename: the client's file name (used in messages instead of `path`).
        width, height: size of the image / of every frame.
        frame_indices: index in the uploaded video of each frame that is answered (`[0]` for an image).
        fps: the frame rate videos are resampled to (None: every frame).
    """

    kind: Literal["image", "video"]
    path: Path
    filename: str
    width: int
    height: int
    frame_indices: list[int] = field(default_factory=lambda: [0])
    fps: float | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    def load_image(self) -> Image.Image:
        """The image as 8-bit RGB."""
        from sa2va.processing.images import to_rgb

        with Image.open(self.path) as image:
            image.load()
            rgb = to_rgb(image)
            return rgb.copy() if rgb is image else rgb

    def open_video(self) -> FrameSource:
        """The video's selected frames, decoded lazily."""
        return _renamed(lambda: open_video(self.path, fps=self.fps), self.path, self.filename)

    def hide_path(self, error: Sa2VAInputError) -> Sa2VAInputError:
        """The same error with the client's file name in place of the server's stored path."""
        return type(error)(str(error).replace(str(self.path), self.filename))

    def discard(self) -> None:
        """Delete the stored upload."""
        self.path.unlink(missing_ok=True)


def client_name(filename: str | None) -> str:
    """The base name the client gave its file, shortened for messages."""
    name = Path(filename or "upload").name or "upload"
    return name if len(name) <= 80 else name[:77] + "..."


async def save_upload(upload: AsyncUpload, folder: Path, limit_bytes: int) -> Path:
    """Copy an upload into `folder` in chunks, stopping as soon as it is larger than `limit_bytes`.

    Raises:
        Sa2VALimitError: the file is larger than the limit (nothing is left on disk).
        Sa2VAInputError: the file is empty.
    """
    name = client_name(upload.filename)
    suffix = Path(name).suffix.lower()
    folder.mkdir(parents=True, exist_ok=True)
    # keep a video extension (it helps the demuxer); anything else gets a neutral one so an image name on a video
    # file is not mistaken for an image by extension
    path = folder / f"{uuid.uuid4().hex}{suffix if suffix in VIDEO_EXTENSIONS else '.upload'}"
    size = 0
    try:
        with open(path, "wb") as out:
            while chunk := await upload.read(CHUNK_BYTES):
                size += len(chunk)
                if size > limit_bytes:
                    raise Sa2VALimitError(
                        f"upload '{name}' is larger than this server's limit of {limit_bytes / MIB:.3g} MiB "
                        "(--max-upload-mb); send a smaller file."
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise Sa2VAInputError(f"upload '{name}' is empty; expected {ACCEPTED}.")
    return path


def inspect_media(path: Path, filename: str, max_frames: int, fps: float | None = None) -> Media:
    """Tell whether the stored upload is an image or a video and check it against the frame limit.

    An image is fully decoded once (a truncated file fails here, not in the model); a video is probed for its frame
    count and its first frame decoded.

    Raises:
        Sa2VAInputError: the file is neither a readable image nor a readable video.
        Sa2VALimitError: the video has more than `max_frames` frames, or the image more pixels than Pillow allows.
    """
    name = client_name(filename)
    looks_like_image = Path(name).suffix.lower() in IMAGE_EXTENSIONS
    try:
        with Image.open(path) as image:
            image.load()
            return Media("image", path, name, image.width, image.height)
    except Image.DecompressionBombError as error:
        raise Sa2VALimitError(f"image '{name}' has too many pixels ({error}); send a smaller image.") from error
    except UnidentifiedImageError as error:
        if looks_like_image:
            raise Sa2VAInputError(f"'{name}' is not a readable image; expected {ACCEPTED}.") from error
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt image data
        raise Sa2VAInputError(f"cannot read image '{name}' ({error}); expected a complete image file.") from error

    try:
        source = _renamed(lambda: open_video(path, fps=fps), path, name)
    except Sa2VAInputError as error:
        if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
            raise  # a damaged video: the reader's message says what is wrong with it
        message = f"'{name}' is neither a readable image nor a readable video; expected {ACCEPTED}."
        raise Sa2VAInputError(message) from error
    try:
        count = len(source)
        if count > max_frames:
            sampled = f" at fps={fps:g}" if fps else ""
            raise Sa2VALimitError(
                f"video '{name}' has {count} frames{sampled}; this server answers at most {max_frames} "
                "(--max-frames). Send a shorter clip, or a lower fps to sample fewer frames."
            )
        width, height = source.size
        return Media("video", path, name, width, height, list(source.source_indices), fps)
    finally:
        source.close()


def _renamed(open_source, path: Path, name: str) -> FrameSource:
    """Run `open_source()`, naming the client's file instead of the server's stored path in any error."""
    try:
        return open_source()
    except Sa2VAInputError as error:
        raise type(error)(str(error).replace(str(path), name)) from error


__all__ = ["Media", "save_upload", "inspect_media", "client_name", "ACCEPTED"]
