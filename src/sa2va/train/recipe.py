"""`TrainRecipe`: Sa2VA co-training / fine-tuning, one readable loop on accelerate (1 CPU process to many GPUs).

    recipe = TrainRecipe(load_config("configs/tiny_scenes.yaml"))
    recipe.setup()        # model, trainable parts, data, optimiser, schedule; resumes from output_dir if it can
    recipe.train()        # the loop; checkpoints every `save_every` steps and at the end
    recipe.export("out")  # LoRA merged, our layout (or layout="official")

Run on several processes with `accelerate launch -m sa2va.cli train --config ...` or `torchrun`. Data order is a
function of (seed, step) only: each optimiser step consumes `batch_size × grad_accum × num_processes` samples of one
seeded permutation, process `r` taking its slice, so a run with N processes sees the same samples per step as one
process with an N-times larger batch, and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sa2va.data.collate import collate, encode_sample
from sa2va.data.sampling import LengthGroupedSampler
from sa2va.errors import Sa2VAConfigError
from sa2va.outputs import Sa2VATrainingOutput
from sa2va.train.config import TrainConfig
from sa2va.train.losses import MaskLossConfig
from sa2va.train.region_naming import phrase_stop_ids, region_naming_loss
from sa2va.train.trainable import configure_trainable, merge_lora

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"


class TrainRecipe:
    """Setup, train, save_checkpoint, export.

    Raises:
        Sa2VAConfigError: invalid settings (all reported at once), e.g. fp16, empty data.
    """

    def __init__(self, config: TrainConfig):
        config.validate()
        self.config = config
        self.step = 0
        self.history: list[dict] = []

    # ------------------------------------------------------------------ setup
    def setup(self, resume: bool = True) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        config = self.config
        precision = config.mixed_precision
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_available() else "no"
        # the decoder's IoU / object-score heads and unused mask tokens never reach the loss (best-of-3 selection)
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(), mixed_precision=precision, kwargs_handlers=[ddp]
        )
        self._seed_everything(config.seed)
        self.model = self._setup_model()
        self.dataset = self._setup_data()
        self.sampler = LengthGroupedSampler(
            self.dataset.modality_lengths, config.batch_size * self.accelerator.num_processes, seed=config.seed
        )
        self.optimizer = torch.optim.AdamW(
            self._parameter_groups(), lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.mask_loss = MaskLossConfig(
            config.mask_points, config.mask_oversample, config.mask_importance,
            config.mask_bce_weight, config.mask_dice_weight,
        )
        self.region_stop_ids = None
        if config.region_naming_weight > 0:
            if self.accelerator.unwrap_model(self.model).config.is_internvl:
                raise Sa2VAConfigError("region_naming_weight is implemented for the Qwen families only (InternVL "
                                       "tiles have no single grid of visual tokens); set it to 0.")
            self.region_stop_ids = phrase_stop_ids(self.processor.tokenizer)
        if resume and (Path(config.output_dir) / CHECKPOINT / "state.json").exists():
            self.load_checkpoint(Path(config.output_dir) / CHECKPOINT)

    def _setup_model(self):
        from sa2va.modeling.sa2va import Sa2VAModel
        from sa2va.testing import tiny_model

        name = self.config.model
        if name.startswith("tiny:"):
            options = dict(self.config.model_options)
            size = options.pop("sam2_image_size", 256)
            model = tiny_model(name.split(":", 1)[1], seed=self.config.seed, sam2_image_size=size, options=options)
        else:
            model = Sa2VAModel.from_pretrained(name)
        if model.processor is None:
            raise Sa2VAConfigError(f"{name} has no tokenizer/processor; training needs the checkpoint's tokenizer.")
        self.processor = model.processor
        configure_trainable(model, self.config)
        if self.config.gradient_checkpointing:
            # transformers 5 renamed the switch; older 5.x releases only have the first name
            enable = getattr(model.mllm, "activation_checkpointing_enable", None) or model.mllm.gradient_checkpointing_enable
            enable()
        return model.train()

    def _parameter_groups(self) -> list[dict]:
        """Trainable parameters: SAM2's at `sam2_lr` (when set), everything else at `lr`."""
        sam2, rest = [], []
        for name, parameter in self.model.named_parameters():
            if parameter.requires_grad:
                (sam2 if name.startswith("sam2.") else rest).append(parameter)
        sam2_lr = self.config.sam2_lr if self.config.sam2_lr is not None else self.config.lr
        return [group for group in ({"params": rest, "lr": self.config.lr}, {"params": sam2, "lr": sam2_lr})
                if group["params"]]

    def _setup_data(self):
        from sa2va.data.mixture import build_mixture

        return build_mixture(self.config.data, seed=self.config.seed)

    def _lr_factor(self, step: int) -> float:
        """Linear warm-up from 1e-5 over `warmup_ratio` of the steps, then cosine to 0 (the reference)."""
        warmup = max(1, int(self.config.warmup_ratio * self.config.max_steps))
        if step < warmup:
            return 1e-5 + (1 - 1e-5) * step / warmup
        progress = (step - warmup) / max(1, self.config.max_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    # ------------------------------------------------------------------ data order
    def _global_batch(self, step: int, micro: int) -> list[int]:
        """Dataset indices of one micro-batch of this process.

        Global micro-batches (`batch_size × num_processes` items of one modality) come from the length-grouped
        sampler of their epoch; process `r` takes the `r`-th slice.
        """
        index = step * self.config.grad_accum + micro
        epoch, position = divmod(index, len(self._epoch_batches(0)))
        chunk = self._epoch_batches(epoch)[position]
        start = self.accelerator.process_index * self.config.batch_size
        return chunk[start : start + self.config.batch_size]

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if getattr(self, "_batches_epoch", None) != epoch:
            self.sampler.set_epoch(epoch)
            self.dataset.set_epoch(epoch)
            self._batches, self._batches_epoch = self.sampler.batches(), epoch
        return self._batches

    def _batch(self, indices: list[int]):
        encoded = [encode_sample(self.dataset[i], self.processor, self.config.max_length) for i in indices]
        pad = self.processor.tokenizer.pad_token_id
        pad = pad if pad is not None else self.processor.stop_token_ids[0]
        # the loss draws of a sample depend on (seed, step, sample), not on where the sample lands
        seeds = [hash((self.config.seed, self.step, i)) % (2**31) for i in indices]
        return collate(encoded, pad, seeds=seeds)

    # ------------------------------------------------------------------ loop
    def train(self, until: int | None = None) -> list[dict]:
        """Run until `max_steps` (or stop early after step `until`, saving a checkpoint); returns the log history."""
        config, accelerator = self.config, self.accelerator
        last = min(config.max_steps, until) if until is not None else config.max_steps
        bar = tqdm(total=config.max_steps, initial=self.step, disable=not accelerator.is_main_process, desc="train")
        writer = self._tensorboard()
        while self.step < last:
            start = time.perf_counter()
            totals = {"loss": 0.0, "llm_loss": 0.0, "mask_bce": 0.0, "mask_dice": 0.0, "mask_iou": 0.0,
                      "region_loss": 0.0}
            for micro in range(config.grad_accum):
                batch = self._batch(self._global_batch(self.step, micro))
                masked_batch = batch  # region naming uses the masks during the language warm-up too
                if self.step < config.language_warmup_steps:
                    batch = dataclasses.replace(batch, targets=[None] * batch.num_samples)
                region_loss = torch.zeros(())
                if self.region_stop_ids is not None:
                    region_loss = region_naming_loss(
                        accelerator.unwrap_model(self.model), masked_batch, self.region_stop_ids
                    )
                if self.step < config.vision_warmup_steps:  # the vision tower alone: no LLM, no SAM2
                    nothing = torch.tensor(0.0)
                    output = Sa2VATrainingOutput(nothing, nothing, nothing, nothing, torch.tensor(float("nan")))
                else:
                    output = self.model(batch, mask_loss=self.mask_loss, video_key_frames=config.video_key_frames)
                loss = output.loss + config.region_naming_weight * region_loss
                accelerator.backward(loss / config.grad_accum)
                if self.step < config.vision_warmup_steps and accelerator.num_processes > 1:
                    # this backward did not start from the DDP-wrapped forward, so average the gradients here
                    for parameter in self.model.parameters():
                        if parameter.grad is not None:
                            parameter.grad = accelerator.reduce(parameter.grad, "mean")
                values = {**vars(output), "loss": loss, "region_loss": region_loss}
                for key in totals:
                    value = values[key].detach().float()
                    totals[key] += float(accelerator.reduce(value.to(accelerator.device), "mean")) / config.grad_accum
            if config.grad_clip > 0:
                accelerator.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            samples = config.batch_size * config.grad_accum * accelerator.num_processes
            record = {"step": self.step, **totals, "lr": self.scheduler.get_last_lr()[0],
                      "samples_per_s": samples / (time.perf_counter() - start)}
            self.history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", iou=f"{record['mask_iou']:.2f}")
            if accelerator.is_main_process and (self.step % config.log_every == 0 or self.step == config.max_steps):
                logger.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
                if writer is not None:
                    for key, value in record.items():
                        if key != "step":
                            writer.add_scalar(f"train/{key}", value, self.step)
            if config.save_every and self.step % config.save_every == 0 and self.step < config.max_steps:
                self.save_checkpoint()
        bar.close()
        self.save_checkpoint()
        return self.history

    def _tensorboard(self):
        if not (self.config.tensorboard and self.accelerator.is_main_process):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise Sa2VAConfigError("tensorboard=true needs the tensorboard package: pip install tensorboard") from error
        return SummaryWriter(str(Path(self.config.output_dir) / "tensorboard"))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Model, optimiser, scheduler, RNG states and step, written to a temporary folder then renamed."""
        accelerator = self.accelerator
        target = Path(self.config.output_dir) / CHECKPOINT
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            staging = target.with_name(f".{CHECKPOINT}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            model = accelerator.unwrap_model(self.model)
            trainable = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in trainable.items()}, str(staging / "model.safetensors"))
            torch.save(
                {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                staging / "optimizer.pt",
            )
            rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
            torch.save(rng, staging / "rng.pt")
            (staging / "state.json").write_text(json.dumps({"step": self.step, "history": self.history}))
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        accelerator.wait_for_everyone()
        return target

    def load_checkpoint(self, folder: Path) -> None:
        """Restore everything `save_checkpoint` wrote (our own files; pickle is read with weights_only=True)."""
        from safetensors.torch import load_file

        model = self.accelerator.unwrap_model(self.model)
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        optim = torch.load(folder / "optimizer.pt", weights_only=False)  # our own file: optimizer state dicts
        self.optimizer.load_state_dict(optim["optimizer"])
        self.scheduler.load_state_dict(optim["scheduler"])
        rng = torch.load(folder / "rng.pt", weights_only=False)
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        state = json.loads((folder / "state.json").read_text())
        self.step, self.history = state["step"], state["history"]
        logger.info("resumed from %s at step %d", folder, self.step)

    # ------------------------------------------------------------------ export
    def export(self, folder: str | Path, layout: str = "native") -> Path:
        """Merge LoRA and write the model in our layout (`native`) or the reference's (`official`)."""
        from sa2va.checkpoints.convert import export_official
        from sa2va.checkpoints.safe_io import atomic_folder

        model = merge_lora(self.accelerator.unwrap_model(self.model))
        model.eval()
        if layout == "official":
            return export_official(model, folder)
        with atomic_folder(folder) as staging:
            model.save_pretrained(staging)
        return Path(folder)


__all__ = ["TrainRecipe"]
