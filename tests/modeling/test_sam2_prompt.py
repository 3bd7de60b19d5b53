"""SAM2 prompting traps of the reference: three sparse tokens, best-IoU multimask, no object-score suppression."""

import pytest
import torch

from sa2va.modeling.sam2_prompt import decode_geometric_prompts, decode_language_prompts, encode_images
from sa2va.testing import teacher_forcing

from ..conftest import get_model


@pytest.fixture(scope="module")
def sam2_and_features():
    model = get_model("qwen2_5_vl")
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, model.config.sam2_image_size, model.config.sam2_image_size)
    with torch.no_grad():
        features = encode_images(model.sam2, pixels)
    return model.sam2, features


def capture_decoder_inputs(sam2):
    seen = {}

    def hook(module, args, kwargs):
        seen.update(kwargs)

    return seen, sam2.mask_decoder.register_forward_pre_hook(hook, with_kwargs=True)


def test_sparse_prompt_is_two_not_a_point_tokens_then_the_language_token(sam2_and_features):
    sam2, features = sam2_and_features
    language = torch.randn(2, 3, 256)  # 2 frames, 3 prompts
    seen, handle = capture_decoder_inputs(sam2)
    try:
        with torch.no_grad():
            decode_language_prompts(sam2, features, language)
    finally:
        handle.remove()
    sparse = seen["sparse_prompt_embeddings"]
    assert sparse.shape == (2, 3, 3, 256)
    not_a_point = sam2.prompt_encoder.not_a_point_embed.weight[0]
    torch.testing.assert_close(sparse[:, :, 0], not_a_point.expand(2, 3, -1))
    torch.testing.assert_close(sparse[:, :, 1], not_a_point.expand(2, 3, -1))
    torch.testing.assert_close(sparse[:, :, 2], language)
    assert seen["multimask_output"] is True
    dense = seen["dense_prompt_embeddings"]
    no_mask = sam2.prompt_encoder.no_mask_embed.weight[0]
    torch.testing.assert_close(dense[0, :, 0, 0], no_mask)


def test_best_iou_candidate_is_kept(sam2_and_features):
    sam2, features = sam2_and_features
    language = torch.randn(2, 1, 256)
    sparse = torch.cat(
        [
            sam2.prompt_encoder.not_a_point_embed.weight.expand(2, 1, 2, 256),
            language[:, :, None],
        ],
        dim=2,
    )
    positional = sam2.get_image_wide_positional_embeddings().repeat(2, 1, 1, 1)
    with torch.no_grad():
        masks, iou, _, _ = sam2.mask_decoder(
            image_embeddings=features.image_embeddings,
            image_positional_embeddings=positional,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=sam2.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                2, -1, *features.image_embeddings.shape[-2:]
            ),
            multimask_output=True,
            high_resolution_features=features.high_res_features,
        )
        chosen = decode_language_prompts(sam2, features, language)
    best = iou.argmax(-1)  # (2, 1)
    for frame in range(2):
        torch.testing.assert_close(chosen.low_res_logits[frame, 0], masks[frame, 0, best[frame, 0]])
        torch.testing.assert_close(chosen.iou_scores[frame, 0], iou[frame, 0, best[frame, 0]])


def test_object_score_never_suppresses_the_mask(sam2_and_features):
    sam2, features = sam2_and_features
    language = torch.randn(2, 2, 256)
    head_bias = sam2.mask_decoder.pred_obj_score_head.proj_out.bias
    original = head_bias.detach().clone()
    try:
        with torch.no_grad():
            head_bias.fill_(-1e4)  # the occlusion head says "no object" everywhere
            absent = decode_language_prompts(sam2, features, language)
            head_bias.fill_(1e4)
            present = decode_language_prompts(sam2, features, language)
    finally:
        with torch.no_grad():
            head_bias.copy_(original)
    assert (absent.object_score_logits < 0).all() and (present.object_score_logits > 0).all()
    torch.testing.assert_close(absent.low_res_logits, present.low_res_logits)
    assert absent.low_res_logits.min() > -1000  # stock SAM2 would have written -1024 here


def test_objects_share_one_backbone_pass_per_frame(family, image, monkeypatch):
    model = get_model(family)
    calls = []
    original = model.sam2.get_image_features

    def counting(pixel_values, **kwargs):
        calls.append(pixel_values.shape[0])
        return original(pixel_values, **kwargs)

    monkeypatch.setattr(model.sam2, "get_image_features", counting)
    with teacher_forcing(model, "<p> a </p> [SEG] and <p> b </p> [SEG] and [SEG]."):
        out = model.predict(image=image, text="<image>\nSegment things.")
    assert len(out.masks) == 3 and calls == [1]


def test_geometric_prompts_give_one_mask_per_box(sam2_and_features):
    sam2, features = sam2_and_features
    boxes = torch.tensor([[10.0, 10.0, 100.0, 120.0], [50.0, 60.0, 200.0, 250.0]])
    with torch.no_grad():
        prediction = decode_geometric_prompts(sam2, features.select(0), boxes=boxes)
    size = sam2.prompt_encoder.mask_input_size
    assert prediction.low_res_logits.shape == (1, 2, *size)


def test_single_mask_mode_keeps_the_single_mask_token(sam2_and_features):
    sam2, features = sam2_and_features
    language = torch.randn(2, 2, 256)
    seen, handle = capture_decoder_inputs(sam2)
    try:
        with torch.no_grad():
            single = decode_language_prompts(sam2, features, language, multimask=False)
            sparse = seen["sparse_prompt_embeddings"]
            masks, iou, _, _ = sam2.mask_decoder(**{**seen, "multimask_output": False})
    finally:
        handle.remove()
    assert seen["multimask_output"] is False and sparse.shape == (2, 2, 3, 256)
    torch.testing.assert_close(single.low_res_logits, masks[:, :, 0])
    torch.testing.assert_close(single.iou_scores, iou[:, :, 0])


def test_config_multimask_output_reaches_every_language_decode(image):
    """Images, videos (key frames) and training all decode `[SEG]` prompts the way the config says."""
    from sa2va.testing import tiny_model

    model = tiny_model("qwen2_5_vl", options={"multimask_output": False})
    assert model.config.multimask_output is False
    modes = []
    handle = model.sam2.mask_decoder.register_forward_pre_hook(
        lambda module, args, kwargs: modes.append(kwargs["multimask_output"]), with_kwargs=True
    )
    try:
        with teacher_forcing(model, "Sure, [SEG]."):
            model.predict(image=image, text="<image>\nSegment it.")
            model.predict(video=[image, image], text="<video>\nSegment it.")
    finally:
        handle.remove()
    assert modes and not any(modes)
