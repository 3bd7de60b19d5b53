"""Video: key frames, batched SAM2 tracking, streaming, backward tracking, video chat for every family."""

import numpy as np
import pytest
import torch
from PIL import Image

import sa2va.video.propagation as propagation
from sa2va.testing import teacher_forcing
from sa2va.video.propagation import Sa2VATracker

from ..conftest import get_model

SEGMENT = "<image>\nPlease segment the cube."


def moving_square_video(num_frames: int = 8, size: tuple[int, int] = (96, 80)) -> list[Image.Image]:
    width, height = size
    frames = []
    for t in range(num_frames):
        array = np.full((height, width, 3), 30, dtype=np.uint8)
        x = 5 + 6 * t
        array[20:50, x : x + 25] = (220, 40, 40)
        frames.append(Image.fromarray(array))
    return frames


@pytest.fixture(scope="module")
def tracker_inputs():
    model = get_model("qwen2_5_vl")
    size = model.config.sam2_image_size
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(10, 1, 3, size, size, generator=generator)
    prompts = torch.randn(3, 256, generator=generator)
    return model.sam2, frames, prompts


def run_tracker(sam2, frames, prompts, key_frames):
    tracker = Sa2VATracker(sam2, len(frames), lambda t: frames[t], key_frames, prompts)
    out = list(tracker.run())
    assert [t for t, _ in out] == list(range(len(frames)))
    return torch.stack([logits for _, logits in out])  # (T, num_objects, h, w)


def test_batched_objects_equal_one_object_at_a_time(tracker_inputs):
    sam2, frames, prompts = tracker_inputs
    batched = run_tracker(sam2, frames, prompts, [0, 1, 2, 3, 4])
    for i in range(prompts.shape[0]):
        alone = run_tracker(sam2, frames, prompts[i : i + 1], [0, 1, 2, 3, 4])[:, 0]
        torch.testing.assert_close(batched[:, i], alone, atol=1e-4, rtol=1e-4)
        assert ((batched[:, i] > 0) == (alone > 0)).float().mean() > 0.999


def test_backbone_runs_once_per_frame_for_all_objects(tracker_inputs, monkeypatch):
    sam2, frames, prompts = tracker_inputs
    calls = []
    original = propagation.encode_frame
    monkeypatch.setattr(propagation, "encode_frame", lambda model, pixels: calls.append(1) or original(model, pixels))
    run_tracker(sam2, frames, prompts, [0, 1, 2, 3, 4])
    assert len(calls) == len(frames)


def test_frames_before_the_first_key_frame_are_tracked_backwards(tracker_inputs, monkeypatch):
    sam2, frames, prompts = tracker_inputs
    directions = []
    original = Sa2VATracker._track

    def spy(self, t, reverse):
        directions.append((t, reverse))
        return original(self, t, reverse)

    monkeypatch.setattr(Sa2VATracker, "_track", spy)
    logits = run_tracker(sam2, frames, prompts, [4, 7])
    assert directions[:4] == [(3, True), (2, True), (1, True), (0, True)]
    assert [t for t, reverse in directions if not reverse] == [5, 6, 8, 9]
    assert torch.isfinite(logits).all() and not torch.equal(logits[0], logits[1])


def test_memory_is_bounded_by_the_window(tracker_inputs):
    sam2, frames, prompts = tracker_inputs
    longer = frames.repeat(4, 1, 1, 1, 1)  # 40 frames
    tracker = Sa2VATracker(sam2, len(longer), lambda t: longer[t], [0, 1, 2, 3, 4], prompts[:1], window=8)
    peak = 0
    for _ in tracker.run():
        peak = max(peak, len(tracker.tracked))
    assert peak <= 2 * 8 + 2


def test_first_policy_shows_the_mllm_the_first_frames(image, monkeypatch):
    model = get_model("internvl")
    seen = {}
    original = model.processor.prepare

    def spy(text, frames, *args, **kwargs):
        seen["frames"] = frames
        return original(text, frames, *args, **kwargs)

    monkeypatch.setattr(model.processor, "prepare", spy)
    video = moving_square_video(9)
    with teacher_forcing(model, "A cube."):
        model.predict(video=video, text="<image>\nWhat moves?")
    assert [np.asarray(f).tobytes() for f in seen["frames"]] == [np.asarray(f).tobytes() for f in video[:5]]
    with teacher_forcing(model, "A cube."):
        model.predict(video=video, text="<image>\nWhat moves?", key_frames="uniform")
    assert len(seen["frames"]) == 5
    assert np.asarray(seen["frames"][-1]).tobytes() == np.asarray(video[-1]).tobytes()


def test_long_video_segmentation_tracks_every_frame(model):
    video = moving_square_video(9)
    with teacher_forcing(model, "<p> cube </p> [SEG] and [SEG]."):
        out = model.predict(video=video, text=SEGMENT)
    assert len(out.masks) == 2
    assert all(m.shape == (9, 80, 96) and m.dtype == bool for m in out.masks)


def test_streamed_and_whole_video_paths_agree(image):
    model = get_model("qwen3_vl")
    video = moving_square_video(8)
    with teacher_forcing(model, "Sure, [SEG] [SEG]."):
        whole = model.predict(video=video, text=SEGMENT, key_frames=[2, 5])
        stream = model.predict_video_stream(video, SEGMENT, key_frames=[2, 5])
    assert stream.raw_text == whole.raw_text and stream.object_ids == [0, 1] and stream.num_frames == 8
    seen = []
    for t, masks in stream:
        seen.append(t)
        for obj_id, mask in masks.items():
            np.testing.assert_array_equal(mask, whole.masks[obj_id][t])
    assert seen == list(range(8))


def test_video_chat_works_for_every_family(model):
    video = moving_square_video(7)
    with teacher_forcing(model, "The red square moves right."):
        out = model.predict(video=video, text="<image>\nWhat happens in the video?")
    assert out.text.startswith("The red square moves right.") and out.masks == []
    with teacher_forcing(model, "Right."):
        follow = model.predict(video=video, text="Which direction?", history=out.history)
    assert follow.text.startswith("Right.")


def test_video_file_input(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 80, "yuv420p"
        for frame in moving_square_video(7):
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    model = get_model("internvl")
    with teacher_forcing(model, "Sure, [SEG]."):
        out = model.predict(video=str(path), text=SEGMENT)
    assert out.masks[0].shape == (7, 80, 96)


def sam2_1_propagator():
    from transformers import Sam2VideoModel

    from sa2va.testing_parts import tiny_sam2_config

    config = tiny_sam2_config(256)
    config.enable_occlusion_spatial_embedding = True  # SAM2.1 flags: the stock propagator of Sa2VA-i
    config.enable_temporal_pos_encoding_for_object_pointers = True
    torch.manual_seed(1)
    return Sam2VideoModel(config).eval()


def test_sa2va_i_tracks_key_frame_masks_with_an_original_sam2(monkeypatch):
    from sa2va.testing import tiny_model

    model = tiny_model("internvl")
    propagator = sam2_1_propagator()
    model.set_propagator(propagator)
    assert model.config.propagation == "sa2va-i"
    seen = {}
    original_init = Sa2VATracker.__init__

    def spy(self, sam2, *args, **kwargs):
        seen.update(sam2=sam2, key_frames=kwargs["key_frames"], masks=kwargs.get("key_frame_masks"))
        original_init(self, sam2, *args, **kwargs)

    monkeypatch.setattr(Sa2VATracker, "__init__", spy)
    with teacher_forcing(model, "Sure, [SEG] [SEG]."):
        out = model.predict(video=moving_square_video(9), text=SEGMENT)
    assert len(out.masks) == 2 and all(m.shape == (9, 80, 96) for m in out.masks)
    assert seen["sam2"] is propagator and seen["key_frames"] == [0, 2, 4, 6, 8]  # uniform by default
    key_masks = seen["masks"](0)  # the fine-tuned decoder's masks, at the propagator's input size
    assert key_masks.shape == (2, 256, 256) and key_masks.dtype == torch.bool


def test_sa2va_i_without_a_propagator_is_a_clear_error(image):
    from sa2va import Sa2VAInputError
    from sa2va.testing import tiny_model

    model = tiny_model("qwen2_5_vl")
    model.config.propagation = "sa2va-i"
    with teacher_forcing(model, "Sure, [SEG]."), pytest.raises(Sa2VAInputError, match="set_propagator"):
        model.predict(video=moving_square_video(6), text=SEGMENT)


def test_sam2_1_tracker_uses_occlusion_and_pointer_encodings(tracker_inputs):
    _, frames, prompts = tracker_inputs
    propagator = sam2_1_propagator()
    masks = lambda t: torch.zeros(2, 256, 256, dtype=torch.bool).index_fill_(1, torch.arange(40, 90), True)  # noqa: E731
    tracker = Sa2VATracker(propagator, len(frames), lambda t: frames[t], [0, 5], key_frame_masks=masks, num_objects=2)
    out = torch.stack([logits for _, logits in tracker.run()])
    assert out.shape == (10, 2, 64, 64) and torch.isfinite(out).all()
    # key frames output the given masks as +-10 logits (SAM2's mask-as-output), downsampled to 64 x 64
    assert (out[0][:, 12:20] > 0).all() and (out[0][:, :8] < 0).all()
    position = tracker._pointer_position([1, 2, 3], torch.zeros(3, 2, 256))
    assert position.shape == (3, 2, 64) and position.abs().sum() > 0
