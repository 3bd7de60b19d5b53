"""The `sa2va segment / describe / gcg / chat` commands, run in-process on a tiny saved model."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import sa2va.modeling.sa2va as modeling
from sa2va.cli import main
from sa2va.testing import ForcedAnswer, tiny_model


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tiny_model("qwen2_5_vl").save_pretrained(folder)
    model = modeling.Sa2VAModel.from_pretrained(folder).eval()
    return folder, model


@pytest.fixture
def forced(saved_model, monkeypatch):
    """`forced(answer)` makes the CLI's model answer `answer`; returns the checkpoint folder."""
    folder, model = saved_model
    monkeypatch.setattr(modeling.Sa2VAModel, "from_pretrained", classmethod(lambda cls, *a, **k: model))
    added = []

    def force(answer: str) -> str:
        tokenizer = model.processor.tokenizer
        processor = ForcedAnswer(tokenizer.encode(answer, add_special_tokens=False), model.processor.stop_token_ids[0])
        model.logits_processors.append(processor)
        added.append(processor)
        return str(folder)

    yield force
    for processor in added:
        model.logits_processors.remove(processor)


@pytest.fixture
def image_path(tmp_path):
    array = np.zeros((40, 48, 3), np.uint8)
    array[10:30, 12:36] = (200, 30, 30)
    path = tmp_path / "image.png"
    Image.fromarray(array).save(path)
    return path


def frames(count: int = 3) -> list[Image.Image]:
    out = []
    for t in range(count):
        array = np.zeros((32, 48, 3), np.uint8)
        array[8:24, 4 + 4 * t : 20 + 4 * t] = 255
        out.append(Image.fromarray(array))
    return out


def test_segment_image_png_and_overlay(forced, image_path, tmp_path, capsys):
    model = forced("Sure, it is [SEG].")
    out = tmp_path / "out"
    assert main(["segment", str(image_path), "the red box", "--model", model, "--out", str(out), "--overlay"]) == 0
    assert "Sure, it is" in capsys.readouterr().out
    mask = np.array(Image.open(out / "obj0_frame00000.png"))
    assert mask.shape == (40, 48) and set(np.unique(mask)) <= {0, 255}
    assert Image.open(out / "overlay.png").size == (48, 40)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("fmt", ["rle", "npz"])
def test_segment_image_rle_npz(forced, image_path, tmp_path, fmt):
    from sa2va.grounding.masks import rle_to_mask

    model = forced("Sure, it is [SEG].")
    out = tmp_path / fmt
    assert main(["segment", str(image_path), "the red box", "--model", model, "--out", str(out), "--format", fmt]) == 0
    if fmt == "rle":
        data = json.loads((out / "masks.json").read_text())
        assert rle_to_mask(data["obj0_frame00000"]).shape == (40, 48)
    else:
        with np.load(out / "masks.npz") as data:
            assert data["obj0_frame00000"].shape == (40, 48) and data["obj0_frame00000"].dtype == bool


def test_segment_video_file(forced, tmp_path, capsys):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for frame in frames(3):
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    model = forced("Sure, it is [SEG].")
    out = tmp_path / "video"
    assert main(["segment", str(path), "the square", "--model", model, "--out", str(out), "--overlay"]) == 0
    assert "Sure, it is" in capsys.readouterr().out
    for t in range(3):
        assert np.array(Image.open(out / f"obj0_frame{t:05d}.png")).shape == (32, 48)
        assert (out / f"overlay_frame{t:05d}.png").is_file()


def test_describe_prints_text(forced, image_path, capsys):
    model = forced("A red box on black.")
    assert main(["describe", str(image_path), "--model", model]) == 0
    assert "A red box on black." in capsys.readouterr().out


def test_gcg_writes_masks_and_phrases(forced, image_path, tmp_path, capsys):
    model = forced("<p> A red box </p> [SEG] on a black background.")
    out = tmp_path / "gcg"
    assert main(["gcg", str(image_path), "--model", model, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "A red box on a black background." in printed
    assert "A red box -> mask obj0" in printed
    assert (out / "obj0_frame00000.png").is_file()


def test_chat_two_turns(forced, saved_model, image_path, tmp_path, monkeypatch, capsys):
    model = forced("Sure, it is [SEG].")
    monkeypatch.setattr("sys.stdin", io.StringIO("segment the box\nand again\n\n"))
    out = tmp_path / "chat"
    assert main(["chat", str(image_path), "--model", model, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("Sure, it is") == 2
    assert (out / "turn01" / "obj0_frame00000.png").is_file()
    assert (out / "turn02" / "obj0_frame00000.png").is_file()


def test_missing_input_exits_2(forced, tmp_path, capsys):
    model = forced("unused")
    assert main(["segment", str(tmp_path / "nope.png"), "x", "--model", model]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_model_defaults_to_the_embedded_model(image_path, tmp_path, monkeypatch, capsys):
    from sa2va.checkpoints import hub
    from sa2va.cli import build_parser

    for command in (["describe", "x.png"], ["segment", "x.png", "y"], ["gcg", "x.png"], ["chat", "x.png"], ["serve"]):
        assert build_parser().parse_args(command).model == hub.DEFAULT_MODEL == "sa2va-tiny"
    # while the embedded model is not installed, loading it is a clear user error (exit 2), not a traceback
    monkeypatch.setitem(hub.EMBEDDED, hub.DEFAULT_MODEL, tmp_path / "not-installed")
    assert main(["describe", str(image_path)]) == 2
    assert "embedded model 'sa2va-tiny' is missing" in capsys.readouterr().err


def test_serve_loads_once_and_passes_limits(forced, monkeypatch, capsys):
    pytest.importorskip("fastapi")
    model = forced("unused")
    calls = []
    monkeypatch.setattr("sa2va.serve.run_server", lambda *args, **kwargs: calls.append((args, kwargs)))
    argv = ["serve", "--model", model, "--port", "8123", "--max-frames", "7", "--max-upload-mb", "2.5",
            "--timeout-s", "9", "--max-concurrency", "2", "--max-queue", "3"]
    assert main(argv) == 0
    ((loaded, limits), kwargs), = calls
    assert isinstance(loaded, modeling.Sa2VAModel)
    assert (limits.max_frames, limits.max_upload_mb, limits.timeout_s, limits.max_concurrency, limits.max_queue) == (
        7, 2.5, 9, 2, 3)
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8123 and kwargs["model_id"] == model
    assert "http://127.0.0.1:8123" in capsys.readouterr().err


def test_serve_rejects_bad_limits_before_loading(forced, capsys):
    pytest.importorskip("fastapi")
    assert main(["serve", "--model", forced("unused"), "--max-concurrency", "0"]) == 2
    assert "max_concurrency must be >= 1" in capsys.readouterr().err
