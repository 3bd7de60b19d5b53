"""The HTTP API over a real socket, answered by a tiny random model that teacher forcing makes emit [SEG]."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from sa2va.grounding.masks import rle_to_mask
from sa2va.overlay import PALETTE
from sa2va.testing import teacher_forcing

from .helpers import mp4_bytes, png_bytes, post_form, request

GCG_ANSWER = "<p> A box </p> [SEG] next to <p> a ball </p> [SEG]."


def image_file(width: int = 48, height: int = 40, colour=(0, 0, 0)):
    return {"file": ("scene.png", png_bytes(width, height, colour), "image/png")}


def decode_png(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_health_models_and_docs(tiny_server):
    health = request(f"{tiny_server.url}/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny" and health["running"] == 0
    models = request(f"{tiny_server.url}/v1/models").json()
    assert models["data"][0] == {"id": "tiny", "object": "model", "family": "internvl", "device": "cpu",
                                 "dtype": "float32"}
    schema = request(f"{tiny_server.url}/openapi.json").json()
    assert {"/v1/segment", "/v1/chat", "/v1/models", "/health"} <= set(schema["paths"])
    docs = request(f"{tiny_server.url}/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()


def test_segment_image_rle_and_overlay(tiny, tiny_server):
    with teacher_forcing(tiny, "Sure, it is [SEG]."):
        reply = post_form(f"{tiny_server.url}/v1/segment", {"text": "the box", "overlay": "true"}, image_file())
    assert reply.status == 200, reply.body
    data = reply.json()
    assert data["kind"] == "image" and data["text"] == "Sure, it is." and "[SEG]" in data["raw_text"]
    assert (data["width"], data["height"], data["num_frames"], data["frame_indices"]) == (48, 40, 1, [0])
    (obj,) = data["masks"]
    assert obj["object_id"] == 0 and tuple(obj["color"]) == PALETTE[0]
    mask = rle_to_mask(obj["rle"][0])
    assert mask.shape == (40, 48) and 0 < mask.sum() < mask.size  # the random SAM2 draws a partial mask
    # black input: the overlay is exactly the palette colour at half strength inside the mask, black outside
    overlay = decode_png(data["overlays"][0])
    expected = np.floor(np.asarray(PALETTE[0]) * 0.5 + 0.5).astype(np.uint8)
    assert (overlay[mask] == expected).all() and (overlay[~mask] == 0).all()


def test_segment_gcg_phrases_point_at_masks(tiny, tiny_server):
    with teacher_forcing(tiny, GCG_ANSWER):
        data = post_form(f"{tiny_server.url}/v1/segment", {"text": "<image>\nDescribe with masks."},
                         image_file()).json()
    assert data["text"] == "A box next to a ball."
    assert [(p["text"], p["mask_index"]) for p in data["phrases"]] == [("A box", 0), ("a ball", 1)]
    assert [tuple(m["color"]) for m in data["masks"]] == [PALETTE[0], PALETTE[1]]
    for phrase in data["phrases"]:
        assert data["text"][phrase["start"] : phrase["end"]] == phrase["text"]
    assert data["overlays"] is None


def test_segment_video_per_object_per_frame(tiny, tiny_server):
    pytest.importorskip("av")
    with teacher_forcing(tiny, GCG_ANSWER):
        reply = post_form(f"{tiny_server.url}/v1/segment", {"text": "the squares", "overlay": "true"},
                          {"file": ("clip.mp4", mp4_bytes(3), "video/mp4")})
    assert reply.status == 200, reply.body
    data = reply.json()
    assert data["kind"] == "video" and data["num_frames"] == 3 and data["frame_indices"] == [0, 1, 2]
    assert len(data["masks"]) == 2 and len(data["overlays"]) == 3
    for obj in data["masks"]:
        assert [rle_to_mask(rle).shape for rle in obj["rle"]] == [(32, 48)] * 3
    assert decode_png(data["overlays"][2]).shape == (32, 48, 3)


def test_chat_follow_ups_keep_the_conversation(tiny, tiny_server):
    url = f"{tiny_server.url}/v1/chat"
    with teacher_forcing(tiny, "Sure, it is [SEG]."):
        first = post_form(url, {"text": "Please segment the box."}, image_file()).json()
    conversation = first["conversation_id"]
    assert first["history"]["turns"] == [["<image>\nPlease segment the box.", "Sure, it is."]]
    assert len(first["masks"]) == 1
    with teacher_forcing(tiny, "It is black."):
        second = post_form(url, {"text": "What colour is it?", "conversation_id": conversation}).json()
    assert second["conversation_id"] == conversation and second["text"] == "It is black." and second["masks"] == []
    assert [turn[0] for turn in second["history"]["turns"]] == ["<image>\nPlease segment the box.",
                                                                 "What colour is it?"]
    assert second["history"]["past_text"].startswith(first["history"]["past_text"])
    assert request(f"{tiny_server.url}/health").json()["conversations"] >= 1


def test_chat_with_explicit_history(tiny, tiny_server):
    url = f"{tiny_server.url}/v1/chat"
    with teacher_forcing(tiny, "A black picture."):
        first = post_form(url, {"text": "Describe it."}, image_file()).json()
    with teacher_forcing(tiny, "Sure, it is [SEG]."):
        reply = post_form(url, {"text": "Segment it.", "history": json.dumps(first["history"])}, image_file())
    data = reply.json()
    assert reply.status == 200 and len(data["masks"]) == 1
    assert [turn[1] for turn in data["history"]["turns"]] == ["A black picture.", "Sure, it is."]
    assert data["conversation_id"] != first["conversation_id"]
    # the follow-up was not given <image> again: the history already holds the image
    assert data["history"]["turns"][1][0] == "Segment it."


def test_chat_about_a_video_follows_up_on_the_stored_upload(tiny, tiny_server):
    pytest.importorskip("av")
    url = f"{tiny_server.url}/v1/chat"
    with teacher_forcing(tiny, "Sure, it is [SEG]."):
        first = post_form(url, {"text": "Segment the square."}, {"file": ("clip.mp4", mp4_bytes(3), "video/mp4")})
        assert first.status == 200, first.body
        second = post_form(url, {"text": "And now?", "conversation_id": first.json()["conversation_id"]}).json()
    assert second["kind"] == "video" and second["num_frames"] == 3
    assert [len(obj["rle"]) for obj in second["masks"]] == [3]
