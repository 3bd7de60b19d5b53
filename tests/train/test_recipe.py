"""Training: the loop learns, resumes bit-exactly, and two processes equal one with the doubled batch."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from sa2va import Sa2VAConfigError
from sa2va.train.config import DataConfig, TrainConfig, load_config
from sa2va.train.recipe import TrainRecipe


def config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        model="tiny:internvl",
        output_dir=str(tmp_path / "run"),
        data=[DataConfig(kind="synthetic", options={"num_samples": 64})],
        max_steps=4,
        batch_size=2,
        lr=1e-3,
        lora_rank=4,
        lora_alpha=8,
        lora_dropout=0.0,
        mask_points=256,
        log_every=100,
    )
    values.update(overrides)
    return TrainConfig(**values)


def run(cfg: TrainConfig, resume: bool = True) -> TrainRecipe:
    recipe = TrainRecipe(cfg)
    recipe.setup(resume=resume)
    recipe.train()
    return recipe


def test_resume_after_interruption_continues_bit_exactly(tmp_path):
    straight = run(config(tmp_path / "a", max_steps=6, lora_dropout=0.05))
    interrupted = TrainRecipe(config(tmp_path / "b", max_steps=6, lora_dropout=0.05))
    interrupted.setup()
    interrupted.train(until=3)  # stops as if killed right after its step-3 checkpoint
    assert interrupted.step == 3
    resumed = run(config(tmp_path / "b", max_steps=6, lora_dropout=0.05))  # a new recipe, as a new process
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    a = straight.accelerator.unwrap_model(straight.model).state_dict()
    b = resumed.accelerator.unwrap_model(resumed.model).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_match_one_process_with_the_doubled_batch(tmp_path):
    single = run(config(tmp_path / "single", batch_size=4))
    cfg_path = tmp_path / "ddp.yaml"
    cfg = config(tmp_path / "ddp", batch_size=2)
    raw = {k: v for k, v in vars(cfg).items() if k != "data"}
    raw["betas"] = list(raw["betas"])
    raw["data"] = [vars(d) for d in cfg.data]
    cfg_path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         "-m", "sa2va.cli", "train", "--config", str(cfg_path)],
        check=True, env=env, capture_output=True, text=True, timeout=600,
    )
    history = json.loads((tmp_path / "ddp" / "run" / "checkpoint" / "state.json").read_text())["history"]
    # same samples per step; gradients averaged over 2 x 2 equal-length samples = the mean over 4. Tolerance: float
    # summation order differs between one batched forward and two half-batches.
    for mine, theirs in zip(single.history, history, strict=True):
        for key in ("loss", "llm_loss", "mask_bce", "mask_dice"):
            assert theirs[key] == pytest.approx(mine[key], rel=1e-4, abs=1e-5), (key, mine["step"])


def test_a_few_hundred_steps_lower_the_loss_and_raise_mask_iou(tmp_path):
    cfg = config(
        tmp_path, model="tiny:qwen2_5_vl", max_steps=200, batch_size=4, mask_points=1024, lora_rank=8, lora_alpha=16,
        data=[DataConfig(kind="synthetic", options={"num_samples": 256})],
    )
    history = run(cfg).history
    first, last = history[:20], history[-20:]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    assert mean(last, "loss") < 0.7 * mean(first, "loss")
    assert mean(last, "mask_iou") > mean(first, "mask_iou") + 0.15


def test_config_errors_are_reported_together(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"lr": -1, "finetune": "qlora", "batch_size": 0, "colour": "red"}))
    with pytest.raises(Sa2VAConfigError) as info:
        load_config(path, ["mixed_precision=fp16"])
    message = str(info.value)
    assert "colour" in message
    with pytest.raises(Sa2VAConfigError) as info:
        load_config(None, ["lr=-1", "finetune=qlora", "batch_size=0", "mixed_precision=fp16"])
    message = str(info.value)
    for fragment in ("finetune", "mixed_precision", "batch_size", "lr", "data is empty"):
        assert fragment in message


def test_export_merges_lora_and_reloads(tmp_path):
    from sa2va import Sa2VAModel
    from sa2va.testing import teacher_forcing

    recipe = run(config(tmp_path, max_steps=2))
    folder = recipe.export(tmp_path / "export")
    model = Sa2VAModel.from_pretrained(folder)
    assert not any("lora_" in name for name, _ in model.named_parameters())
    sample = recipe.dataset[0]
    with teacher_forcing(model, "Sure, it is [SEG]."):
        assert len(model.predict(image=sample.image, text=sample.conversation[0].user).masks) == 1


def test_user_jsonl_images_and_videos_train_in_separate_batches(tmp_path):
    """The documented user format goes through the whole loop; a batch never mixes images and videos."""
    import numpy as np

    from ..data.fixtures import rle, square_mask, write_image, write_mp4

    lines = []
    for i in range(4):
        write_image(tmp_path / f"img{i}.png", 48, 40, value=40 * i)
        mask = square_mask(40, 48, 5 + i, 6, 12)
        lines.append({"image": f"img{i}.png", "masks": [{"rle": rle(mask)}],
                      "conversation": [{"user": "<image>\nPlease segment the square.", "assistant": "Sure, [SEG]."}]})
    write_mp4(tmp_path / "clip.mp4", num_frames=6, width=48, height=40)
    for _ in range(2):
        frames = [{"rle": rle(square_mask(40, 48, 10, 10, 8))} for _ in range(6)]
        lines.append({"video": "clip.mp4", "masks": [{"frames": frames}],
                      "conversation": [{"user": "<image>\nPlease segment the square.", "assistant": "It is [SEG]."}]})
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    cfg = config(tmp_path, data=[DataConfig(kind="user", path=str(tmp_path / "data.jsonl"))], max_steps=3)
    recipe = TrainRecipe(cfg)
    recipe.setup()
    for step in range(3):
        kinds = {recipe.dataset[i].frames is None for i in recipe._global_batch(step, 0)}
        assert len(kinds) == 1
    history = recipe.train()
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)


def test_gradient_checkpointing_gives_the_same_losses(tmp_path):
    plain = run(config(tmp_path / "plain", max_steps=2))
    checkpointed = run(config(tmp_path / "ckpt", max_steps=2, gradient_checkpointing=True))
    for a, b in zip(plain.history, checkpointed.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


def test_sam2_lr_puts_sam2_parameters_in_their_own_group(tmp_path):
    recipe = TrainRecipe(config(tmp_path, finetune="full", train_sam2="all", sam2_lr=3e-4))
    recipe.setup(resume=False)
    groups = recipe.optimizer.param_groups
    assert [g["initial_lr"] for g in groups] == [1e-3, 3e-4]
    model = recipe.accelerator.unwrap_model(recipe.model)
    sam2_ids = {id(p) for p in model.sam2.parameters()}
    assert all(id(p) not in sam2_ids for p in groups[0]["params"])
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.sam2.parameters() if p.requires_grad}
    recipe.train(until=2)  # mid-schedule: both groups scaled alike
    assert groups[0]["lr"] / groups[1]["lr"] == pytest.approx(1e-3 / 3e-4)
    with pytest.raises(Sa2VAConfigError, match="sam2_lr"):
        config(tmp_path, sam2_lr=0.0).validate()


def test_language_warmup_steps_train_the_language_loss_only(tmp_path):
    recipe = TrainRecipe(config(tmp_path, language_warmup_steps=2, weight_decay=0.0))
    recipe.setup(resume=False)
    model = recipe.accelerator.unwrap_model(recipe.model)
    decoder = {k: v.clone() for k, v in model.sam2.mask_decoder.state_dict().items()}
    recipe.train(until=2)
    assert all(h["mask_iou"] != h["mask_iou"] and h["mask_bce"] == 0.0 for h in recipe.history)  # nan: no masks
    assert all(torch.equal(v, model.sam2.mask_decoder.state_dict()[k]) for k, v in decoder.items())
    recipe.train()
    assert all(0.0 <= h["mask_iou"] <= 1.0 and h["mask_bce"] > 0 for h in recipe.history[2:])
    assert not all(torch.equal(v, model.sam2.mask_decoder.state_dict()[k]) for k, v in decoder.items())
    with pytest.raises(Sa2VAConfigError, match="language_warmup_steps"):
        config(tmp_path, language_warmup_steps=4).validate()


def test_mask_loss_points_are_drawn_by_the_sample_generator_whatever_the_logits_device():
    """Each sample's CPU generator drives the point draws, also when the logits live on another device (CUDA when
    training on a GPU; the meta device stands in for it here)."""
    from sa2va.train.losses import MaskLossConfig, uncertain_points

    logits, loss_config = torch.randn(2, 1, 8, 8), MaskLossConfig(num_points=16)
    first = uncertain_points(logits, loss_config, torch.Generator().manual_seed(3))
    second = uncertain_points(logits, loss_config, torch.Generator().manual_seed(3))
    assert first.shape == (2, 16, 2) and torch.equal(first, second)
    elsewhere = uncertain_points(logits.to("meta"), loss_config, torch.Generator().manual_seed(3))
    assert elsewhere.device.type == "meta" and elsewhere.shape == first.shape
