"""Grounded captions: strip ``<p>``/``</p>``/``[SEG]`` markup from an answer and pair each phrase with its mask.

Sa2VA is trained on answers like ``"A <p> man </p> [SEG] rides <p> a bike </p> [SEG]."`` (spec §4): every grounded
span is wrapped in ``<p> … </p>`` and followed by one ``[SEG]``, and the model returns one mask per ``[SEG]`` in
order. Nothing in the model enforces that pairing, so the parser is lenient: it never fails, and a phrase that is not
followed by a ``[SEG]`` simply has no mask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

PHRASE_START = "<p>"
PHRASE_END = "</p>"
SEG_TOKEN = "[SEG]"
# End-of-turn markers of the chat templates Sa2VA uses (qwen_chat/internlm2_chat, phi3, generic EOS texts).
END_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>", "<|end|>", "</s>")

_MARKUP = re.compile("|".join(re.escape(token) for token in (PHRASE_START, PHRASE_END, SEG_TOKEN, *END_TOKENS)))
# No space is put between a removed marker and these characters ("a ball </p> [SEG]." -> "a ball.").
_NO_SPACE_BEFORE = frozenset(".,;:!?)]}")
_NO_SPACE_AFTER = frozenset("([{")


@dataclass(frozen=True)
class GroundedPhrase:
    """One ``<p>…</p>`` phrase of an answer.

    Attributes:
        text: The phrase without surrounding whitespace; equals ``clean_text[start:end]``.
        start: Index of the phrase's first character in the clean text.
        end: Index one past the phrase's last character in the clean text.
        mask_index: Index into the answer's masks (the ordinal of the ``[SEG]`` that follows the phrase), or ``None``
            when no ``[SEG]`` follows the phrase before the next phrase starts.
    """

    text: str
    start: int
    end: int
    mask_index: int | None


class _CleanTextBuilder:
    """Appends text pieces, collapsing the whitespace left around removed markers.

    Whitespace that touches a removed marker (a "seam") is merged into one space, or into its newlines when it holds
    any, and dropped at the start and end of the text and next to punctuation/brackets. Whitespace away from seams is
    kept as written.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self._pending = ""  # whitespace not yet written: it may still touch a seam or the end of the text
        self._seam = False

    def mark_seam(self) -> None:
        self._seam = True

    def add(self, piece: str) -> int | None:
        """Append ``piece``; return where its first non-whitespace character landed, or None if it had none."""
        content = piece.lstrip()
        self._pending += piece[: len(piece) - len(content)]
        if not content:
            return None
        self._write(self._joining_whitespace(content[0]))
        first = self.length
        core = content.rstrip()
        self._write(core)
        self._pending = content[len(core) :]
        self._seam = False
        return first

    def _joining_whitespace(self, next_char: str) -> str:
        if self.length == 0:
            return ""
        if not self._seam:
            return self._pending
        if not self._pending:
            return ""  # markers glued to words on both sides: do not invent a space
        if next_char in _NO_SPACE_BEFORE or self.parts[-1][-1] in _NO_SPACE_AFTER:
            return ""
        newlines = self._pending.count("\n")
        return "\n" * newlines if newlines else " "

    def _write(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.length += len(text)

    def text(self) -> str:
        return "".join(self.parts)


def parse_grounded_text(raw_text: str) -> tuple[str, list[GroundedPhrase]]:
    """Split a generated answer into clean text and grounded phrases.

    Removes ``<p>``, ``</p>``, ``[SEG]`` and template end tokens (``<|im_end|>``, ``<|endoftext|>``, ``<|end|>``,
    ``</s>``), collapsing the spaces they leave behind. Pairing rule: ``[SEG]`` tokens are numbered in order of
    appearance, and every one of them consumes a mask index, including a bare ``[SEG]`` of referring segmentation
    ("Sure, it is [SEG]."). A phrase gets the index of the first ``[SEG]`` after its ``<p>`` and before the next
    ``<p>``; otherwise its ``mask_index`` is ``None``. Extra ``[SEG]`` after an already paired phrase stay unpaired.
    An unclosed ``<p>`` ends at the next ``<p>`` or the end of the text; a stray ``</p>`` is dropped.

    Unlike the reference GCG evaluation script, which deletes every ``<...>`` tag and re-joins words on whitespace
    (leaving ``"a ball ."``), no space is kept between a removed marker and following punctuation (``"a ball."``).

    Args:
        raw_text: The decoded answer, special tokens included.

    Returns:
        ``(clean_text, phrases)``: the answer without markup, and its phrases in order of appearance with character
        spans into ``clean_text``.
    """
    builder = _CleanTextBuilder()
    phrases: list[GroundedPhrase] = []
    in_phrase = False
    phrase_start: int | None = None  # clean-text index of the open phrase's first character, once written
    phrase_mask: int | None = None  # mask of the open phrase when a [SEG] appeared inside it
    awaiting: int | None = None  # index in `phrases` of the closed phrase still waiting for its [SEG]
    seg_count = 0

    def add_text(piece: str) -> None:
        nonlocal phrase_start
        first = builder.add(piece)
        if in_phrase and phrase_start is None:
            phrase_start = first

    def close_phrase() -> None:
        nonlocal in_phrase, awaiting
        # The builder holds back trailing whitespace, so its length is the end of the last written word.
        start = builder.length if phrase_start is None else phrase_start
        phrases.append(GroundedPhrase(text="", start=start, end=builder.length, mask_index=phrase_mask))
        in_phrase = False
        awaiting = len(phrases) - 1 if phrase_mask is None else None

    position = 0
    for match in _MARKUP.finditer(raw_text):
        add_text(raw_text[position : match.start()])
        position = match.end()
        builder.mark_seam()
        token = match.group()
        if token == PHRASE_START:
            if in_phrase:
                close_phrase()
            in_phrase, phrase_start, phrase_mask, awaiting = True, None, None, None
        elif token == PHRASE_END:
            if in_phrase:
                close_phrase()
        elif token == SEG_TOKEN:
            if in_phrase and phrase_mask is None:
                phrase_mask = seg_count  # "<p> a [SEG] b </p>": the phrase takes the mask and goes on
            elif awaiting is not None:
                phrases[awaiting] = replace(phrases[awaiting], mask_index=seg_count)
                awaiting = None
            seg_count += 1
    add_text(raw_text[position:])
    if in_phrase:
        close_phrase()

    clean = builder.text()
    return clean, [replace(phrase, text=clean[phrase.start : phrase.end]) for phrase in phrases]


def clean_text(raw_text: str) -> str:
    """The answer without ``<p>``/``</p>``/``[SEG]``/end-token markup (see :func:`parse_grounded_text`).

    Args:
        raw_text: The decoded answer, special tokens included.

    Returns:
        The clean answer text.
    """
    return parse_grounded_text(raw_text)[0]


__all__ = ["END_TOKENS", "SEG_TOKEN", "GroundedPhrase", "clean_text", "parse_grounded_text"]
