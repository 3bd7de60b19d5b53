"""Offline building blocks for tiny Sa2VA models: tokenizers, processors and configs (private).

Nothing here downloads anything. Every object is built from code so tests, docs and benchmarks run without the Hub:

* :func:`build_tokenizer` trains a small byte-level BPE on a built-in English corpus and adds the special tokens each
  MLLM family ships with, then the five Sa2VA tokens last, in the reference order (REFERENCE_SPEC §1.5).
* :func:`build_processor` wraps that tokenizer in the stock Qwen2.5-VL / Qwen3-VL processor built from defaults.
* :func:`tiny_mllm_config`, :func:`tiny_sam2_config` and :func:`sam2_hiera_large_config` return transformers configs
  with random-init-friendly tiny sizes (or the real SAM2 v1 hiera-L numbers).

The public face of this module is ``sa2va.testing``; import from there.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    InternVLConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2Config,
    Qwen3VLConfig,
    Sam2VideoConfig,
)

from sa2va.configuration import sam2_config_from_original
from sa2va.errors import Sa2VAConfigError

FAMILIES: tuple[str, ...] = ("qwen2_5_vl", "qwen3_vl", "internvl", "internvl_llama")
"""Family names understood by every builder in this module."""

QWEN_FAMILIES: tuple[str, ...] = ("qwen2_5_vl", "qwen3_vl")
INTERNVL_FAMILIES: tuple[str, ...] = ("internvl", "internvl_llama")

SA2VA_SPECIAL_TOKENS: tuple[str, ...] = ("[SEG]", "<p>", "</p>", "<vp>", "</vp>")
"""Sa2VA's own tokens, in the order the reference adds them (so ``[SEG]`` gets the lowest of the five top ids)."""

CHATML_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN_VISION_TOKENS: tuple[str, ...] = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
INTERNVL_IMAGE_TOKENS: tuple[str, ...] = ("<img>", "</img>", "<IMG_CONTEXT>")
LLAMA_BOS, LLAMA_EOS = "<s>", "</s>"

# Size of the trained BPE vocabulary: 256 byte symbols plus ~250 merges. Small enough that the whole vocabulary
# (with every special token) stays below 1024 rows, so tiny models spend their parameters on layers, not embeddings.
_BPE_VOCAB_SIZE = 512

# Qwen2's pre-tokenisation regex: contractions, letter runs with one leading non-letter, single digits (so numbers
# are spelled digit by digit), punctuation runs and whitespace. Splitting before byte-level mapping keeps merges
# inside words, like the real Qwen tokenizer.
_QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# How both Qwen-VL templates render a list of content items: images and videos as vision placeholders, then text.
_QWEN_CONTENT_ITEMS = (
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
)

# ChatML with Qwen2.5-VL's stock behaviour: a default system turn when the conversation has none, images and videos
# rendered as vision-start/pad/end triples (optionally numbered with add_vision_id), generation prompt on request.
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    + _QWEN_CONTENT_ITEMS
    + "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL's stock template differs in one way that matters here: no default system turn (a system message is
# rendered only when the caller supplies one). Tool calls and reasoning blocks of the real template are left out.
QWEN3_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    + _QWEN_CONTENT_ITEMS
    + "{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _check_family(family: str) -> None:
    """Raise a typed error naming the known families when ``family`` is not one of them."""
    if family not in FAMILIES:
        raise Sa2VAConfigError(f"Unknown MLLM family {family!r}; expected one of {', '.join(FAMILIES)}.")


# ----------------------------------------------------------------------------------------------------------------
# Corpus and tokenizer
# ----------------------------------------------------------------------------------------------------------------

_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black", "gray", "pink", "brown", "cyan")
_SHAPES = ("circle", "square", "triangle", "rectangle", "star", "ellipse", "cube", "disk", "ring", "cross")
_SIZES = ("small", "large", "tiny", "big", "medium")
_PLACES = (
    "on the left",
    "on the right",
    "at the top",
    "at the bottom",
    "in the center",
    "in the top left corner",
    "in the bottom right corner",
    "next to the circle",
    "below the square",
    "above the triangle",
)
_SEG_QUESTIONS = (
    "Please segment the {obj}.",
    "Please segment the {obj} in this image.",
    "Can you segment the {obj} in this image?",
    "Could you segment the {obj}?",
    "Where is the {obj}? Please respond with a segmentation mask.",
    "What is the {obj} in this image? Please output segmentation mask.",
)
_ANSWERS = ("It is [SEG].", "Sure, [SEG].", "Sure, it is [SEG].", "Sure, the segmentation result is [SEG].", "[SEG].")
_FIXED_SENTENCES = (
    "Could you please give me a brief description of the image?",
    (
        "Could you please give me a brief description of the image? Please respond with interleaved segmentation masks "
        "for the corresponding parts of the answer."
    ),
    "Please describe the image in detail.",
    "What can you see in this picture?",
    "How many shapes are there in the image?",
    "There are 3 shapes in the image.",
    "The image shows <p> a red circle </p> [SEG] next to <p> a blue square </p> [SEG].",
    "There are 2 part regions in the picture: region1<vp></vp>, region2<vp></vp>.",
    "Can you describe region1 in detail?",
    "What is the colour of region2?",
    "What is the relationship between region1 and region2?",
    "region1 is a green triangle and region2 is a yellow star.",
    "Please segment the man in red in this image.",
    "The background is white, and nothing else is visible.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 16 32 64 128 256 448 512 1024 2048.",
    "Coordinates (12, 34) and [56, 78]; the box is {0.25, 0.75}.",
    "Punctuation: . , ; : ! ? ' \" ( ) [ ] { } < > / \\ | - _ + = * & ^ % $ # @ ~ `",
    "Yes.",
    "No.",
    "I don't know, but it's probably a circle.",
    "The object you're looking for isn't in the image.",
    "Describe the video.",
    "Please segment the object that moves to the left in the video.",
    "The ball rolls from the left to the right, then it stops.",
    "Thank you! You are a helpful assistant.",
    "user\nassistant\nsystem\n",
)


def training_corpus() -> list[str]:
    """Return the built-in English corpus the tiny BPE tokenizers are trained on.

    A few hundred sentences over shapes, colours, positions, Sa2VA's segmentation questions and answers, GCG captions,
    region (visual-prompt) questions, digits and punctuation. The list is built without randomness so every call
    returns the same sentences in the same order, which keeps the trained vocabulary reproducible.

    Returns:
        The corpus sentences, in a fixed order.
    """
    sentences: list[str] = list(_FIXED_SENTENCES)
    objects = [f"{colour} {shape}" for colour, shape in itertools.product(_COLOURS, _SHAPES)]  # 120 objects
    for index, obj in enumerate(objects):
        # Rotate through questions, answers, sizes and places by index so the corpus covers every template
        # without the full cross product (which would bias merges towards these few words even more).
        question = _SEG_QUESTIONS[index % len(_SEG_QUESTIONS)].format(obj=obj)
        answer = _ANSWERS[index % len(_ANSWERS)]
        size = _SIZES[index % len(_SIZES)]
        place = _PLACES[index % len(_PLACES)]
        sentences.append(question)
        sentences.append(answer)
        sentences.append(f"The {size} {obj} is {place}.")
    for count, shape in zip(range(1, 13), itertools.cycle(_SHAPES)):
        sentences.append(f"There are {count} {shape}s in the image, and {count * 2} of them are small.")
    return sentences


def _iter_corpus(batch: int = 64) -> Iterator[list[str]]:
    """Yield the corpus in batches, the input format ``Tokenizer.train_from_iterator`` expects."""
    corpus = training_corpus()
    for start in range(0, len(corpus), batch):
        yield corpus[start : start + batch]


def _train_bpe() -> Tokenizer:
    """Train the byte-level BPE shared by all families (deterministic for a fixed corpus)."""
    tokenizer = Tokenizer(models.BPE())
    # No normalizer: the real Qwen tokenizer applies NFC, but skipping it makes decode(encode(text)) == text for
    # every string, which is what tests need.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        # All 256 byte symbols are in the base vocabulary, so any text (any language, emoji) can be encoded.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tokenizer.train_from_iterator(_iter_corpus(), trainer=trainer)
    return tokenizer


def build_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """Build a tiny, fully offline tokenizer with the special tokens of one MLLM family.

    The vocabulary is a 512-entry byte-level BPE trained on :func:`training_corpus`, followed by the family's
    special tokens and, last, the Sa2VA tokens ``[SEG]``, ``<p>``, ``</p>``, ``<vp>``, ``</vp>`` (highest ids, in
    that order, as the reference adds them). ``len(tokenizer)`` is below 1024 for every family.

    Special tokens per family (all added as special, so they are never split):

    * ``qwen2_5_vl`` / ``qwen3_vl``: ``<|endoftext|>`` (pad), ``<|im_start|>``, ``<|im_end|>`` (eos),
      ``<|vision_start|>``, ``<|vision_end|>``, ``<|vision_pad|>``, ``<|image_pad|>``, ``<|video_pad|>``; a chat
      template equivalent to the stock one (Qwen2.5-VL adds a default system turn, Qwen3-VL does not).
    * ``internvl`` (Qwen2 LLM): ChatML tokens (eos ``<|im_end|>``, pad ``<|endoftext|>``), ``<img>``, ``</img>``,
      ``<IMG_CONTEXT>``. No BOS, no chat template (Sa2VA formats InternVL prompts itself).
    * ``internvl_llama`` (stands for InternLM2/Llama LLMs): ``<s>`` (bos, prepended by ``encode`` by default like
      InternLM2's tokenizer), ``</s>`` (eos, as InternLM2-chat), ChatML tokens (``<|im_end|>`` is the stop word),
      pad ``<|endoftext|>``, and the InternVL image tokens.

    Args:
        family: One of ``"qwen2_5_vl"``, ``"qwen3_vl"``, ``"internvl"``, ``"internvl_llama"``.

    Returns:
        A ``PreTrainedTokenizerFast`` that round-trips any text exactly through encode/decode.

    Raises:
        Sa2VAConfigError: If ``family`` is unknown.
    """
    _check_family(family)
    backend = _train_bpe()

    family_tokens: list[str] = []
    if family == "internvl_llama":
        family_tokens += [LLAMA_BOS, LLAMA_EOS]
    family_tokens += list(CHATML_TOKENS)
    family_tokens += list(QWEN_VISION_TOKENS if family in QWEN_FAMILIES else INTERNVL_IMAGE_TOKENS)

    special_kwargs: dict[str, object] = {"pad_token": "<|endoftext|>"}
    if family == "internvl_llama":
        special_kwargs.update(bos_token=LLAMA_BOS, eos_token=LLAMA_EOS, add_bos_token=True, add_eos_token=False)
    else:
        special_kwargs.update(eos_token="<|im_end|>", add_bos_token=False, add_eos_token=False)

    # Adding the family tokens to the backend before wrapping fixes their ids right after the BPE vocabulary,
    # in the listed order (the order the real vocabularies use for the ChatML and vision tokens).
    backend.add_special_tokens(family_tokens)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=32768,
        padding_side="right",
        clean_up_tokenization_spaces=False,
        # Listed as extra special tokens (v4: additional_special_tokens) like the real checkpoints do, so
        # skip_special_tokens drops them and they survive save_pretrained / from_pretrained.
        extra_special_tokens=[t for t in family_tokens if t not in (LLAMA_BOS, LLAMA_EOS, "<|endoftext|>")],
        **special_kwargs,
    )
    # As the reference: add_tokens(..., special_tokens=True), after everything else, so these get the top ids.
    tokenizer.add_tokens(list(SA2VA_SPECIAL_TOKENS), special_tokens=True)
    if family == "qwen2_5_vl":
        tokenizer.chat_template = QWEN2_5_VL_CHAT_TEMPLATE
    elif family == "qwen3_vl":
        tokenizer.chat_template = QWEN3_VL_CHAT_TEMPLATE
    return tokenizer


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Return the token → id map of every added (special) token of ``tokenizer``.

    This is the ``special_ids`` argument :func:`tiny_mllm_config` expects.

    Args:
        tokenizer: A tokenizer from :func:`build_tokenizer` (or any tokenizer with added tokens).

    Returns:
        ``{token: id}`` for all added tokens, e.g. ``{"<|image_pad|>": 520, "[SEG]": 525, ...}``.
    """
    return dict(tokenizer.get_added_vocab())


# ----------------------------------------------------------------------------------------------------------------
# Processors
# ----------------------------------------------------------------------------------------------------------------


def build_processor(family: str, tokenizer: PreTrainedTokenizerFast) -> ProcessorMixin | None:
    """Build the stock HF processor of a Qwen family around ``tokenizer``, from defaults (no downloads).

    * ``qwen2_5_vl``: ``Qwen2_5_VLProcessor`` with ``Qwen2VLImageProcessor`` (patch 14, merge 2, temporal patch 2,
      CLIP mean/std) and ``Qwen2VLVideoProcessor`` (the processor refuses to build without a video processor).
    * ``qwen3_vl``: ``Qwen3VLProcessor`` with ``Qwen2VLImageProcessor`` (patch 16, merge 2, mean/std 0.5, as the
      Qwen3-VL checkpoints configure it) and ``Qwen3VLVideoProcessor``.
    * InternVL families: ``None``; Sa2VA tiles InternVL images with its own code.

    Call it like the reference does, e.g.
    ``processor(text=[prompt], images=[pil], return_tensors="pt", size={"shortest_edge": lo, "longest_edge": hi},
    return_mm_token_type_ids=True)``; ``min_pixels=``/``max_pixels=`` still work but emit a FutureWarning.

    Args:
        family: One of :data:`FAMILIES`.
        tokenizer: The tokenizer from :func:`build_tokenizer` for the same family.

    Returns:
        The processor, or ``None`` for InternVL families.

    Raises:
        Sa2VAConfigError: If ``family`` is unknown.
    """
    _check_family(family)
    if family in INTERNVL_FAMILIES:
        return None

    # Imported here: the image/video processors pull in torchvision, which InternVL-only users never need.
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    if family == "qwen2_5_vl":
        # Numbers of Qwen2.5-VL's preprocessor_config.json: min 4 * 28², max 16384 * 28² pixels.
        image_processor = Qwen2VLImageProcessor(
            patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=3136, max_pixels=12845056
        )
        video_processor = Qwen2VLVideoProcessor(patch_size=14, merge_size=2, temporal_patch_size=2)
        return Qwen2_5_VLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
        )
    # Numbers of Qwen3-VL's preprocessor_config.json: 16-px patches, mean/std 0.5, 64 * 32² .. 16384 * 32² pixels.
    image_processor = Qwen2VLImageProcessor(
        patch_size=16,
        merge_size=2,
        temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        size={"shortest_edge": 65536, "longest_edge": 16777216},
    )
    video_processor = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2)
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN3_VL_CHAT_TEMPLATE,
    )


# ----------------------------------------------------------------------------------------------------------------
# Tiny MLLM configs
# ----------------------------------------------------------------------------------------------------------------

# Text sizes shared by all families: head_dim = 64 / 4 = 16, so M-RoPE sections must sum to 8.
_TEXT_SIZES: dict[str, int] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}


def _require_ids(special_ids: Mapping[str, int], tokens: tuple[str, ...], family: str) -> dict[str, int]:
    """Pick ``tokens`` out of ``special_ids``, raising a typed error that names every missing token."""
    missing = [token for token in tokens if token not in special_ids]
    if missing:
        raise Sa2VAConfigError(
            f"special_ids lacks {missing} needed by family {family!r}; pass special_token_ids(build_tokenizer("
            f"{family!r})) or any map that contains these tokens."
        )
    return {token: int(special_ids[token]) for token in tokens}


def tiny_mllm_config(
    family: str,
    vocab_size: int,
    special_ids: Mapping[str, int],
    text_sizes: Mapping[str, int] | None = None,
    vision_sizes: Mapping[str, int] | None = None,
) -> PretrainedConfig:
    """Return a tiny random-init config for one MLLM family.

    Text model: hidden 64, intermediate 128, 2 layers, 4 heads, 2 KV heads (head_dim 16). Vision towers: hidden 32,
    1-2 layers. ``tie_word_embeddings=False`` everywhere, since Sa2VA exports an untied ``lm_head``.

    * ``qwen2_5_vl``: ``Qwen2_5_VLConfig``; vision patch 14, merge 2, window 112 px, M-RoPE sections ``[2, 3, 3]``.
    * ``qwen3_vl``: ``Qwen3VLConfig``; vision patch 16, merge 2, deepstack at vision layer 0, interleaved M-RoPE
      ``[4, 2, 2]``, explicit ``head_dim`` 16.
    * ``internvl`` / ``internvl_llama``: ``InternVLConfig`` with a ``Qwen2Config`` / ``LlamaConfig`` text model. The
      vision tower keeps the real geometry (448 px tiles, 14 px patches, pixel shuffle 0.5) so one tile still gives
      256 ``<IMG_CONTEXT>`` tokens.

    Args:
        family: One of :data:`FAMILIES`.
        vocab_size: Rows of the embedding / ``lm_head``; normally ``len(tokenizer)``.
        special_ids: Token → id map (see :func:`special_token_ids`).
        text_sizes: Qwen families: overrides of the text sizes (``hidden_size``, ``intermediate_size``,
            ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``) and ``rope_theta``; the M-RoPE
            sections follow the head size.
        vision_sizes: Qwen families: overrides of the vision tower (``depth``, ``hidden_size``,
            ``intermediate_size``, ``num_heads``). Needs ``<|im_end|>``, ``<|endoftext|>`` and, for
            Qwen, ``<|image_pad|>``, ``<|video_pad|>``, ``<|vision_start|>``, ``<|vision_end|>``; for InternVL
            ``<IMG_CONTEXT>``; for ``internvl_llama`` also ``<s>`` and ``</s>``.

    Returns:
        A ``Qwen2_5_VLConfig``, ``Qwen3VLConfig`` or ``InternVLConfig``.

    Raises:
        Sa2VAConfigError: If ``family`` is unknown, ``vocab_size`` is not positive or a needed id is missing.
    """
    _check_family(family)
    if vocab_size <= 0:
        raise Sa2VAConfigError(f"vocab_size must be a positive int (len(tokenizer)); got {vocab_size}.")

    text_sizes, vision_sizes = dict(text_sizes or {}), dict(vision_sizes or {})
    if (text_sizes or vision_sizes) and family not in QWEN_FAMILIES:
        raise Sa2VAConfigError(f"size overrides are implemented for the Qwen families only, not {family!r}.")
    sizes = {**_TEXT_SIZES, **text_sizes}
    # the real checkpoints' values unless the text options set one
    rope_theta = sizes.pop("rope_theta", {"qwen2_5_vl": 1000000.0, "qwen3_vl": 5000000.0}.get(family))
    head_dim = sizes["hidden_size"] // sizes["num_attention_heads"]
    if family in QWEN_FAMILIES:
        ids = _require_ids(
            special_ids,
            ("<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"),
            family,
        )
        text_common = dict(
            sizes,
            vocab_size=vocab_size,
            # Qwen's own configs use <|endoftext|> as bos and <|im_end|> as eos.
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
            tie_word_embeddings=False,
        )
        token_ids = {
            "image_token_id": ids["<|image_pad|>"],
            "video_token_id": ids["<|video_pad|>"],
            "vision_start_token_id": ids["<|vision_start|>"],
            "vision_end_token_id": ids["<|vision_end|>"],
        }
        if family == "qwen2_5_vl":
            text_config = dict(
                text_common,
                # the real model's split of a 128 head: [16, 24, 24] (temporal, height, width) pairs
                rope_parameters={
                    "rope_type": "default",
                    "rope_theta": rope_theta,
                    "mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16],
                },
            )
            vision_config = {
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_heads": 2,
                "patch_size": 14,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
                # 112 px windows = 4x4 merged tokens, as in the real model; layer 1 attends globally.
                "window_size": 112,
                "fullatt_block_indexes": [1],
                "out_hidden_size": sizes["hidden_size"],
                **vision_sizes,
            }
            return Qwen2_5_VLConfig(
                text_config=text_config, vision_config=vision_config, tie_word_embeddings=False, **token_ids
            )
        text_config = dict(
            text_common,
            head_dim=head_dim,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": rope_theta,
                "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8],
                "mrope_interleaved": True,
            },
        )
        vision_config = {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": sizes["hidden_size"],
            # A 16x16 learned grid, bilinearly resampled to each image's patch grid (the real model has 48x48).
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
            **vision_sizes,
        }
        return Qwen3VLConfig(
            text_config=text_config, vision_config=vision_config, tie_word_embeddings=False, **token_ids
        )

    # InternVL families.
    if family == "internvl":
        ids = _require_ids(special_ids, ("<|endoftext|>", "<|im_end|>", "<IMG_CONTEXT>"), family)
        text_config: PretrainedConfig = Qwen2Config(
            **_TEXT_SIZES,
            vocab_size=vocab_size,
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
            tie_word_embeddings=False,
        )
    else:
        ids = _require_ids(special_ids, ("<s>", "</s>", "<|endoftext|>", "<IMG_CONTEXT>"), family)
        text_config = LlamaConfig(
            **_TEXT_SIZES,
            vocab_size=vocab_size,
            bos_token_id=ids["<s>"],
            eos_token_id=ids["</s>"],
            pad_token_id=ids["<|endoftext|>"],
            tie_word_embeddings=False,
        )
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        # Real InternVL geometry: 448 px / 14 px = 32x32 patches, pixel shuffle 0.5 -> 16x16 = 256 tokens per tile.
        "image_size": [448, 448],
        "patch_size": [14, 14],
        "use_absolute_position_embeddings": True,
        "use_qk_norm": False,
        "attention_bias": True,
        "norm_type": "layer_norm",
    }
    return InternVLConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=256,
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )


# ----------------------------------------------------------------------------------------------------------------
# SAM2 configs
# ----------------------------------------------------------------------------------------------------------------


# The tiny SAM2 in original SAM2 parameter names, so official-layout fixtures can be loaded with a `sam2_config`
# dict exactly as a user would load a community checkpoint with another SAM2 size.
TINY_SAM2_PARAMS: dict[str, object] = {
    "embed_dim": 16,
    "num_heads": 1,
    "stages": [1, 1, 2, 1],
    "global_att_blocks": [3],  # the last block of stage 3 attends globally, like the real trunks' late blocks
    "window_spec": [8, 4, 8, 4],
    "window_pos_embed_bkg_spatial_size": [7, 7],
}


def tiny_sam2_config(image_size: int = 256) -> Sam2VideoConfig:
    """Return a tiny random-init SAM2 (v1 flags, with memory modules) config for ``image_size`` x ``image_size`` inputs.

    The Hiera trunk is shrunk (embed dims 16/32/64/128, 5 blocks), but the couplings of the real model hold:
    ``backbone_channel_list`` is the reversed stage dims, the FPN levels are S/4, S/8, S/16, the prompt encoder sees
    ``image_size`` and FPN, prompt encoder and mask decoder all stay 256-d so the Sa2VA language prompt is 256-d.

    Args:
        image_size: Input side S in pixels; a positive multiple of 32 (the Hiera trunk downsamples 32x).

    Returns:
        A ``Sam2VideoConfig`` built by ``sa2va.configuration.sam2_config_from_original(TINY_SAM2_PARAMS)``.

    Raises:
        Sa2VAConfigError: If ``image_size`` is not a positive multiple of 32.
    """
    if image_size <= 0 or image_size % 32 != 0:
        raise Sa2VAConfigError(f"image_size must be a positive multiple of 32 (e.g. 256, 512, 1024); got {image_size}.")
    return sam2_config_from_original(TINY_SAM2_PARAMS | {"image_size": image_size})


__all__ = [
    "FAMILIES",
    "QWEN2_5_VL_CHAT_TEMPLATE",
    "QWEN3_VL_CHAT_TEMPLATE",
    "SA2VA_SPECIAL_TOKENS",
    "TINY_SAM2_PARAMS",
    "build_processor",
    "build_tokenizer",
    "special_token_ids",
    "tiny_mllm_config",
    "tiny_sam2_config",
    "training_corpus",
]
