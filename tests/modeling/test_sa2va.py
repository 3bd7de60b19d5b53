"""End-to-end behaviour of `Sa2VAModel` on tiny random models of every family."""

import numpy as np
import pytest
import torch
from PIL import Image

import sa2va.modeling.sa2va as sa2va_module
from sa2va import Sa2VAInputError, Sa2VAModel, Sa2VAOutput
from sa2va.grounding.masks import logits_to_masks
from sa2va.modeling.mllm import internvl_image_features, internvl_splice
from sa2va.modeling.sam2_prompt import decode_language_prompts, encode_images
from sa2va.processing.prompts import IMG_CONTEXT, QWEN_IMAGE_PLACEHOLDER
from sa2va.testing import teacher_forcing

SEGMENT = "<image>\nPlease segment the red cube."


class SpyPrompts:
    """Records the `[SEG]` prompt embeddings that reach SAM2's decoder."""

    def __init__(self, monkeypatch):
        self.calls: list[torch.Tensor] = []

        def spy(sam2, features, prompt_embeddings, *args, **kwargs):
            self.calls.append(prompt_embeddings.clone())
            return decode_language_prompts(sam2, features, prompt_embeddings, *args, **kwargs)

        monkeypatch.setattr(sa2va_module, "decode_language_prompts", spy)


def teacher_forced_states(model: Sa2VAModel, image, text: str, answer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent computation: one forward pass over prompt + answer; post-norm last-layer states and the ids."""
    processor = model.processor
    inputs = processor.prepare(text, [image])
    answer_ids = torch.tensor(processor.tokenizer.encode(answer, add_special_tokens=False))
    ids = torch.cat([inputs.input_ids, answer_ids])
    with torch.no_grad():
        if model.config.is_internvl:
            features = internvl_image_features(model.mllm, inputs.pixel_values)
            embeds = internvl_splice(model.mllm, ids, features)
            states = model.mllm.model.language_model(inputs_embeds=embeds[None]).last_hidden_state[0]
        else:
            types = torch.cat([inputs.extra["mm_token_type_ids"][0], torch.zeros_like(answer_ids)])
            states = model.mllm.model(
                input_ids=ids[None],
                attention_mask=torch.ones_like(ids)[None],
                pixel_values=inputs.pixel_values,
                image_grid_thw=inputs.extra["image_grid_thw"],
                mm_token_type_ids=types[None],
            ).last_hidden_state[0]
    return states, ids


def test_outputs_types_and_shapes(model, image):
    with teacher_forcing(model, "Sure, it is [SEG]."):
        out = model.predict(image=image, text=SEGMENT)
    assert isinstance(out, Sa2VAOutput)
    assert out.raw_text.startswith("Sure, it is [SEG].")
    assert "[SEG]" not in out.text and out.text.startswith("Sure, it is")
    assert len(out.masks) == 1
    mask = out.masks[0]
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (1, 96, 128)


def test_predict_forward_is_the_reference_dict(model, image):
    with teacher_forcing(model, "Sure, it is [SEG]."):
        result = model.predict_forward(image=image, text=SEGMENT)
    assert set(result) == {"prediction", "prediction_masks", "past_text"}
    assert isinstance(result["prediction"], str) and "[SEG]" in result["prediction"]
    assert len(result["prediction_masks"]) == 1 and result["prediction_masks"][0].shape == (1, 96, 128)
    assert result["past_text"].endswith(result["prediction"] + "\n")


def test_seg_state_is_the_input_position_state_and_masks_follow_seg_order(model, image, monkeypatch):
    """Pitfall 1 (hidden state where [SEG] is the *input*) and one mask per [SEG], in order."""
    answer = "The <p> red cube </p> [SEG] is left of <p> a ball </p> [SEG]."
    spy = SpyPrompts(monkeypatch)
    with teacher_forcing(model, answer):
        out = model.predict(image=image, text=SEGMENT)
    assert len(out.masks) == 2
    used = spy.calls[0][0]  # (num_seg, 256), frame 0

    states, ids = teacher_forced_states(model, image, SEGMENT, answer)
    seg_positions = (ids == model.processor.seg_token_id).nonzero().flatten()
    with torch.no_grad():
        expected = model.text_hidden_fcs(states[seg_positions])
        emitting = model.text_hidden_fcs(states[seg_positions - 1])  # the state that *predicted* [SEG]: wrong
    torch.testing.assert_close(used, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(used, emitting, atol=1e-3)

    # the i-th mask is SAM2's answer to the i-th [SEG] state
    with torch.no_grad():
        features = encode_images(model.sam2, model.processor.sam2_inputs([image]))
        for i in range(2):
            logits = decode_language_prompts(model.sam2, features, expected[i][None, None]).low_res_logits[:, 0]
            reference = logits_to_masks(logits, (96, 128), model.config.sam2_image_size).numpy()
            assert (reference == out.masks[i]).mean() > 0.999


def test_gcg_phrases_pair_with_masks(model, image):
    answer = "A <p> red cube </p> [SEG] by <p> a ball </p> [SEG] on <p> the table </p> [SEG]."
    with teacher_forcing(model, answer):
        out = model.predict(image=image, text="<image>\nCould you please give me a brief description of the image?")
    assert out.raw_text.startswith(answer)
    assert [p.text for p in out.phrases] == ["red cube", "a ball", "the table"]
    assert [p.mask_index for p in out.phrases] == [0, 1, 2]
    assert len(out.masks) == 3
    for phrase in out.phrases:
        assert out.text[phrase.start : phrase.end] == phrase.text


def test_trailing_seg_without_end_is_dropped(model, image):
    """Reference pitfall 17: the last generated token's state is never computed."""
    answer_ids = model.processor.tokenizer.encode("Sure, [SEG]", add_special_tokens=False)
    budget = model.config.max_new_tokens
    model.config.max_new_tokens = len(answer_ids)
    try:
        with teacher_forcing(model, "Sure, [SEG]"):
            out = model.predict(image=image, text=SEGMENT)
    finally:
        model.config.max_new_tokens = budget
    assert out.raw_text.endswith("[SEG]") and out.masks == []


def test_text_only_turn_gives_no_masks(model):
    with teacher_forcing(model, "It is [SEG]."):
        out = model.predict(text="<image>\nWhat is a cube?")
    assert out.masks == [] and "[SEG]" in out.raw_text


def test_multi_turn_with_past_text(model, image):
    with teacher_forcing(model, "Sure, it is [SEG]."):
        first = model.predict(image=image, text=SEGMENT)
    with teacher_forcing(model, "And this is [SEG] [SEG]."):
        second = model.predict(image=image, text="Now segment the ball and the cube.", history=first.history)
    assert len(second.masks) == 2  # only the new [SEG]s, not the one in the previous turn
    prompt = second.history.past_text
    assert prompt.startswith(first.history.past_text)
    assert second.history.turns == [(SEGMENT, first.text), ("Now segment the ball and the cube.", second.text)]
    if model.config.is_internvl:
        tiles = model.processor.prepare(SEGMENT, [image]).pixel_values.shape[0]
        assert prompt.count(IMG_CONTEXT) == 256 * tiles  # the image is in the conversation once
    else:
        assert prompt.count(QWEN_IMAGE_PLACEHOLDER) == 1
    # the drop-in API chains the same way
    with teacher_forcing(model, "Sure, it is [SEG]."):
        r1 = model.predict_forward(image=image, text=SEGMENT)
    with teacher_forcing(model, "Yes [SEG]."):
        r2 = model.predict_forward(image=image, text="Again?", past_text=r1["past_text"])
    assert len(r2["prediction_masks"]) == 1 and r2["past_text"].startswith(r1["past_text"])


def test_follow_up_without_the_image_is_a_clear_error(model, image):
    with teacher_forcing(model, "Sure, it is [SEG]."):
        first = model.predict(image=image, text=SEGMENT)
    with pytest.raises(Sa2VAInputError, match="same image"):
        model.predict(text="And now?", history=first.history)


def test_predict_batch_matches_single_predictions(model, image, square_image):
    images = [image, square_image, None]
    texts = [SEGMENT, "<image>\nPlease segment the ball.", "What is a ball?"]
    with teacher_forcing(model, "Sure, it is [SEG]."):
        batch = model.predict_batch(images, texts)
        singles = [model.predict(image=im, text=t) for im, t in zip(images, texts)]
    assert [b.raw_text for b in batch] == [s.raw_text for s in singles]
    for b, s in zip(batch, singles):
        assert len(b.masks) == len(s.masks)
        for mb, ms in zip(b.masks, s.masks):
            assert mb.shape == ms.shape and (mb == ms).mean() > 0.99


def test_short_video_masks_every_frame(model, image):
    frames = [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image]
    with teacher_forcing(model, "Sure, it is [SEG]."):
        out = model.predict(video=frames, text="<image>\nPlease segment the cube.")
    assert len(out.masks) == 1 and out.masks[0].shape == (3, 96, 128)
    assert (out.masks[0][0] == out.masks[0][2]).all()  # identical frames, identical key-frame decoding


def test_one_frame_video_equals_the_image_path(model, square_image):
    # a square 448 image is one InternVL tile (no thumbnail), like an untiled video frame
    with teacher_forcing(model, "Sure, it is [SEG]."):
        as_image = model.predict(image=square_image, text=SEGMENT)
        as_video = model.predict(video=[square_image], text=SEGMENT)
    assert as_image.raw_text == as_video.raw_text
    np.testing.assert_array_equal(as_image.masks[0], as_video.masks[0])


def test_save_and_load_round_trip(model, image, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "config.json").exists()
    loaded = Sa2VAModel.from_pretrained(tmp_path).eval()
    assert loaded.processor is not None and loaded.config.seg_token_id == model.config.seg_token_id
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with teacher_forcing(model, "Sure, it is [SEG]."):
        expected = model.predict(image=image, text=SEGMENT)
    with teacher_forcing(loaded, "Sure, it is [SEG]."):
        got = loaded.predict(image=image, text=SEGMENT)
    assert got.raw_text == expected.raw_text
    np.testing.assert_array_equal(got.masks[0], expected.masks[0])


def test_tiny_model_is_deterministic_by_seed(family):
    from sa2va.testing import tiny_model

    a, b, c = tiny_model(family, seed=3), tiny_model(family, seed=3), tiny_model(family, seed=4)
    wa, wb, wc = (m.text_hidden_fcs[0].weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
