"""What one server accepts: upload size, frame count, time, concurrency and conversation limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from sa2va.errors import Sa2VAConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """Limits of one `sa2va serve` process (the CLI flags of the same names).

    Attributes:
        max_upload_mb: largest uploaded file in MiB; larger ones get 413 before any decoding.
        max_frames: most frames a video may have (after `fps` selection); more get 413.
        timeout_s: seconds a request may spend waiting (for its conversation, in the queue) and running; then 504.
        max_concurrency: inference worker threads. The model itself answers one request at a time (see
            `docs/serving.md`); more workers overlap decoding, RLE encoding and overlays with inference.
        max_queue: admitted requests that may wait for a worker; beyond that 503 with `Retry-After`.
        max_text_chars: longest instruction text.
        max_conversations: conversations kept for follow-ups; the least recently used is dropped first.
        conversation_ttl_s: a conversation unused this long is dropped.
    """

    max_upload_mb: float = 50.0
    max_frames: int = 100
    timeout_s: float = 120.0
    max_concurrency: int = 1
    max_queue: int = 8
    max_text_chars: int = 4000
    max_conversations: int = 64
    conversation_ttl_s: float = 3600.0

    def __post_init__(self) -> None:
        problems = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            minimum = 0 if spec.name == "max_queue" else 1 if spec.type == "int" else 0.0
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not is_number or (spec.type == "int" and not isinstance(value, int)):
                problems.append(f"{spec.name} must be a finite {spec.type}, got {value!r}")
            elif value < minimum or (spec.type == "float" and value == 0):
                bound = "> 0" if spec.type == "float" else f">= {minimum}"
                problems.append(f"{spec.name} must be {bound}, got {value!r}")
        if problems:
            raise Sa2VAConfigError("invalid server limits: " + "; ".join(problems) + ".")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)


__all__ = ["ServeLimits", "MIB"]
