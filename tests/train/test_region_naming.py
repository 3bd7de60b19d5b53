"""Region naming: phrases after `[SEG]`, a loss that depends on the masks and trains the vision tower."""

import dataclasses

import pytest
import torch

from sa2va import Sa2VAConfigError
from sa2va.train.config import DataConfig, TrainConfig
from sa2va.train.recipe import TrainRecipe
from sa2va.train.region_naming import phrase_stop_ids, region_naming_loss, seg_phrases


def scenes_config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        model="tiny:qwen2_5_vl",
        model_options={"sam2_image_size": 64, "min_pixels": 28224, "max_pixels": 28224},
        output_dir=str(tmp_path / "run"),
        data=[DataConfig(kind="scenes", root=str(tmp_path / "scenes"),
                         options={"num_images": 8, "num_videos": 0, "refer_turns": 2, "qa_turns": 1,
                                  "gcg_share": 0.5})],
        max_steps=3,
        batch_size=2,
        lr=1e-3,
        finetune="full",
        train_vision=True,
        mask_points=64,
        region_naming_weight=1.0,
        log_every=100,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    recipe = TrainRecipe(scenes_config(tmp_path_factory.mktemp("region")))
    recipe.setup(resume=False)
    return recipe


def encode(recipe, answer: str, question: str = "<image>\nPlease segment the red circle."):
    tokenizer = recipe.processor.tokenizer
    answer_ids = tokenizer(answer, add_special_tokens=False).input_ids
    prompt_ids = tokenizer(question + " [SEG]", add_special_tokens=False).input_ids  # a [SEG] outside the answer
    ids = torch.tensor(prompt_ids + answer_ids)
    labels = torch.tensor([-100] * len(prompt_ids) + answer_ids)
    return ids, labels


def test_seg_phrases_are_the_words_after_each_answer_seg(recipe):
    tokenizer = recipe.processor.tokenizer
    stops, seg = recipe.region_stop_ids, recipe.processor.seg_token_id
    decode = lambda phrases: [tokenizer.decode(p).strip() for p in phrases]  # noqa: E731
    assert decode(seg_phrases(*encode(recipe, "Sure, it is the [SEG] red circle."), seg, stops)) == ["red circle"]
    caption = "<p> A [SEG] red circle </p> and <p> a [SEG] blue square </p>."
    assert decode(seg_phrases(*encode(recipe, caption), seg, stops)) == ["red circle", "blue square"]
    assert seg_phrases(*encode(recipe, "Sure, [SEG]."), seg, stops) == [[]]
    assert stops == phrase_stop_ids(tokenizer) and tokenizer.convert_tokens_to_ids(".") in stops


def image_batch(recipe):
    for step in range(20):
        batch = recipe._batch(recipe._global_batch(step, 0))
        if batch.pixel_values is not None and all(t is not None for t in batch.targets):
            return batch
    raise AssertionError("no image batch with masks in the first 20 steps")


def test_loss_depends_on_the_masks_and_trains_the_vision_tower(recipe):
    model = recipe.accelerator.unwrap_model(recipe.model)
    batch = image_batch(recipe)
    loss = region_naming_loss(model, batch, recipe.region_stop_ids)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.mllm.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.mllm.model.language_model.layers.parameters())  # the LLM is skipped
    model.zero_grad(set_to_none=True)
    # other masks pool other visual tokens
    moved = dataclasses.replace(batch, targets=[t.roll(shifts=(8, 8), dims=(2, 3)) for t in batch.targets])
    with torch.no_grad():
        assert region_naming_loss(model, moved, recipe.region_stop_ids) != pytest.approx(loss.item(), rel=1e-4)
        # without masks there is nothing to name, and the loss is an exact 0 that still reaches the tower
        empty = dataclasses.replace(batch, targets=[None] * batch.num_samples)
        assert region_naming_loss(model, empty, recipe.region_stop_ids).item() == 0.0


def test_recipe_adds_the_weighted_loss_during_the_language_warmup_too(tmp_path):
    recipe = TrainRecipe(scenes_config(tmp_path, language_warmup_steps=2))
    recipe.setup(resume=False)
    history = recipe.train()
    assert all(h["region_loss"] > 0 for h in history if h["step"] <= 2)
    assert all(h["loss"] == pytest.approx(h["llm_loss"] + h["mask_bce"] + h["mask_dice"] + h["region_loss"], rel=1e-5)
               for h in history)


def test_region_naming_is_refused_where_it_cannot_apply(tmp_path):
    with pytest.raises(Sa2VAConfigError, match="region_naming_weight"):
        scenes_config(tmp_path, region_naming_weight=-1.0).validate()
    internvl = TrainConfig(model="tiny:internvl", output_dir=str(tmp_path / "ivl"),
                           data=[DataConfig(kind="synthetic", options={"num_samples": 4})], region_naming_weight=1.0)
    with pytest.raises(Sa2VAConfigError, match="Qwen families only"):
        TrainRecipe(internvl).setup(resume=False)


def test_vision_warmup_steps_train_the_vision_tower_alone(tmp_path):
    recipe = TrainRecipe(scenes_config(tmp_path, vision_warmup_steps=2, language_warmup_steps=2, weight_decay=0.0))
    recipe.setup(resume=False)
    model = recipe.accelerator.unwrap_model(recipe.model)
    layers = {k: v.clone() for k, v in model.mllm.model.language_model.layers.state_dict().items()}
    tower = {k: v.clone() for k, v in model.mllm.model.visual.state_dict().items()}
    recipe.train(until=2)
    assert all(h["llm_loss"] == 0.0 and h["loss"] == h["region_loss"] for h in recipe.history)
    assert all(torch.equal(v, model.mllm.model.language_model.layers.state_dict()[k]) for k, v in layers.items())
    assert not all(torch.equal(v, model.mllm.model.visual.state_dict()[k]) for k, v in tower.items())
    recipe.train()
    assert recipe.history[-1]["llm_loss"] > 0
    with pytest.raises(Sa2VAConfigError, match="region_naming_weight > 0"):
        scenes_config(tmp_path, vision_warmup_steps=1, region_naming_weight=0.0).validate()
