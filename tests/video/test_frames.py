"""Lazy frame sources: the right frames, in order, after stride / fps / max_frames, with bounded memory."""

from __future__ import annotations

import gc
import wave
import weakref
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sa2va.errors import Sa2VAInputError
from sa2va.video.frames import (
    ArrayFrames,
    FolderFrames,
    FrameSource,
    ListFrames,
    SelectedFrames,
    natural_sort_key,
    open_video,
)
from sa2va.video.video_file import VideoFileFrames

WIDTH, HEIGHT = 64, 48
RATE = 10


# --------------------------------------------------------------------------------------------------------------------
# Fixtures: frames whose solid colour encodes their frame number
# --------------------------------------------------------------------------------------------------------------------


def code_color(index: int) -> tuple[int, int, int]:
    """Frame number -> solid colour; steps of 20 survive lossy coding and yuv420 round trips."""
    return 20 + 20 * (index % 10), 20 + 20 * (index // 10), 128


def decode_color(image: Image.Image) -> int:
    red, green, _ = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(0)
    return int(round((green - 20) / 20)) * 10 + int(round((red - 20) / 20))


def code_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """``(height, width, 3)`` uint8 frame of colour ``code_color(index)``."""
    return np.broadcast_to(np.array(code_color(index), np.uint8), (height, width, 3)).copy()


def write_video(path: Path, num_frames: int, codec: str, rate: int = RATE) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(code_frame(index), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    files = {
        "mp4": write_video(root / "clip.mp4", 30, "libx264"),
        "long": write_video(root / "long.mp4", 100, "libx264"),
    }
    if "libvpx-vp9" in av.codecs_available:
        files["webm"] = write_video(root / "clip.webm", 12, "libvpx-vp9")
    data = files["mp4"].read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    files["truncated"] = root / "truncated.mp4"
    (root / "text.mp4").write_text("this is not a video\n" * 50)
    files["text"] = root / "text.mp4"
    return files


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(1, 13):  # 1.png .. 12.png: lexicographic order would put 10, 11, 12 after 1
        Image.fromarray(code_frame(number)).save(folder / f"{number}.png")
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "sub").mkdir()
    return folder


def ids(source: FrameSource) -> list[int]:
    return [decode_color(image) for _, image in source.iter_frames()]


# --------------------------------------------------------------------------------------------------------------------
# Video files
# --------------------------------------------------------------------------------------------------------------------


def test_mp4_all_frames_in_order(videos):
    source = open_video(videos["mp4"])
    assert isinstance(source, VideoFileFrames)
    assert len(source) == 30 and source.fps == RATE and source.size == (WIDTH, HEIGHT)
    assert source.source_indices == list(range(30))
    frames = list(source.iter_frames())
    assert [i for i, _ in frames] == list(range(30))
    assert all(image.mode == "RGB" and image.size == (WIDTH, HEIGHT) for _, image in frames)
    assert [decode_color(image) for _, image in frames] == list(range(30))


def test_webm_frame_count_without_header(videos):
    if "webm" not in videos:
        pytest.skip("PyAV's FFmpeg has no VP9 encoder")
    source = open_video(videos["webm"])
    assert len(source) == 12  # WebM declares no frame count: counted from packets
    assert ids(source) == list(range(12))


def test_stride(videos):
    source = open_video(videos["mp4"], stride=3)
    assert isinstance(source, SelectedFrames)
    assert source.source_indices == list(range(0, 30, 3))
    assert source.fps == pytest.approx(RATE / 3)
    assert ids(source) == list(range(0, 30, 3))


def test_fps_resampling(videos):
    source = open_video(videos["mp4"], fps=4)  # 10 -> 4 fps: frame floor(k * 2.5)
    expected = [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]
    assert source.source_indices == expected and source.fps == 4
    assert ids(source) == expected


def test_fps_at_or_above_source_rate_keeps_everything(videos):
    source = open_video(videos["mp4"])
    assert open_video(source, fps=RATE) is source
    assert open_video(source, fps=60) is source


def test_max_frames_and_composition(videos):
    assert ids(open_video(videos["mp4"], max_frames=5)) == [0, 1, 2, 3, 4]
    assert open_video(videos["mp4"], stride=2, max_frames=4).source_indices == [0, 2, 4, 6]
    first = open_video(videos["mp4"], stride=2)
    second = open_video(first, stride=3, max_frames=3)  # a view of the file, not of the first view
    assert isinstance(second, SelectedFrames) and isinstance(second.base, VideoFileFrames)
    assert second.source_indices == [0, 6, 12]
    assert ids(second) == [0, 6, 12]


def test_random_access_seeks_back(videos):
    source = VideoFileFrames(videos["mp4"], cache_size=0)
    assert decode_color(source.frame(20)) == 20
    assert decode_color(source.frame(3)) == 3  # earlier than the decoder position: re-opens the file
    assert decode_color(source.frame(4)) == 4
    with source:
        source.frame(5)
    assert source._container is None  # the context manager closed the file


def test_video_memory_is_bounded(videos):
    source = VideoFileFrames(videos["long"])
    assert len(source) == 100
    refs = []
    for index, image in source.iter_frames():
        assert source.num_cached <= source.cache_size == 3
        assert decode_color(image) == index
        refs.append(weakref.ref(image))
    del image
    gc.collect()
    alive = sum(ref() is not None for ref in refs)
    assert alive <= source.cache_size  # nothing but the LRU cache keeps decoded frames
    source.close()
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0


@pytest.mark.parametrize("name", ["truncated", "text"])
def test_unreadable_video_files(videos, name):
    with pytest.raises(Sa2VAInputError, match="Cannot read .* as a video"):
        open_video(videos[name])


def test_file_without_video_stream(tmp_path):
    with wave.open(str(tmp_path / "sound.wav"), "wb") as audio:
        audio.setnchannels(1), audio.setsampwidth(2), audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 800)
    with pytest.raises(Sa2VAInputError, match="no video stream"):
        open_video(tmp_path / "sound.wav")


def test_missing_path_and_single_image_path(tmp_path):
    with pytest.raises(Sa2VAInputError, match="does not exist"):
        open_video(tmp_path / "nope.mp4")
    Image.fromarray(code_frame(0)).save(tmp_path / "one.png")
    with pytest.raises(Sa2VAInputError, match="single image"):
        open_video(str(tmp_path / "one.png"))


# --------------------------------------------------------------------------------------------------------------------
# Folders, lists, arrays
# --------------------------------------------------------------------------------------------------------------------


def test_folder_natural_order(png_folder):
    source = open_video(png_folder)
    assert isinstance(source, FolderFrames)
    assert [path.name for path in source.files] == [f"{n}.png" for n in range(1, 13)]
    assert source.fps is None and source.size == (WIDTH, HEIGHT)
    assert ids(source) == list(range(1, 13))
    assert ids(open_video(str(png_folder), stride=5)) == [1, 6, 11]


def test_natural_sort_key():
    names = ["frame10.jpg", "frame2.jpg", "Frame1.jpg", "frame002.jpg", "a.jpg", "frame2.jpg.bak"]
    assert sorted(names, key=natural_sort_key) == [
        "a.jpg",
        "Frame1.jpg",
        "frame002.jpg",
        "frame2.jpg",
        "frame2.jpg.bak",
        "frame10.jpg",
    ]


def test_empty_inputs(tmp_path):
    with pytest.raises(Sa2VAInputError, match="empty list"):
        open_video([])
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(Sa2VAInputError, match="no frame images"):
        open_video(tmp_path)
    with pytest.raises(Sa2VAInputError, match="zero frames"):
        open_video(np.zeros((0, HEIGHT, WIDTH, 3), np.uint8))


def test_list_of_pil_and_arrays():
    frames = [Image.fromarray(code_frame(i)) if i % 2 else code_frame(i) for i in range(6)]
    source = open_video(frames)
    assert isinstance(source, ListFrames) and len(source) == 6 and source.fps is None
    assert ids(source) == list(range(6))
    assert ids(open_video(tuple(frames), max_frames=2)) == [0, 1]


def test_array_frames_do_not_copy():
    video = np.stack([code_frame(i) for i in range(8)])  # (T, H, W, 3)
    source = open_video(video)
    assert isinstance(source, ArrayFrames) and np.shares_memory(source.array, video)
    selected = open_video(video, stride=3)
    assert np.shares_memory(selected.base.array, video)
    assert ids(selected) == [0, 3, 6]
    gray = open_video(np.zeros((4, HEIGHT, WIDTH), np.uint8))
    assert len(gray) == 4 and gray.frame(3).mode == "RGB" and gray.size == (WIDTH, HEIGHT)


def test_array_shape_errors():
    with pytest.raises(Sa2VAInputError, match="looks like one"):
        open_video(code_frame(0))  # (H, W, 3): one image, not a video
    with pytest.raises(Sa2VAInputError, match="expected"):
        open_video(np.zeros((2, 4, 4, 2), np.uint8))


def test_different_sizes_warn_and_resize(tmp_path):
    frames = [code_frame(0), code_frame(1, width=32, height=32), code_frame(2), code_frame(3, width=32, height=32)]
    source = open_video(frames)
    with pytest.warns(UserWarning, match=r"Frame 1 .* 32x32 .* first frame is 64x48") as record:
        resized = source.frame(1)
        source.frame(3)  # same odd size: no second warning
    assert len(record) == 1
    assert resized.size == (WIDTH, HEIGHT) and decode_color(resized) == 1
    Image.fromarray(code_frame(0)).save(tmp_path / "0.png")
    Image.fromarray(code_frame(1, width=20, height=30)).save(tmp_path / "1.png")
    with pytest.warns(UserWarning, match=r"Frame 1 of folder .* 20x30"):
        assert [image.size for _, image in open_video(tmp_path).iter_frames()] == [(WIDTH, HEIGHT)] * 2


# --------------------------------------------------------------------------------------------------------------------
# Argument errors
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stride": 0}, "stride"),
        ({"stride": 1.5}, "stride"),
        ({"stride": True}, "stride"),
        ({"fps": 0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"fps": "10"}, "fps"),
        ({"max_frames": 0}, "max_frames"),
        ({"max_frames": 2.0}, "max_frames"),
        ({"stride": 2, "fps": 5}, "only one"),
    ],
)
def test_bad_selection_arguments(kwargs, message):
    with pytest.raises(Sa2VAInputError, match=message):
        open_video([code_frame(0)], **kwargs)


def test_fps_needs_a_source_rate():
    frames = [code_frame(i) for i in range(10)]
    with pytest.raises(Sa2VAInputError, match="frame rate"):
        open_video(frames, fps=2)
    source = open_video(ListFrames(frames, fps=10), fps=2.5)
    assert source.source_indices == [0, 4, 8] and source.fps == 2.5


@pytest.mark.parametrize("video", [42, {"frames": []}, None, b"clip.mp4", [code_frame(0), "frame.png"]])
def test_unsupported_types(video):
    with pytest.raises(Sa2VAInputError, match="[Ee]xpected"):
        open_video(video)


def test_frame_index_checked():
    source = open_video([code_frame(0), code_frame(1)])
    for index in (2, -1, 1.0):
        with pytest.raises(Sa2VAInputError, match="[Ff]rame index"):
            source.frame(index)


def test_display_rotation_is_applied(tmp_path):
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if not hasattr(stream, "set_display_rotation"):
            pytest.skip("this PyAV cannot write a display matrix")
        stream.set_display_rotation(90)  # counter-clockwise, as phones tag portrait clips
        pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        pixels[:16, :16] = 255  # marker in the stored top-left corner
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")), *stream.encode()]:
            container.mux(packet)
    source = open_video(path)
    assert source.size == (HEIGHT, WIDTH)  # portrait
    shown = np.asarray(source.frame(0)).mean(-1)
    assert shown[-16:, :16].mean() > 200 and shown[:16, :16].mean() < 50  # top-left turned to bottom-left
