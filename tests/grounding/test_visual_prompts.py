"""Visual prompts: region masks → `region{i}<vp><IMG_CONTEXT>×cells</vp>` and the spliced features."""

import numpy as np
import pytest
import torch

import sa2va.modeling.sa2va as sa2va_module
from sa2va import Sa2VAInputError
from sa2va.grounding.visual_prompts import check_mask_prompts, region_cells
from sa2va.modeling.mllm import internvl_image_features, internvl_splice
from sa2va.processing.prompts import IMG_CONTEXT, region_prompt
from sa2va.testing import teacher_forcing

from ..conftest import get_model


def regions_for(height: int, width: int) -> np.ndarray:
    masks = np.zeros((2, height, width), dtype=bool)
    masks[0, :, : width // 2] = True  # left half → 8 of 16 columns → 128 cells
    masks[1, : height // 4, :] = True  # top quarter → 4 of 16 rows → 64 cells
    return masks


@pytest.fixture(params=["internvl", "internvl_llama"])
def internvl(request):
    return get_model(request.param)


def test_region_cells_are_the_nearest_16x16_grid():
    masks = regions_for(96, 128)
    cells = region_cells(masks, 16)
    assert cells.shape == (2, 256)
    assert cells.sum(dim=1).tolist() == [128, 64]
    grid = cells[0].reshape(16, 16)
    assert grid[:, :8].all() and not grid[:, 8:].any()  # row-major flattening


def test_region_prompt_string_matches_the_reference_format():
    text = region_prompt([2, 1])
    assert text == (
        "\nThere are 2 part regions in the picture: region1<vp>" + IMG_CONTEXT * 2 + "</vp>, region2<vp>"
        + IMG_CONTEXT + "</vp>.\n"
    )


def test_visual_prompt_token_counts_equal_mask_cells(internvl, image):
    masks = regions_for(96, 128)
    with teacher_forcing(internvl, "It is a cube."):
        out = internvl.predict(image=image, text="<image>\nWhat is region1?", mask_prompts=masks)
    prompt = out.history.past_text
    tiles = internvl.processor.prepare("<image>", [image]).pixel_values.shape[0]
    assert prompt.count(IMG_CONTEXT) == 256 * tiles + 128 + 64
    vp1 = prompt.split("region1<vp>")[1].split("</vp>")[0]
    vp2 = prompt.split("region2<vp>")[1].split("</vp>")[0]
    assert vp1 == IMG_CONTEXT * 128 and vp2 == IMG_CONTEXT * 64
    # `<image>` is replaced by placeholder + region sentence, so the user's "\n" follows the sentence's ".\n"
    assert "</img>\nThere are 2 part regions in the picture: region1<vp>" in prompt
    assert "</vp>.\n\nWhat is region1?<|im_end|>" in prompt


def test_region_features_are_the_last_tile_tokens_under_the_mask(internvl, image):
    processor = internvl.processor
    cells = region_cells(regions_for(96, 128), processor.region_grid)
    inputs = processor.prepare("<image>\nWhat is region1?", [image], region_cells=cells)
    with torch.no_grad():
        features = internvl_image_features(internvl.mllm, inputs.pixel_values)  # (tiles, 256, D)
        embeds = internvl_splice(internvl.mllm, inputs.input_ids, features, cells)
    slots = (inputs.input_ids == internvl.mllm.config.image_token_id).nonzero().flatten()
    n_image = features.shape[0] * 256
    spliced_regions = embeds[slots[n_image:]]
    expected = torch.cat([features[-1][cells[0]], features[-1][cells[1]]])
    torch.testing.assert_close(spliced_regions, expected)
    torch.testing.assert_close(embeds[slots[:n_image]], features.reshape(-1, features.shape[-1]))


def test_reference_list_form_is_accepted(internvl, image):
    with teacher_forcing(internvl, "A cube."):
        out = internvl.predict_forward(image=image, text="<image>\nWhat is region1?", mask_prompts=[regions_for(96, 128)])
    assert out["past_text"].count("region2<vp>") == 1


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_qwen_checkpoints_refuse_visual_prompts(family, image):
    model = get_model(family)
    with pytest.raises(Sa2VAInputError, match="not trained with visual prompts"):
        model.predict(image=image, text="What is region1?", mask_prompts=regions_for(96, 128))
    with pytest.raises(Sa2VAInputError, match="not trained with visual prompts"):
        model.predict(image=image, text="What is region1?", region_boxes=np.array([[0, 0, 10, 10]]))


def test_wrong_size_mask_prompt_is_a_clear_error(internvl, image):
    with pytest.raises(Sa2VAInputError, match=r"expected \(num_regions, 96, 128\)"):
        internvl.predict(image=image, text="What is region1?", mask_prompts=np.ones((1, 50, 50), dtype=bool))
    with pytest.raises(Sa2VAInputError, match="empty"):
        internvl.predict(image=image, text="What is region1?", mask_prompts=np.zeros((1, 96, 128), dtype=bool))
    with pytest.raises(Sa2VAInputError, match="one"):
        check_mask_prompts([regions_for(96, 128), regions_for(96, 128)], (128, 96))


def test_boxes_become_regions_through_sam2(internvl, image, monkeypatch):
    seen = {}
    original = sa2va_module.masks_from_geometry

    def spy(*args, **kwargs):
        seen["masks"] = original(*args, **kwargs)
        return seen["masks"]

    monkeypatch.setattr(sa2va_module, "masks_from_geometry", spy)
    with teacher_forcing(internvl, "A cube."):
        out = internvl.predict(image=image, text="What is region1?", region_boxes=np.array([[10, 10, 60, 50]]))
    masks = seen["masks"]
    assert masks.shape == (1, 96, 128) and masks.dtype == bool
    cells = int(region_cells(masks, 16).sum())
    assert out.history.past_text.split("region1<vp>")[1].split("</vp>")[0] == IMG_CONTEXT * cells
    with pytest.raises(Sa2VAInputError, match="xy"):
        internvl.predict(image=image, text="What is region1?", region_points=np.array([1, 2, 3]))


def test_visual_prompts_only_on_first_image_turn(internvl, image):
    frames = [image, image]
    with pytest.raises(Sa2VAInputError, match="single image"):
        internvl.predict(video=frames, text="What is region1?", mask_prompts=regions_for(96, 128))
