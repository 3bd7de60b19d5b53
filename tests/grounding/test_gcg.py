"""Grounded caption parsing: clean text, phrase spans and phrase-to-mask pairing."""

from __future__ import annotations

import dataclasses

import pytest

from sa2va.grounding.gcg import GroundedPhrase, clean_text, parse_grounded_text


def _spans_are_consistent(clean: str, phrases: list[GroundedPhrase]) -> bool:
    return all(clean[p.start : p.end] == p.text for p in phrases)


def test_training_format_answer():
    raw = "The <p> red cube </p> [SEG] is left of <p> a ball </p> [SEG].<|im_end|>"
    clean, phrases = parse_grounded_text(raw)
    assert clean == "The red cube is left of a ball."
    assert phrases == [
        GroundedPhrase(text="red cube", start=4, end=12, mask_index=0),
        GroundedPhrase(text="a ball", start=24, end=30, mask_index=1),
    ]


def test_grounded_phrase_is_frozen():
    phrase = GroundedPhrase(text="a", start=0, end=1, mask_index=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        phrase.text = "b"  # type: ignore[misc]


def test_referring_seg_without_phrase_consumes_a_mask_index():
    clean, phrases = parse_grounded_text("Sure, it is [SEG].<|im_end|>")
    assert clean == "Sure, it is."
    assert phrases == []
    # a bare [SEG] before a phrase shifts the phrase's mask index
    clean, phrases = parse_grounded_text("It is [SEG]. Also <p> the dog </p> [SEG].")
    assert clean == "It is. Also the dog."
    assert [(p.text, p.mask_index) for p in phrases] == [("the dog", 1)]


def test_phrase_without_seg_gets_none_and_does_not_shift_later_indices():
    raw = "<p> A man </p> rides <p> a bike </p> [SEG] on <p> grass </p> [SEG] [SEG]</s>"
    clean, phrases = parse_grounded_text(raw)
    assert clean == "A man rides a bike on grass"
    assert [(p.text, p.mask_index) for p in phrases] == [("A man", None), ("a bike", 0), ("grass", 1)]
    assert _spans_are_consistent(clean, phrases)


def test_seg_after_text_still_pairs_with_the_preceding_phrase():
    clean, phrases = parse_grounded_text("<p> cube </p> is red [SEG] and <p> ball </p>")
    assert clean == "cube is red and ball"
    assert [(p.text, p.mask_index) for p in phrases] == [("cube", 0), ("ball", None)]


def test_seg_inside_phrase_pairs_with_it():
    clean, phrases = parse_grounded_text("<p> red [SEG] cube </p> here")
    assert clean == "red cube here"
    assert phrases == [GroundedPhrase(text="red cube", start=0, end=8, mask_index=0)]


@pytest.mark.parametrize("end_token", ["<|im_end|>", "<|endoftext|>", "<|end|>", "</s>"])
def test_end_tokens_are_removed(end_token):
    assert clean_text(f"A <p> cat </p> [SEG].{end_token}") == "A cat."


def test_whitespace_and_punctuation_around_markers():
    raw = "<p>A dog</p>[SEG] and (<p> a cat </p> [SEG]) near <p> a tree </p> [SEG], then\n\n<p> grass </p> [SEG]\nend"
    clean, phrases = parse_grounded_text(raw)
    assert clean == "A dog and (a cat) near a tree, then\n\ngrass\nend"
    assert [p.text for p in phrases] == ["A dog", "a cat", "a tree", "grass"]
    assert [p.mask_index for p in phrases] == [0, 1, 2, 3]
    assert _spans_are_consistent(clean, phrases)


def test_spacing_away_from_markers_is_kept_and_glued_markers_add_no_space():
    assert clean_text("keep  these  spaces [SEG]") == "keep  these  spaces"
    assert clean_text("hot<p>dog</p>[SEG]s") == "hotdogs"


def test_malformed_markup_is_tolerated():
    clean, phrases = parse_grounded_text("a <p> b <p> c </p> [SEG] </p> d")
    assert clean == "a b c d"
    assert [(p.text, p.mask_index) for p in phrases] == [("b", None), ("c", 0)]
    clean, phrases = parse_grounded_text("x <p> unclosed")
    assert (clean, [(p.text, p.mask_index) for p in phrases]) == ("x unclosed", [("unclosed", None)])


def test_plain_text_is_unchanged():
    text = "A photo of two cats sitting on a sofa."
    assert parse_grounded_text(text) == (text, [])
    assert parse_grounded_text("") == ("", [])
