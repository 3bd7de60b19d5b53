"""The fixed question / answer sentences of Sa2VA's training data, and the small text rules around them.

The sentence lists are the reference's (``projects/sa2va/datasets/common.py``), word for word, duplicates and the odd
``"mask?"`` included: the released checkpoints were trained on exactly these prompts (REFERENCE_SPEC §7.4, §3, §4).

Every random choice takes a ``numpy.random.Generator`` so that a dataset item is reproducible from ``(seed, index)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sa2va.data.sample import Turn

IMAGE_PREFIX = "<image>\n"  # starts the first user turn of every image / video sample

# Referring segmentation questions; `{class_name}` is the referring expression. 16 entries: the reference lists the
# first 4 and the last 4 twice (the second copy of the first block ends two questions with "mask?").
SEG_QUESTIONS: tuple[str, ...] = (
    "Can you segment the {class_name} in this image?",
    "Please segment {class_name} in this image.",
    "What is {class_name} in this image? Please respond with segmentation mask.",
    "What is {class_name} in this image? Please output segmentation mask.",
    "Can you segment the {class_name} in this image?",
    "Please segment {class_name} in this image.",
    "What is {class_name} in this image? Please respond with segmentation mask?",
    "What is {class_name} in this image? Please output segmentation mask?",
    "Could you provide a segmentation mask for the {class_name} in this image?",
    "Please identify and segment the {class_name} in this image.",
    "Where is the {class_name} in this picture? Please respond with a segmentation mask.",
    "Can you highlight the {class_name} in this image with a segmentation mask?",
    "Could you provide a segmentation mask for the {class_name} in this image?",
    "Please identify and segment the {class_name} in this image.",
    "Where is the {class_name} in this picture? Please respond with a segmentation mask.",
    "Can you highlight the {class_name} in this image with a segmentation mask?",
)

# Answers of a referring turn: exactly one `[SEG]` each.
ANSWER_LIST: tuple[str, ...] = (
    "It is [SEG].",
    "Sure, [SEG].",
    "Sure, it is [SEG].",
    "Sure, the segmentation result is [SEG].",
    "[SEG].",
)

# Grounded conversation generation (GCG) questions.
GCG_QUESTIONS: tuple[str, ...] = (
    "Could you please give me a detailed description of the image? Please respond with interleaved segmentation "
    "masks for the corresponding parts of the answer.",
    "Can you provide a thorough description of this image? Please output with interleaved segmentation masks for "
    "the corresponding phrases.",
    "Please describe in detail the contents of the image. Please respond with interleaved segmentation masks for the "
    "corresponding parts of the answer.",
    "Could you give a comprehensive explanation of what can be found within this picture? Please output with "
    "interleaved segmentation masks for the corresponding phrases.",
    "Could you give me an elaborate explanation of this picture? Please respond with interleaved segmentation masks "
    "for the corresponding phrases.",
    "Could you provide me with a detailed analysis of this photo? Please output with interleaved segmentation masks "
    "for the corresponding parts of the answer.",
)

# Region description questions (Osprey); `<region>` becomes "region{i}".
VP_QUESTIONS: tuple[str, ...] = (
    "Can you provide me with a detailed description of the region in the picture marked by <region>?",
    "I'm curious about the region represented by <region> in the picture. Could you describe it in detail?",
    "What can you tell me about the region indicated by <region> in the image?",
    "What details can you give me about the region outlined by <region> in the photo?",
    "Please provide me with a comprehensive description of the region marked with <region> in the image.",
    "Can you give me a detailed account of the region labeled as <region> in the picture?",
    "I'm interested in learning more about the region represented by <region> in the photo. Can you describe it in "
    "detail?",
    "What is the region outlined by <region> in the picture like? Could you give me a detailed description?",
    "Please describe the region <region> in the image in detail.",
    "Can you offer a thorough analysis of the region <region> in the image?",
    "Could you elaborate on the region highlighted by <region> in the picture provided?",
    "Please share more information about the zone emphasized with <region> in the photo.",
    "What insights can you give about the area denoted by <region> in the image presented?",
    "Can you share a comprehensive rundown of the region denoted by <region> in the presented image?",
    "I'd like to know more about the region highlighted by <region> in the picture provided.",
    "Work through the important details of the area <region> in the image.",
    "Illustrate the area represented by <region> through a descriptive explanation.",
    "Examine the region <region> closely and share its details.",
)

# Osprey "short" answers get this appended to every question (the reference's `LIMIT`).
SHORT_ANSWER_LIMIT = " Answer the question using a single word or phrase."


def choose(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One entry of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


def clean_refcoco_phrase(sentence: str) -> str:
    """RefCOCO sentence rule: lowercase, and drop one trailing full stop."""
    phrase = sentence.lower()
    return phrase[:-1] if phrase.endswith(".") else phrase


def refvos_question(expression: str, rng: np.random.Generator) -> str:
    """RefVOS rule: an expression containing `?` is asked verbatim; otherwise every `.` is removed, the result
    stripped, lowercased and put into a random `SEG_QUESTIONS` template (no template is drawn for a question)."""
    if "?" in expression:
        return expression
    phrase = expression.replace(".", "").strip().lower()
    return choose(rng, SEG_QUESTIONS).format(class_name=phrase)


def seg_question(phrase: str, rng: np.random.Generator) -> str:
    """A random referring question about `phrase` (used as is: callers clean it first)."""
    return choose(rng, SEG_QUESTIONS).format(class_name=phrase)


def referring_turn(question: str, rng: np.random.Generator, first: bool) -> Turn:
    """One referring turn: `question` (prefixed with `"<image>\\n"` when `first`) and a random one-`[SEG]` answer."""
    return Turn(user=(IMAGE_PREFIX if first else "") + question, assistant=choose(rng, ANSWER_LIST))


def referring_turns(phrases: Sequence[str], rng: np.random.Generator) -> list[Turn]:
    """A referring dialogue, one turn per phrase: for each phrase a template then an answer are drawn, in order.

    Args:
        phrases: cleaned referring expressions, one per `[SEG]`.
        rng: the item's generator.

    Returns:
        `len(phrases)` turns; the first user text starts with `"<image>\\n"`.
    """
    turns = []
    for i, phrase in enumerate(phrases):
        question = seg_question(phrase, rng)
        turns.append(referring_turn(question, rng, first=i == 0))
    return turns


def gcg_question(rng: np.random.Generator) -> str:
    """The user text of a GCG sample: `"<image>\\n"` and a random `GCG_QUESTIONS` entry."""
    return IMAGE_PREFIX + choose(rng, GCG_QUESTIONS).strip()


def tag_caption(caption: str, spans: Sequence[tuple[int, int]]) -> str:
    """Wrap each grounded span of a caption as `"<p> span </p> [SEG]"` (REFERENCE_SPEC §4).

    Spans are inserted right to left so earlier character offsets stay valid. With spans ordered by start (as the
    masks are), the `[SEG]` order is the span order; spans sharing a start are inserted so that the first listed one
    comes first in the text too.

    Args:
        caption: the caption.
        spans: `(start, end)` character offsets into `caption`, sorted by start.

    Returns:
        The tagged caption, with `len(spans)` `[SEG]`s.
    """
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], i), reverse=True)
    for i in order:
        start, end = spans[i]
        caption = f"{caption[:start]}<p> {caption[start:end]} </p> [SEG]{caption[end:]}"
    return caption


def vp_question(region_index: int, rng: np.random.Generator) -> str:
    """A random `VP_QUESTIONS` entry about `region{region_index}` (1-based)."""
    return choose(rng, VP_QUESTIONS).strip().replace("<region>", f"region{region_index}")


__all__ = [
    "IMAGE_PREFIX",
    "SEG_QUESTIONS",
    "ANSWER_LIST",
    "GCG_QUESTIONS",
    "VP_QUESTIONS",
    "SHORT_ANSWER_LIMIT",
    "choose",
    "clean_refcoco_phrase",
    "refvos_question",
    "seg_question",
    "referring_turn",
    "referring_turns",
    "gcg_question",
    "tag_caption",
    "vp_question",
]
