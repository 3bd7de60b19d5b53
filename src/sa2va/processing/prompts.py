"""Prompt text of one turn: `<image>` expansion, region (visual-prompt) tokens, chat templates and `past_text`.

Strings follow the reference exactly (REFERENCE_SPEC §1.3, §3, §5.2); nothing here touches tensors.
"""

from __future__ import annotations

IMAGE_TAG = "<image>"
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
VP_START, VP_END = "<vp>", "</vp>"
SEG_TOKEN = "[SEG]"
PHRASE_START, PHRASE_END = "<p>", "</p>"
# Added to the tokenizer by Sa2VA, in this order (so they get consecutive ids after the base vocabulary).
SA2VA_TOKENS = (SEG_TOKEN, PHRASE_START, PHRASE_END, VP_START, VP_END)

# What the Qwen-VL chat templates render for one image; the processor expands `<|image_pad|>` per image grid.
QWEN_IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def internvl_image_placeholder(tokens_per_frame: list[int]) -> str:
    """`<img><IMG_CONTEXT>×n</img>` per frame, frames separated by a newline, no trailing newline.

    Args:
        tokens_per_frame: visual tokens of each frame (`256 × num_tiles` for an image, 256 per video key frame).
    """
    return "".join(f"{IMG_START}{IMG_CONTEXT * n}{IMG_END}\n" for n in tokens_per_frame).strip()


def region_prompt(tokens_per_region: list[int]) -> str:
    """The visual-prompt sentence placed right after the image placeholder (REFERENCE_SPEC §3 step 4).

    Args:
        tokens_per_region: number of selected 16×16 grid cells of each region, in region order.
    """
    parts = [f"region{i + 1}{VP_START}{IMG_CONTEXT * n}{VP_END}" for i, n in enumerate(tokens_per_region)]
    return f"\nThere are {len(parts)} part regions in the picture: " + ", ".join(parts) + ".\n"


def internvl_turn(text: str, instruction: str, image_text: str | None, past_text: str = "") -> str:
    """One InternVL turn: `past_text + INSTRUCTION.format(input=text with <image> expanded)`.

    Args:
        text: the user text; `<image>` marks where the visual tokens go.
        instruction: the template's instruction string with an `{input}` field.
        image_text: placeholder (+ region sentence) replacing `<image>`, or `None` for a text-only turn, where
            `<image>` is dropped.
        past_text: the previous turns, verbatim.
    """
    text = text.replace(IMAGE_TAG, image_text if image_text is not None else "")
    return past_text + instruction.format(input=text)


def chatml_user_turn(text: str) -> str:
    """A follow-up user turn in ChatML, the format every Qwen-VL chat template renders for plain text."""
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def qwen_messages(text: str, num_images: int) -> list[dict]:
    """One user message: `num_images` image items first, then the text with `<image>` removed (as the reference)."""
    content: list[dict] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": text.replace(IMAGE_TAG, "")})
    return [{"role": "user", "content": content}]


def next_past_text(prompt: str, answer: str, suffix: str) -> str:
    """The conversation so far, to prefix the next turn: prompt, answer (closed with the template suffix), newline."""
    answer = answer if answer.endswith(suffix) else answer + suffix
    return f"{prompt}{answer}\n"


__all__ = [
    "IMAGE_TAG",
    "IMG_START",
    "IMG_END",
    "IMG_CONTEXT",
    "VP_START",
    "VP_END",
    "SEG_TOKEN",
    "PHRASE_START",
    "PHRASE_END",
    "SA2VA_TOKENS",
    "QWEN_IMAGE_PLACEHOLDER",
    "internvl_image_placeholder",
    "region_prompt",
    "internvl_turn",
    "chatml_user_turn",
    "qwen_messages",
    "next_past_text",
]
