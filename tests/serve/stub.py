"""A stand-in for `Sa2VAModel` for tests that exercise the server itself (queue, timeouts, memory under load).

It answers a scripted text at once (or when its gate opens) with one rectangle mask per `[SEG]`, so such tests
measure the server's own work (uploads, decoding, RLE, overlays, conversations), not the network's forward pass.
Run as a script it serves itself: `python -m tests.serve.stub PORT`.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

from sa2va.errors import Sa2VAInputError
from sa2va.grounding.gcg import parse_grounded_text
from sa2va.outputs import ChatHistory, Sa2VAOutput, VideoStream
from sa2va.video.frames import open_video


class StubModel:
    def __init__(self, answer: str = "Sure, it is [SEG].", delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0

    def _answer(self, text, history: ChatHistory | None):
        if not isinstance(text, str) or not text.replace("<image>", "").strip():
            raise Sa2VAInputError(f"text must be a non-empty string, got {text!r}.")
        self.calls += 1
        self.gate.wait()
        time.sleep(self.delay_s)
        clean, phrases = parse_grounded_text(self.answer)
        history = history or ChatHistory()
        new = ChatHistory(f"{history.past_text}{text}\n{self.answer}\n", [*history.turns, (text, clean)])
        return clean, phrases, new, self.answer.count("[SEG]")

    @staticmethod
    def _mask(obj_id: int, width: int, height: int) -> np.ndarray:
        mask = np.zeros((height, width), bool)
        mask[height // 4 : height // 2 + height // 4, obj_id : width // 2 + obj_id] = True
        return mask

    def predict(self, image=None, video=None, text=None, history=None) -> Sa2VAOutput:
        clean, phrases, new, count = self._answer(text, history)
        masks = [self._mask(i, image.width, image.height)[None] for i in range(count)]
        return Sa2VAOutput(clean, self.answer, masks, phrases, new)

    def predict_video_stream(self, video, text, history=None) -> VideoStream:
        source = open_video(video)
        clean, phrases, new, count = self._answer(text, history)
        width, height = source.size

        def frames():
            for t in range(len(source)):
                source.frame(t)
                yield t, {i: self._mask(i, width, height) for i in range(count)}

        return VideoStream(clean, self.answer, phrases, new, count, len(source), frames())


def main(argv: list[str]) -> None:
    """Serve a StubModel on 127.0.0.1:PORT with the load test's limits."""
    import uvicorn

    from sa2va.serve import ServeLimits, create_app

    limits = ServeLimits(max_concurrency=2, max_queue=64, max_conversations=16, timeout_s=60)
    app = create_app(StubModel(delay_s=0.002), limits, model_id="stub")
    uvicorn.run(app, host="127.0.0.1", port=int(argv[0]), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
