"""`Sa2VAProcessor`: text, frames and region masks of one request in, MLLM inputs out.

InternVL checkpoints: our own tiling (`processing/images.py`) and the reference prompt strings with the checkpoint's
tokenizer. Qwen-VL checkpoints: the checkpoint's own transformers processor and chat template.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from transformers import (
    AutoProcessor,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    ProcessorMixin,
)

from sa2va.configuration import Sa2VAConfig
from sa2va.errors import Sa2VACheckpointError, Sa2VAInputError
from sa2va.processing import prompts
from sa2va.processing.images import internvl_pixel_values, qwen_fetch_resize, sam2_pixel_values_batch

logger = logging.getLogger(__name__)


@dataclass
class MLLMInputs:
    """Prepared MLLM inputs of one request.

    Attributes:
        prompt: the full prompt text (after `past_text`), as tokenized.
        input_ids: `(seq,)` token ids.
        pixel_values: InternVL `(num_tiles, 3, 448, 448)`; Qwen-VL flattened patches `(num_patches, C)`; or `None`.
        extra: family-specific tensors (`image_grid_thw`, `mm_token_type_ids`, `attention_mask` for Qwen-VL).
        region_cells: `(num_regions, 256)` bool visual-prompt cells (InternVL), or `None`.
    """

    prompt: str
    input_ids: torch.Tensor
    pixel_values: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    region_cells: torch.Tensor | None = None


@dataclass
class TrainingInputs:
    """A tokenised training conversation.

    Attributes:
        input_ids: `(seq,)`.
        labels: `(seq,)`, -100 where no loss is taken.
        pixel_values: InternVL `(num_tiles, 3, 448, 448)` or Qwen-VL patches, or `None`.
        mm_token_type_ids: `(seq,)` 1 on image tokens (Qwen-VL), else 0.
        extra: `image_grid_thw` for Qwen-VL.
        region_cells: `(num_regions, 256)` bool (InternVL visual prompts), or `None`.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor | None
    mm_token_type_ids: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    region_cells: torch.Tensor | None = None


class Sa2VAProcessor:
    """Tokenizer (+ Qwen-VL processor) and the reference's prompt rules for one checkpoint.

    Args:
        config: the model config (family, template, tiling and pixel budgets).
        tokenizer: the checkpoint's tokenizer, carrying `[SEG] <p> </p> <vp> </vp>`.
        mllm_processor: for Qwen-VL families, the checkpoint's `Qwen2_5_VLProcessor` / `Qwen3VLProcessor`.
    """

    def __init__(
        self,
        config: Sa2VAConfig,
        tokenizer: PreTrainedTokenizerBase,
        mllm_processor: ProcessorMixin | None = None,
    ):
        if not config.is_internvl and mllm_processor is None:
            raise Sa2VAInputError(
                f"{config.family} checkpoints need their transformers processor (AutoProcessor.from_pretrained(path))."
            )
        self.config = config
        self.tokenizer = tokenizer
        self.mllm_processor = mllm_processor
        missing = [t for t in prompts.SA2VA_TOKENS if t not in tokenizer.get_vocab()]
        if missing:
            raise Sa2VAInputError(f"tokenizer lacks the Sa2VA tokens {missing}; load the checkpoint's own tokenizer.")
        self.seg_token_id = tokenizer.convert_tokens_to_ids(prompts.SEG_TOKEN)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, config: Sa2VAConfig) -> Sa2VAProcessor:
        """Load the tokenizer (and Qwen-VL processor) saved next to the weights; never runs remote code."""
        try:
            if config.is_internvl:
                return cls(config, _load_tokenizer(Path(path)))
            processor = AutoProcessor.from_pretrained(path, trust_remote_code=False)
            return cls(config, processor.tokenizer, processor)
        except (OSError, ValueError) as error:
            raise Sa2VACheckpointError(f"cannot load the tokenizer/processor from {path}: {error}") from error

    def save_pretrained(self, path: str | os.PathLike) -> None:
        if self.mllm_processor is not None:
            self.mllm_processor.save_pretrained(path)
        else:
            self.tokenizer.save_pretrained(path)

    # ------------------------------------------------------------------ generation settings
    @property
    def stop_token_ids(self) -> list[int]:
        """Ids that end an answer: the template stop words (InternVL) or ChatML's end tokens (Qwen-VL), plus EOS."""
        words = self.config.chat_template["stop_words"] if self.config.is_internvl else ("<|im_end|>",)
        vocab = self.tokenizer.get_vocab()
        ids = [vocab[w] for w in words if w in vocab]
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    @property
    def answer_suffix(self) -> str:
        """The string closing an assistant turn."""
        return self.config.chat_template["suffix"] if self.config.is_internvl else "<|im_end|>"

    # ------------------------------------------------------------------ one request
    def sam2_inputs(self, frames: list[Image.Image]) -> torch.Tensor:
        """`(num_frames, 3, S, S)` SAM2 input of RGB frames."""
        return sam2_pixel_values_batch(frames, self.config.sam2_image_size)

    def prepare(
        self,
        text: str,
        frames: list[Image.Image] | None,
        past_text: str = "",
        region_cells: torch.Tensor | None = None,
        is_video: bool = False,
    ) -> MLLMInputs:
        """Build the prompt and model inputs of one turn.

        Args:
            text: user text; `<image>` marks where visual tokens go (InternVL; added in front when missing).
            frames: RGB frames the MLLM sees (one image, or the video key frames), or `None` for text only.
            past_text: previous turns as returned by the previous answer.
            region_cells: `(num_regions, 256)` bool visual-prompt cells (InternVL only).
            is_video: frames are video key frames (untiled for InternVL).

        Returns:
            The prepared inputs.
        """
        if self.config.is_internvl:
            return self._prepare_internvl(text, frames, past_text, region_cells, is_video)
        return self._prepare_qwen(text, frames, past_text)

    def _prepare_internvl(self, text, frames, past_text, region_cells, is_video) -> MLLMInputs:
        instruction = self.config.chat_template["instruction"]
        if frames is None:
            if prompts.IMG_CONTEXT in past_text:
                raise Sa2VAInputError(
                    "the conversation is about an image but none was given; pass the same image (or video) again "
                    "on every follow-up turn."
                )
            prompt = prompts.internvl_turn(text, instruction, None, past_text)
            return MLLMInputs(prompt=prompt, input_ids=self._encode(prompt))
        pixel_values, placeholder = self._internvl_visual(frames, is_video, region_cells)
        if prompts.IMAGE_TAG not in text and prompts.IMG_CONTEXT not in past_text:
            text = f"{prompts.IMAGE_TAG}\n{text}"  # the reference's demos prepend it on a first turn
        if prompts.IMAGE_TAG in text and past_text:
            raise Sa2VAInputError(
                "'<image>' in a follow-up turn: the image is already in past_text; remove '<image>' from the text."
            )
        prompt = prompts.internvl_turn(text, instruction, placeholder, past_text)
        return MLLMInputs(prompt=prompt, input_ids=self._encode(prompt), pixel_values=pixel_values,
                          region_cells=region_cells)

    def _internvl_visual(self, frames, is_video, region_cells) -> tuple[torch.Tensor, str]:
        """InternVL pixels `(num_tiles, 3, 448, 448)` and the text that replaces `<image>` (+ region sentence)."""
        if is_video:
            pixel_values = torch.cat([internvl_pixel_values(f, dynamic=False) for f in frames])
        else:
            pixel_values = internvl_pixel_values(
                frames[0],
                max_tiles=self.config.max_dynamic_tiles,
                tile_size=self.config.tile_size,
                use_thumbnail=self.config.use_thumbnail,
            )
        tokens_per_tile = self._tokens_per_tile()
        if is_video:
            placeholder = prompts.internvl_image_placeholder([tokens_per_tile] * len(frames))
        else:
            placeholder = prompts.internvl_image_placeholder([tokens_per_tile * pixel_values.shape[0]])
        if region_cells is not None:
            placeholder += prompts.region_prompt([int(n) for n in region_cells.sum(dim=1)])
        return pixel_values, placeholder

    def _qwen_batch(self, text: str, images) -> dict:
        """Run the Qwen-VL processor on one text: `<|image_pad|>` expanded per image grid, pixels, token types."""
        return self.mllm_processor(
            text=[text],
            images=images,
            return_tensors="pt",
            # the pixel budget of the reference (`min_pixels`/`max_pixels`, spelled as `size` in transformers 5)
            size={"shortest_edge": self.config.min_pixels, "longest_edge": self.config.max_pixels},
            return_mm_token_type_ids=True,
        )

    def _prepare_qwen(self, text, frames, past_text) -> MLLMInputs:
        processor = self.mllm_processor
        images = None
        if frames is not None:
            images = [qwen_fetch_resize(frame) for frame in frames]
        if past_text:
            prompt = past_text + prompts.chatml_user_turn(text.replace(prompts.IMAGE_TAG, ""))
        else:
            messages = prompts.qwen_messages(text, len(frames) if frames is not None else 0)
            prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        num_slots = prompt.count(prompts.QWEN_IMAGE_PLACEHOLDER)
        if num_slots != (len(images) if images else 0):
            raise Sa2VAInputError(
                f"the conversation has {num_slots} image slot(s) but {len(images) if images else 0} image(s) were "
                "given; pass the same image (or video) again on every follow-up turn."
            )
        batch = self._qwen_batch(prompt, images)
        extra = {k: v for k, v in batch.items() if k not in ("input_ids", "pixel_values")}
        return MLLMInputs(prompt=prompt, input_ids=batch["input_ids"][0], pixel_values=batch.get("pixel_values"),
                          extra=extra)

    # ------------------------------------------------------------------ training
    def encode_conversation(
        self,
        turns: list[tuple[str, str]],
        frames: list[Image.Image] | None,
        is_video: bool = False,
        region_cells: torch.Tensor | None = None,
    ) -> TrainingInputs:
        """Token ids and labels of a whole conversation, as the reference trains (REFERENCE_SPEC §7.4).

        Each turn is the template's instruction (no system prompt), then the answer and the template's end token
        (both in the loss), then a newline (not in the loss). The first user turn carries the visual tokens.

        Args:
            turns: `(user, assistant)` pairs.
            frames: the image (one frame) or the video frames, or `None`.
            is_video: frames are video frames (untiled for InternVL).
            region_cells: `(num_regions, 256)` visual-prompt cells (InternVL).

        Returns:
            Ids `(seq,)`, labels `(seq,)` with -100 outside answers, and the visual inputs.
        """
        suffix = self.answer_suffix
        pieces: list[tuple[str, bool]] = []
        pixel_values, extra = None, {}
        for index, (user, answer) in enumerate(turns):
            if self.config.is_internvl:
                image_text = None
                if index == 0 and frames is not None:
                    if prompts.IMAGE_TAG not in user:
                        user = f"{prompts.IMAGE_TAG}\n{user}"
                    pixel_values, image_text = self._internvl_visual(frames, is_video, region_cells)
                prompt = prompts.internvl_turn(user, self.config.chat_template["instruction"], image_text)
            else:
                visual = prompts.QWEN_IMAGE_PLACEHOLDER * len(frames) if index == 0 and frames is not None else ""
                prompt = prompts.chatml_user_turn(visual + user.replace(prompts.IMAGE_TAG, ""))
            pieces += [(prompt, False), (answer + suffix, True), ("\n", False)]
        ids: list[int] = []
        labels: list[int] = []
        token_types: list[int] = []
        for index, (text, in_loss) in enumerate(pieces):
            types = None
            if index == 0 and not self.config.is_internvl and frames is not None:
                batch = self._qwen_batch(text, [qwen_fetch_resize(frame) for frame in frames])
                piece_ids = batch["input_ids"][0].tolist()
                types = batch["mm_token_type_ids"][0].tolist()
                pixel_values = batch["pixel_values"]
                extra = {"image_grid_thw": batch["image_grid_thw"]}
            else:
                # BOS (InternLM2-style tokenizers) only at the very start, as the reference's per-piece encoding
                piece_ids = self.tokenizer.encode(text, add_special_tokens=index == 0)
            ids += piece_ids
            labels += piece_ids if in_loss else [-100] * len(piece_ids)
            token_types += types if types is not None else [0] * len(piece_ids)
        return TrainingInputs(
            input_ids=torch.tensor(ids),
            labels=torch.tensor(labels),
            pixel_values=pixel_values,
            mm_token_type_ids=torch.tensor(token_types),
            extra=extra,
            region_cells=region_cells,
        )

    def _tokens_per_tile(self) -> int:
        vision = self.config.mllm_config.vision_config
        patch = vision.patch_size[0] if isinstance(vision.patch_size, (list, tuple)) else vision.patch_size
        grid = int(self.config.tile_size // patch * self.config.mllm_config.downsample_ratio)
        return grid * grid

    @property
    def region_grid(self) -> int:
        """Cells per side of one tile's feature grid (16 for InternVL at 448 px)."""
        return int(self._tokens_per_tile() ** 0.5)

    def _encode(self, prompt: str) -> torch.Tensor:
        # default add_special_tokens=True: BOS for InternLM2/Llama tokenizers, nothing for Qwen2 ones (as the reference)
        return torch.tensor(self.tokenizer.encode(prompt), dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> str:
        """Answer text with special tokens kept, up to and including the first stop token, stripped."""
        ids = ids.tolist()
        stops = set(self.stop_token_ids)
        end = next((i + 1 for i, t in enumerate(ids) if t in stops), len(ids))
        return self.tokenizer.decode(ids[:end], skip_special_tokens=False).strip()


def _load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer without running its code.

    InternLM2-based checkpoints (Sa2VA-8B/26B) name a remote-code tokenizer class; its vocabulary and added tokens
    are plain files, which transformers' own classes read: `tokenizer.json` when present, else the SentencePiece
    `tokenizer.model` through the Llama tokenizer (InternLM2's tokenizer is a Llama-style SentencePiece BPE).
    """
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as error:
        if (path / "tokenizer.json").exists():
            tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
        elif (path / "tokenizer.model").exists():
            from transformers import LlamaTokenizer

            tokenizer = LlamaTokenizer.from_pretrained(path)
        else:
            raise error
        logger.info("loaded %s with %s instead of its remote-code tokenizer class", path, type(tokenizer).__name__)
        return tokenizer


__all__ = ["Sa2VAProcessor", "MLLMInputs", "TrainingInputs"]
