"""JSON bodies of the HTTP API (pydantic models, so FastAPI documents them at `/docs`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RLE(BaseModel):
    """One `(height, width)` mask as COCO RLE with compressed counts (`pycocotools.mask.decode` reads it)."""

    size: list[int] = Field(description="[height, width]")
    counts: str = Field(description="COCO compressed run lengths, column-major")


class MaskObject(BaseModel):
    """The masks of one `[SEG]` of the answer."""

    object_id: int = Field(description="index of the object's [SEG] in the answer; phrases point here")
    color: tuple[int, int, int] = Field(description="RGB colour of this object in overlays and in the web UI")
    rle: list[RLE] = Field(description="one mask per frame, in frame order (one for an image)")


class Phrase(BaseModel):
    """A grounded phrase of the answer (GCG): `text == answer.text[start:end]`."""

    text: str
    start: int
    end: int
    mask_index: int | None = Field(description="index into masks, or null when no [SEG] follows the phrase")


class History(BaseModel):
    """A conversation so far; send it back as the `history` form field to continue without server state."""

    past_text: str = Field("", description="previous turns exactly as the model saw them")
    turns: list[tuple[str, str]] = Field(default_factory=list, description="(user text, answer) pairs")


class SegmentResponse(BaseModel):
    """The answer to one turn about an image or a video."""

    kind: Literal["image", "video"]
    text: str = Field(description="the answer without special tokens, <p></p> and [SEG]")
    raw_text: str = Field(description="the answer as generated")
    phrases: list[Phrase]
    masks: list[MaskObject]
    width: int
    height: int
    num_frames: int = Field(description="1 for an image")
    frame_indices: list[int] = Field(description="index in the upload of each answered frame ([0] for an image)")
    overlays: list[str] | None = Field(
        None, description="with overlay=true: base64 PNG of each frame with the masks blended in their colours"
    )
    elapsed_s: float = Field(description="seconds spent answering, queue wait included")


class ChatResponse(SegmentResponse):
    """A chat turn: the answer plus what is needed to continue the conversation."""

    conversation_id: str = Field(description="send it with the next turn to continue")
    history: History


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    family: str | None = None
    device: str | None = None
    dtype: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    running: int = Field(description="requests being answered")
    queued: int = Field(description="admitted requests waiting for a worker")
    max_concurrency: int
    max_queue: int
    conversations: int


class ErrorDetail(BaseModel):
    type: str = Field(description="invalid_input, limit_exceeded, not_found, busy, timeout, bad_request, ...")
    message: str = Field(description="what was wrong and what is expected")


class ErrorResponse(BaseModel):
    error: ErrorDetail


__all__ = [
    "RLE",
    "MaskObject",
    "Phrase",
    "History",
    "SegmentResponse",
    "ChatResponse",
    "ModelInfo",
    "ModelList",
    "Health",
    "ErrorDetail",
    "ErrorResponse",
]
