"""`Sa2VAModel`: a transformers MLLM whose `[SEG]` tokens, projected to 256-d, prompt SAM2.

Inference path of one request (REFERENCE_SPEC §12):
text + frames → `Sa2VAProcessor` → MLLM greedy generation (last-layer post-norm states kept for generated tokens only)
→ states where `[SEG]` is the input token → `text_hidden_fcs` → SAM2 mask decoder on features encoded once per frame
→ two-stage bilinear upsample → bool masks at the original size.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, PreTrainedModel, Sam2VideoModel

from sa2va.configuration import Sa2VAConfig
from sa2va.data.collate import TrainingBatch
from sa2va.errors import Sa2VACheckpointError, Sa2VAConfigError, Sa2VAInputError
from sa2va.grounding.gcg import parse_grounded_text
from sa2va.grounding.masks import logits_to_masks
from sa2va.grounding.visual_prompts import check_mask_prompts, masks_from_geometry, region_cells
from sa2va.modeling.mllm import build_mllm, generate_with_states, internvl_image_features, internvl_splice
from sa2va.modeling.projector import build_text_hidden_fcs
from sa2va.modeling.sam2_prompt import Sam2ImageFeatures, decode_language_prompts, encode_images
from sa2va.outputs import ChatHistory, Sa2VAOutput, Sa2VATrainingOutput, VideoStream
from sa2va.processing import prompts
from sa2va.processing.images import sam2_pixel_values, to_rgb
from sa2va.processing.processor import MLLMInputs, Sa2VAProcessor
from sa2va.train.losses import MaskLossConfig, fit_object_count, mask_losses
from sa2va.video.frames import FrameSource, open_video
from sa2va.video.keyframes import select_key_frames
from sa2va.video.propagation import Sa2VATracker

logger = logging.getLogger(__name__)


class Sa2VAModel(PreTrainedModel):
    """Sa2VA: chat, referring segmentation, grounded captions and visual-prompt questions on images and videos.

    Submodules (native layout key prefixes): `mllm` (transformers InternVL / Qwen2.5-VL / Qwen3-VL), `text_hidden_fcs`
    (D → 256) and `sam2` (transformers `Sam2VideoModel`: vision encoder, prompt encoder, mask decoder and the
    memory modules used to track through videos).

    Attributes:
        processor: the checkpoint's :class:`Sa2VAProcessor` (tokenizer, chat template), attached by `from_pretrained`
            or :meth:`attach_processor`; `predict*` use it unless one is passed.
        logits_processors: extra `LogitsProcessor`s applied to every generation. This is the documented hook for
            steering or teacher-forcing answers (see `sa2va.testing.teacher_forcing`); empty by default.
    """

    config_class = Sa2VAConfig
    base_model_prefix = "sa2va"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _no_split_modules = [
        "Qwen2DecoderLayer",
        "LlamaDecoderLayer",
        "Qwen2_5_VLDecoderLayer",
        "Qwen3VLTextDecoderLayer",
        "Qwen2_5_VLVisionBlock",
        "Qwen3VLVisionBlock",
        "InternVLVisionLayer",
        "Sam2VideoModel",
    ]

    def __init__(self, config: Sa2VAConfig):
        super().__init__(config)
        self.mllm = build_mllm(config.mllm_config)
        self.text_hidden_fcs = build_text_hidden_fcs(config.hidden_size, config.prompt_dim)
        self.sam2 = Sam2VideoModel(config.sam2_config)
        self.processor: Sa2VAProcessor | None = None
        self.logits_processors: list[LogitsProcessor] = []
        self.propagator: Sam2VideoModel | None = None  # Sa2VA-i: an original SAM2 that tracks the key-frame masks
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if module.bias is not None:
                module.bias.data.zero_()

    def get_input_embeddings(self) -> nn.Module:
        return self.mllm.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.mllm.get_output_embeddings()

    # ------------------------------------------------------------------ persistence
    def attach_processor(self, processor: Sa2VAProcessor) -> None:
        """Attach the tokenizer/processor this model was trained with; records the `[SEG]` id in the config."""
        self.processor = processor
        self.config.seg_token_id = processor.seg_token_id

    def set_propagator(self, sam2: Sam2VideoModel | None) -> None:
        """Use an original SAM2 (v1 or 2.1, e.g. `Sam2VideoModel.from_pretrained(...)`) to track videos: Sa2VA-i.

        Key-frame masks still come from this model's fine-tuned decoder; `sam2` propagates them with its stock
        behaviour. Sets `config.propagation` to `"sa2va-i"` (or back to `"sa2va"` with `None`).
        """
        self.propagator = sam2.eval() if sam2 is not None else None
        self.config.propagation = "sa2va-i" if sam2 is not None else "sa2va"

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Save config and safetensors weights, plus the attached tokenizer/processor files."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.processor is not None:
            self.processor.save_pretrained(save_directory)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *args,
        dtype: torch.dtype | None = None,
        device_map: str | dict | torch.device | None = None,
        sam2_config=None,
        allow_pickle: bool = False,
        **kwargs,
    ) -> Sa2VAModel:
        """Load a checkpoint: ours (`save_pretrained`) or an official Sa2VA release, with its tokenizer/processor.

        Args:
            pretrained_model_name_or_path: a local folder, a released name (`Sa2VA-4B`) or a Hub id.
            dtype: weights dtype; default bfloat16 when `device_map` places the model on CUDA, else float32.
            device_map: `None` (CPU), a device (`"cuda:0"`), or `"auto"` to split across GPUs (needs accelerate).
            sam2_config: official checkpoints with another SAM2 than v1 hiera-L: a transformers `Sam2VideoConfig`
                or a dict of original SAM2 image-encoder parameters. Our own layout records its SAM2 already.
            allow_pickle: accept `pytorch_model*.bin` weights (read with `weights_only=True`).

        Raises:
            Sa2VACheckpointError: the folder / Hub id cannot be read, or the weights do not match the model.

        Remote code is never executed.
        """
        from sa2va.checkpoints.convert import is_official_checkpoint, load_official
        from sa2va.checkpoints.hub import resolve_checkpoint

        folder = resolve_checkpoint(pretrained_model_name_or_path, allow_pickle=allow_pickle)
        dtype = dtype if dtype is not None else kwargs.pop("torch_dtype", None) or default_dtype(device_map)
        if is_official_checkpoint(folder):
            model = load_official(folder, dtype=dtype, sam2_config=sam2_config, allow_pickle=allow_pickle)
            return _place(model, device_map, dtype)
        if sam2_config is not None:
            logger.warning("sam2_config is ignored: %s records its own SAM2 configuration in config.json", folder)
        if not allow_pickle and not any(folder.glob("*.safetensors")):
            raise Sa2VACheckpointError(
                f"{folder} has no safetensors weights; pickle files need allow_pickle=True (only for trusted files)."
            )
        kwargs["trust_remote_code"] = False
        model = super().from_pretrained(folder, *args, dtype=dtype, device_map=device_map, **kwargs)
        if _has_tokenizer(folder):
            model.attach_processor(Sa2VAProcessor.from_pretrained(folder, model.config))
        return model.eval()

    # ------------------------------------------------------------------ training
    def forward(
        self, batch: TrainingBatch, mask_loss: MaskLossConfig | None = None, video_key_frames: int = 0
    ) -> Sa2VATrainingOutput:
        """Training forward (teacher forcing): LM cross-entropy + mask BCE + Dice (REFERENCE_SPEC §7.2).

        Each `[SEG]`'s post-norm last-layer state at its input position, projected to 256-d, prompts SAM2 on every
        frame of its sample independently (no memory, as the reference trains); per frame the prompts and masks are
        fitted to exactly five objects. Mask losses are means over all objects of the batch; each sample's random
        draws come from its own seed (`batch.seeds`), so sharding a batch over processes changes nothing. A batch
        without masks adds the mask-side parameters with zero weight, keeping every trainable parameter in the graph.

        With `video_key_frames = k > 0`, a video sample instead goes through SAM2's memory as at inference: its
        first `k` frames are prompted by the `[SEG]` states, the later ones tracked from memory (with gradients
        through the memory encoder and memory attention), and every frame's logits enter the loss (no five-objects
        rule on this path).

        Args:
            batch: a collated :class:`~sa2va.data.collate.TrainingBatch`.
            mask_loss: point sampling and weights (defaults: the reference's).
            video_key_frames: 0 (the reference) or the number of prompted frames of the memory path.
        """
        mask_loss = mask_loss or MaskLossConfig()
        batch = batch.to(self.device)
        hidden = self._training_hidden_states(batch)  # (B, L, D), after the final norm
        logits = self.mllm.lm_head(hidden)
        llm_loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), batch.labels[:, 1:].flatten(), ignore_index=-100
        )
        seg_id = self.config.seg_token_id
        bce_sum = dice_sum = hidden.new_zeros(())
        ious, num_objects = [], 0
        for b in range(batch.num_samples):
            if batch.targets[b] is None:
                continue
            generator = torch.Generator().manual_seed(int(batch.seeds[b]))
            prompts = self.text_hidden_fcs(hidden[b][batch.input_ids[b] == seg_id])  # (n_seg, 256)
            num_frames = batch.sam2_pixels[b].shape[0]
            if video_key_frames and num_frames > 1:
                predicted, target = self._tracked_logits(prompts, batch.sam2_pixels[b], batch.targets[b], video_key_frames)
            else:
                features = encode_images(self.sam2, batch.sam2_pixels[b])  # one pass for the sample's frames
                fitted = [fit_object_count(prompts, batch.targets[b][:, t], generator=generator)
                          for t in range(num_frames)]
                decoded = decode_language_prompts(
                    self.sam2, features, torch.stack([p for p, _ in fitted]), self.config.multimask_output
                )
                predicted = decoded.low_res_logits.flatten(0, 1)  # (T * 5, h, w)
                target = torch.stack([m for _, m in fitted]).flatten(0, 1)
            bce, dice = mask_losses(predicted, target.to(self.device), mask_loss, generator)
            count = predicted.shape[0]
            bce_sum, dice_sum, num_objects = bce_sum + bce * count, dice_sum + dice * count, num_objects + count
            with torch.no_grad():
                hit, target = predicted > 0, target.to(self.device)
                ious.append((hit & target).flatten(1).sum(1) / (hit | target).flatten(1).sum(1).clamp(min=1))
        if num_objects:
            bce, dice = bce_sum / num_objects, dice_sum / num_objects
            mask_iou = torch.cat(ious).mean()
        else:
            keep = sum(p.sum() for p in self.text_hidden_fcs.parameters())
            keep = keep + sum(p.sum() for p in self.sam2.mask_decoder.parameters() if p.requires_grad)
            bce = dice = 0.0 * keep
            mask_iou = torch.tensor(float("nan"))
        return Sa2VATrainingOutput(
            loss=llm_loss + bce + dice, llm_loss=llm_loss, mask_bce=bce, mask_dice=dice, mask_iou=mask_iou
        )

    def _tracked_logits(
        self, prompts: torch.Tensor, pixels: torch.Tensor, targets: torch.Tensor, key_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(num_objects * T, h, w)` logits of a video tracked through SAM2's memory, and the matching targets.

        Args:
            prompts: `(n_seg, 256)` projected `[SEG]` states.
            pixels: `(T, 3, S, S)` SAM2 input.
            targets: `(n_mask, T, h, w)` masks; prompts and masks pair in order, the longer list is cut.
            key_frames: how many leading frames get the language prompts.
        """
        count = min(prompts.shape[0], targets.shape[0])
        num_frames = pixels.shape[0]
        tracker = Sa2VATracker(
            self.sam2, num_frames, lambda t: pixels[t : t + 1], list(range(min(key_frames, num_frames))),
            prompts=prompts[:count], window=num_frames, multimask=self.config.multimask_output,
        )
        logits = torch.stack([frame_logits for _, frame_logits in tracker.steps()], dim=1)  # (n, T, h, w)
        return logits.flatten(0, 1), targets[:count].flatten(0, 1)

    def _training_hidden_states(self, batch: TrainingBatch) -> torch.Tensor:
        """Last-layer, post-norm hidden states `(B, L, D)` of a padded batch, visual tokens spliced in."""
        if self.config.is_internvl:
            features = None
            if batch.pixel_values is not None:
                features = internvl_image_features(self.mllm, batch.pixel_values)  # (tiles, 256, D)
            rows, start = [], 0
            for b in range(batch.num_samples):
                tiles = batch.tiles[b]
                sample_features = features[start : start + tiles] if tiles else None
                rows.append(internvl_splice(self.mllm, batch.input_ids[b], sample_features, batch.region_cells[b]))
                start += tiles
            out = self.mllm.model.language_model(inputs_embeds=torch.stack(rows), attention_mask=batch.attention_mask)
            return out.last_hidden_state
        kwargs = {}
        if batch.pixel_values is not None:
            kwargs = {"pixel_values": batch.pixel_values.to(self.mllm.dtype), "image_grid_thw": batch.image_grid_thw}
        out = self.mllm.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            mm_token_type_ids=batch.mm_token_type_ids,
            **kwargs,
        )
        return out.last_hidden_state

    # ------------------------------------------------------------------ reference drop-in
    def predict_forward(
        self,
        image: Image.Image | None = None,
        video: list[Image.Image] | None = None,
        text: str | None = None,
        past_text: str = "",
        mask_prompts: list[np.ndarray] | np.ndarray | None = None,
        tokenizer=None,
        processor=None,
    ) -> dict:
        """The reference's `predict_forward`, same arguments and keys.

        Args:
            image: one image (PIL, or an array the library converts).
            video: frames of one video.
            text: the user turn; `<image>` marks where visual tokens go.
            past_text: previous turns, as returned in `past_text` by the previous call.
            mask_prompts: `[(num_regions, H, W)]` region masks (InternVL checkpoints only).
            tokenizer, processor: optional; the model carries its own.

        Returns:
            `{"prediction": str, "prediction_masks": [bool (T, H, W), ...], "past_text": str}`; `prediction` keeps
            special tokens, one mask per `[SEG]` in order.
        """
        output = self.predict(
            image=image,
            video=video,
            text=text,
            history=ChatHistory(past_text=past_text or ""),
            mask_prompts=mask_prompts,
            processor=self._processor_from(tokenizer, processor),
        )
        return {"prediction": output.raw_text, "prediction_masks": output.masks, "past_text": output.history.past_text}

    # ------------------------------------------------------------------ typed API
    @torch.inference_mode()
    def predict(
        self,
        image=None,
        video=None,
        text: str | None = None,
        history: ChatHistory | None = None,
        mask_prompts=None,
        region_boxes: np.ndarray | None = None,
        region_points: np.ndarray | None = None,
        key_frames: str | list[int] | None = None,
        processor: Sa2VAProcessor | None = None,
    ) -> Sa2VAOutput:
        """Answer one turn about an image, a video, or text only.

        Args:
            image: an image (PIL; numpy `(H, W)`, `(H, W, 3|4)`; grayscale, RGBA and 16-bit are converted).
            video: a video: list of frames, `(T, H, W, 3)` array, folder of frames, video file, or a
                `sa2va.video.frames.FrameSource` (see `open_video` for stride / fps / max_frames).
            text: the user text.
            history: the previous turns (`output.history` of the previous call); pass the same image again.
            mask_prompts: `(num_regions, H, W)` region masks for "region1", "region2", ... (InternVL checkpoints).
            region_boxes: `(num_regions, 4)` xyxy pixel boxes, turned into region masks by SAM2 first.
            region_points: `(num_regions, 2)` xy pixel clicks, turned into region masks by SAM2 first.
            key_frames: video frames the MLLM sees and SAM2 is prompted on: `"first"` (the reference: the first
                `config.num_key_frames`), `"uniform"`, or explicit frame indices. Other frames are tracked.
                Default: `"first"`, or `"uniform"` in Sa2VA-i mode.
            processor: overrides the attached processor.

        Returns:
            Text, masks (one bool `(T, H, W)` per `[SEG]`), GCG phrases and the updated history. For long videos
            prefer :meth:`predict_video_stream`, which never holds `T × H × W`.

        Raises:
            Sa2VAInputError: empty text, unreadable or 0-sized image, empty video, wrong-size mask prompt, visual
                prompts on a checkpoint not trained with them.
        """
        history = history or ChatHistory()
        request = self._prepare(
            image, video, text, history, mask_prompts, region_boxes, region_points, processor, key_frames
        )
        return self._run([request], [history])[0]

    @torch.inference_mode()
    def predict_video_stream(
        self,
        video,
        text: str,
        history: ChatHistory | None = None,
        key_frames: str | list[int] | None = None,
        processor: Sa2VAProcessor | None = None,
    ) -> VideoStream:
        """Answer about a video and stream its masks frame by frame, holding nothing of size `T × H × W`.

        Returns:
            A :class:`VideoStream`: the answer (`text`, `raw_text`, `phrases`, `history`, `object_ids`) is ready at
            once; iterating yields `(frame_idx, {obj_id: bool (H, W)})` in frame order, `obj_id` being the index
            of the object's `[SEG]` in the answer.
        """
        history = history or ChatHistory()
        request = self._prepare(None, video, text, history, None, None, None, processor, key_frames)
        return self._run([request], [history], stream=True)[0]

    @torch.inference_mode()
    def predict_batch(
        self,
        images: list,
        texts: list[str],
        processor: Sa2VAProcessor | None = None,
    ) -> list[Sa2VAOutput]:
        """Answer many single-turn questions in one left-padded batch; `images[i]` may be `None` (text only).

        Returns:
            One output per question, equal to what :meth:`predict` gives for it alone (up to batch numerics).
        """
        if len(images) != len(texts):
            raise Sa2VAInputError(f"got {len(images)} images but {len(texts)} texts; give one text per image.")
        if not texts:
            return []
        requests = [
            self._prepare(im, None, t, ChatHistory(), None, None, None, processor) for im, t in zip(images, texts)
        ]
        return self._run(requests, [ChatHistory() for _ in texts])

    # ------------------------------------------------------------------ internals
    def _processor_from(self, tokenizer, processor) -> Sa2VAProcessor | None:
        if isinstance(processor, Sa2VAProcessor):
            return processor
        if processor is not None:  # a transformers Qwen-VL processor, as the reference takes
            return Sa2VAProcessor(self.config, processor.tokenizer, processor)
        if tokenizer is not None:
            return Sa2VAProcessor(self.config, tokenizer, self.processor.mllm_processor if self.processor else None)
        return None

    def _prepare(
        self, image, video, text, history, mask_prompts, region_boxes, region_points, processor, key_frames=None
    ):
        processor = processor or self.processor
        if processor is None:
            raise Sa2VAInputError(
                "this model has no tokenizer attached: load it with Sa2VAModel.from_pretrained(folder) or pass "
                "tokenizer=/processor=."
            )
        if not isinstance(text, str) or not text.replace(prompts.IMAGE_TAG, "").strip():
            raise Sa2VAInputError(f"text must be a non-empty string, got {text!r}.")
        if image is not None and video is not None:
            raise Sa2VAInputError("give an image or a video, not both.")
        frames, is_video, source, keys = None, False, None, [0]
        if image is not None:
            frames = [to_rgb(image)]
        elif video is not None:
            source = open_video(video)
            if key_frames is None:
                key_frames = "uniform" if self.config.propagation == "sa2va-i" else "first"
            keys = select_key_frames(len(source), key_frames, self.config.num_key_frames)
            frames, is_video = [source.frame(k) for k in keys], True
        wants_regions = any(x is not None for x in (mask_prompts, region_boxes, region_points))
        if wants_regions:
            if not self.config.is_internvl:
                raise Sa2VAInputError(
                    f"this {self.config.family} checkpoint was not trained with visual prompts; mask_prompts, "
                    "region_boxes and region_points need an InternVL-based Sa2VA checkpoint."
                )
            if frames is None or is_video:
                raise Sa2VAInputError("visual prompts need a single image (not a video, not text only).")
            if history.past_text:
                raise Sa2VAInputError("visual prompts can only be given on the first turn of a conversation.")
        request = _Request(text, frames, is_video, processor, history, source=source, key_frames=keys)
        cells = None
        if wants_regions:
            size = frames[0].size
            if mask_prompts is not None:
                region_masks = check_mask_prompts(mask_prompts, size)
            else:
                features = request.sam2_features(self)
                region_masks = masks_from_geometry(self.sam2, features, size, boxes=region_boxes, points=region_points)
            cells = region_cells(region_masks, processor.region_grid)
        request.inputs = processor.prepare(text, frames, history.past_text, cells, is_video)
        return request

    def _generation_config(self, processor: Sa2VAProcessor) -> GenerationConfig:
        tokenizer = processor.tokenizer
        stop_ids = processor.stop_token_ids
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
        return GenerationConfig(
            max_new_tokens=self.config.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=stop_ids,
            pad_token_id=pad,
            bos_token_id=tokenizer.bos_token_id,
        )

    def _model_inputs(self, requests: list[_Request]) -> dict[str, torch.Tensor]:
        """Left-pad the requests into one batch of `generate` inputs."""
        inputs = [r.inputs for r in requests]
        pad_id = self._generation_config(requests[0].processor).pad_token_id
        length = max(x.input_ids.shape[0] for x in inputs)
        mask = torch.zeros(len(inputs), length, dtype=torch.long)
        for i, x in enumerate(inputs):
            mask[i, length - x.input_ids.shape[0] :] = 1
        if self.config.is_internvl:
            rows = []
            for x in inputs:
                features = internvl_image_features(self.mllm, x.pixel_values) if x.pixel_values is not None else None
                rows.append(internvl_splice(self.mllm, x.input_ids, features, x.region_cells))
            embeds = rows[0].new_zeros(len(rows), length, rows[0].shape[-1])
            for i, row in enumerate(rows):
                embeds[i, length - row.shape[0] :] = row
            return {"inputs_embeds": embeds, "attention_mask": mask.to(self.device)}
        ids = torch.full((len(inputs), length), pad_id, dtype=torch.long)
        token_types = torch.zeros(len(inputs), length, dtype=torch.long)
        for i, x in enumerate(inputs):
            ids[i, length - x.input_ids.shape[0] :] = x.input_ids
            if "mm_token_type_ids" in x.extra:
                token_types[i, length - x.input_ids.shape[0] :] = x.extra["mm_token_type_ids"][0]
        batch = {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": token_types}
        pixel_values = [x.pixel_values for x in inputs if x.pixel_values is not None]
        if pixel_values:
            batch["pixel_values"] = torch.cat(pixel_values).to(self.mllm.dtype)
            batch["image_grid_thw"] = torch.cat([x.extra["image_grid_thw"] for x in inputs if x.pixel_values is not None])
        return {k: v.to(self.device) for k, v in batch.items()}

    def _run(self, requests: list[_Request], histories: list[ChatHistory], stream: bool = False) -> list:
        processor = requests[0].processor
        logits_processor = LogitsProcessorList(self.logits_processors) if self.logits_processors else None
        result = generate_with_states(
            self.mllm, self._model_inputs(requests), self._generation_config(processor), logits_processor
        )
        stops = set(processor.stop_token_ids)
        seg_id = processor.seg_token_id
        outputs = []
        for row, request in enumerate(requests):
            ids = result.sequences[row].tolist()
            length = next((i + 1 for i, t in enumerate(ids) if t in stops), len(ids))
            # the state of the last generated token is never computed: a trailing [SEG] is dropped (reference §1.6)
            seg_positions = [i for i in range(length - 1) if ids[i] == seg_id]
            raw_text = processor.decode(result.sequences[row, :length])
            embeddings = None
            if request.frames is not None and seg_positions:
                weight = self.text_hidden_fcs[0].weight
                states = result.input_states[row, seg_positions].to(weight.device, weight.dtype)  # (num_seg, D)
                embeddings = self.text_hidden_fcs(states)  # (num_seg, 256)
            clean, phrases = parse_grounded_text(raw_text)
            past = prompts.next_past_text(request.inputs.prompt, raw_text, processor.answer_suffix)
            history = ChatHistory(past_text=past, turns=[*histories[row].turns, (request.text, clean)])
            if stream:
                frames = self._video_masks(request, embeddings) if embeddings is not None else iter(())
                outputs.append(VideoStream(clean, raw_text, phrases, history, len(seg_positions), len(request.source),
                                           frames))
                continue
            masks = self._segment(request, embeddings) if embeddings is not None else []
            outputs.append(Sa2VAOutput(text=clean, raw_text=raw_text, masks=masks, phrases=phrases, history=history))
        return outputs

    def _segment(self, request: _Request, embeddings: torch.Tensor) -> list[np.ndarray]:
        """One bool `(T, H, W)` mask per `[SEG]` embedding `(num_seg, 256)`."""
        if request.is_video:
            width, height = request.source.size
            masks = [np.zeros((len(request.source), height, width), dtype=bool) for _ in range(embeddings.shape[0])]
            for t, frame_masks in self._video_masks(request, embeddings):
                for mask, frame_mask in zip(masks, frame_masks.values(), strict=True):
                    mask[t] = frame_mask
            return masks
        features = request.sam2_features(self)  # one backbone pass, shared by every [SEG]
        prediction = decode_language_prompts(  # logits: (1, N, S/4, S/4)
            self.sam2, features, embeddings[None], self.config.multimask_output
        )
        width, height = request.frames[0].size
        size = self.config.sam2_image_size
        return [logits_to_masks(prediction.low_res_logits[:, i], (height, width), size).cpu().numpy()
                for i in range(embeddings.shape[0])]

    def _video_masks(self, request: _Request, embeddings: torch.Tensor):
        """Yield `(t, {obj_id: bool (H, W)})` for every frame, tracking all objects in one batched SAM2 pass."""
        source, size = request.source, self.config.sam2_image_size
        width, height = source.size
        if self.config.propagation == "sa2va-i":
            if self.propagator is None:
                raise Sa2VAInputError("Sa2VA-i propagation needs an original SAM2: call model.set_propagator(sam2).")
            tracker, size = self._sa2va_i_tracker(request, embeddings), self.propagator.config.image_size
        else:
            tracker = Sa2VATracker(
                self.sam2,
                num_frames=len(source),
                load_frame=lambda t: sam2_pixel_values(source.frame(t), size)[None],
                key_frames=request.key_frames,
                prompts=embeddings,
                multimask=self.config.multimask_output,
            )
        with torch.inference_mode():
            for t, logits in tracker.run():
                masks = logits_to_masks(logits, (height, width), size).cpu().numpy()  # (N, H, W)
                yield t, {obj_id: masks[obj_id] for obj_id in range(masks.shape[0])}


    def _sa2va_i_tracker(self, request: _Request, embeddings: torch.Tensor) -> Sa2VATracker:
        """Key-frame masks from this model's decoder, tracked by the original SAM2 propagator."""
        source, size = request.source, self.config.sam2_image_size
        propagator_size = self.propagator.config.image_size

        def key_frame_masks(t: int) -> torch.Tensor:  # (N, S_propagator, S_propagator) bool
            features = encode_images(self.sam2, sam2_pixel_values(source.frame(t), size)[None])
            logits = decode_language_prompts(
                self.sam2, features, embeddings[None], self.config.multimask_output
            ).low_res_logits[0]
            logits = torch.nn.functional.interpolate(
                logits[:, None].float(), size=(propagator_size, propagator_size), mode="bilinear", align_corners=False
            )
            return logits[:, 0] > 0

        return Sa2VATracker(
            self.propagator,
            num_frames=len(source),
            load_frame=lambda t: sam2_pixel_values(source.frame(t), propagator_size)[None],
            key_frames=request.key_frames,
            key_frame_masks=key_frame_masks,
            num_objects=embeddings.shape[0],
        )


class _Request:
    """One prepared turn: its frames, MLLM inputs and (lazily) SAM2 features, computed at most once."""

    def __init__(self, text, frames, is_video, processor, history, source=None, key_frames=(0,)):
        self.text = text
        self.source: FrameSource | None = source  # the whole video, read lazily
        self.key_frames = list(key_frames)
        self.frames: list[Image.Image] | None = frames
        self.is_video = is_video
        self.processor: Sa2VAProcessor = processor
        self.history = history
        self.inputs: MLLMInputs | None = None
        self._features: Sam2ImageFeatures | None = None

    def sam2_features(self, model: Sa2VAModel) -> Sam2ImageFeatures:
        if self._features is None:
            pixels = self.processor.sam2_inputs(self.frames)
            self._features = encode_images(model.sam2, pixels)
        return self._features


def default_dtype(device_map=None) -> torch.dtype:
    """bfloat16 when the weights go to a CUDA device, float32 on CPU (and MPS), as the reference recommends."""
    if device_map is None or not torch.cuda.is_available():
        return torch.float32
    placements = device_map.values() if isinstance(device_map, dict) else [device_map]
    on_cuda = any(str(p) in ("auto", "balanced", "sequential") or str(p).startswith("cuda") or isinstance(p, int)
                  for p in placements)
    return torch.bfloat16 if on_cuda else torch.float32


def _place(model: Sa2VAModel, device_map, dtype: torch.dtype) -> Sa2VAModel:
    """Move a CPU-loaded model where `device_map` says."""
    if device_map is None:
        return model
    if isinstance(device_map, (str, torch.device)) and str(device_map) not in ("auto", "balanced", "sequential"):
        return model.to(device_map)
    try:
        from accelerate import dispatch_model, infer_auto_device_map
    except ImportError as error:
        raise Sa2VAConfigError("device_map='auto' needs the accelerate package: pip install accelerate") from error
    if not isinstance(device_map, dict):
        device_map = infer_auto_device_map(model, no_split_module_classes=model._no_split_modules, dtype=dtype)
    return dispatch_model(model, device_map=device_map)


def _has_tokenizer(path: str | os.PathLike) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in ("tokenizer.json", "tokenizer_config.json"))


__all__ = ["Sa2VAModel", "default_dtype"]
