"""Every limit and kind of bad input gets a 4xx (or 503/504) with the error JSON; nothing a client does is a 500."""

from __future__ import annotations

import http.client
import threading
import time

import pytest

from sa2va.errors import Sa2VAConfigError
from sa2va.serve import ServeLimits, create_app

from .helpers import LiveServer, encode_multipart, mp4_bytes, png_bytes, post_form, request
from .stub import StubModel

PNG = {"file": ("a.png", png_bytes(), "image/png")}


def assert_error(reply, status: int, kind: str, *words: str) -> dict:
    assert reply.status == status, (reply.status, reply.body)
    error = reply.json()["error"]
    assert error["type"] == kind
    for word in words:
        assert word in error["message"], error["message"]
    return error


@pytest.fixture(scope="module")
def small():
    """A stub-model server with small limits (the stub answers at once)."""
    server = LiveServer(create_app(StubModel(), ServeLimits(max_upload_mb=0.25, max_frames=4, max_text_chars=100)))
    yield server
    server.stop()


def test_upload_over_limit_is_413(small):
    big = {"file": ("big.png", b"\x89PNG" + b"\0" * 400_000, "image/png")}
    assert_error(post_form(f"{small.url}/v1/segment", {"text": "x"}, big), 413, "limit_exceeded", "--max-upload-mb")


def test_body_over_limit_is_refused_before_parsing(small):
    huge = {"file": ("huge.png", b"\0" * (2 * 1024 * 1024), "image/png")}  # over upload + form room
    assert_error(post_form(f"{small.url}/v1/segment", {"text": "x"}, huge), 413, "limit_exceeded", "request body")
    # a chunked body (no Content-Length) is counted as it arrives
    body, content_type = encode_multipart({"text": "x"}, huge)
    connection = http.client.HTTPConnection("127.0.0.1", small.port, timeout=30)
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    connection.request("POST", "/v1/segment", body=chunks, headers={"Content-Type": content_type}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and b"limit_exceeded" in response.read()
    connection.close()


def test_too_many_frames_is_413_and_fps_samples_fewer(small):
    pytest.importorskip("av")
    clip = {"file": ("clip.mp4", mp4_bytes(6), "video/mp4")}
    assert_error(post_form(f"{small.url}/v1/segment", {"text": "x"}, clip), 413, "limit_exceeded", "6 frames",
                 "--max-frames")
    reply = post_form(f"{small.url}/v1/segment", {"text": "x", "fps": "5"}, clip)
    assert reply.status == 200 and reply.json()["frame_indices"] == [0, 2, 4]


@pytest.mark.parametrize(
    ("fields", "files", "words"),
    [
        ({"text": "x"}, {"file": ("notes.txt", b"hello there", "text/plain")}, ["notes.txt", "neither"]),
        ({"text": "x"}, {"file": ("cut.png", png_bytes()[:60], "image/png")}, ["cut.png"]),
        ({"text": "x"}, {"file": ("bad.mp4", b"\0\0\0\x18ftypmp42" + b"junk" * 100, "video/mp4")}, ["bad.mp4"]),
        ({"text": "x"}, {"file": ("empty.png", b"", "image/png")}, ["empty"]),
        ({"text": "   "}, PNG, ["text is empty"]),
        ({"text": "<image>\n"}, PNG, ["text is empty"]),
        ({"text": "x" * 101}, PNG, ["at most 100"]),
        ({}, PNG, ["'text'", "required"]),
        ({"text": "x"}, {}, ["'file'", "required"]),
        ({"text": "x", "fps": "-1"}, {"file": ("clip.mp4", b"\0" * 64, "video/mp4")}, []),
        ({"text": "x", "overlay": "maybe"}, PNG, ["overlay"]),
    ],
)
def test_bad_segment_input_is_422(small, fields, files, words):
    error = assert_error(post_form(f"{small.url}/v1/segment", fields, files), 422, "invalid_input", *words)
    assert "/tmp" not in error["message"]  # the server's stored path never leaks


def test_bad_chat_input(small):
    url = f"{small.url}/v1/chat"
    assert_error(post_form(url, {"text": "hi", "conversation_id": "nope"}), 404, "not_found", "nope")
    assert_error(post_form(url, {"text": "hi"}), 422, "invalid_input", "needs a file")
    assert_error(post_form(url, {"text": "hi", "history": "{not json"}, PNG), 422, "invalid_input", "history")
    assert_error(post_form(url, {"text": "hi", "history": '{"turns": 3}'}, PNG), 422, "invalid_input", "history")
    first = post_form(url, {"text": "hi"}, PNG).json()
    assert_error(post_form(url, {"text": "hi", "conversation_id": first["conversation_id"]}, PNG), 422,
                 "invalid_input", "conversation_id alone")


def test_malformed_requests_are_4xx(small):
    assert_error(request(f"{small.url}/nowhere"), 404, "not_found")
    assert_error(request(f"{small.url}/v1/segment"), 405, "method_not_allowed")
    reply = request(f"{small.url}/v1/segment", b"{}", {"Content-Type": "application/json"})
    assert reply.status == 422 and reply.json()["error"]["type"] == "invalid_input"
    reply = request(f"{small.url}/v1/segment", b"--x\r\ngarbage", {"Content-Type": "multipart/form-data; boundary=y"})
    assert 400 <= reply.status < 500 and "error" in reply.json()


def test_queue_full_is_503_with_retry_after(live):
    model = StubModel()
    model.gate.clear()
    server = live(model, max_concurrency=1, max_queue=1)
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(post_form(f"{server.url}/v1/segment", {"text": "x"},
                                                                        PNG))) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while (health := request(f"{server.url}/health").json())["running"] + health["queued"] < 2:
            assert time.monotonic() < deadline, health
            time.sleep(0.02)
        assert (health["running"], health["queued"]) == (1, 1)
        refused = post_form(f"{server.url}/v1/segment", {"text": "x"}, PNG)
        assert_error(refused, 503, "busy", "--max-queue")
        assert int(refused.headers["retry-after"]) >= 1
    finally:
        model.gate.set()
        for thread in threads:
            thread.join(timeout=20)
    assert [reply.status for reply in replies] == [200, 200]


def test_slow_request_is_504(live):
    model = StubModel()
    model.gate.clear()
    server = live(model, timeout_s=0.5)
    try:
        start = time.monotonic()
        assert_error(post_form(f"{server.url}/v1/segment", {"text": "x"}, PNG), 504, "timeout", "--timeout-s")
        assert time.monotonic() - start < 5
    finally:
        model.gate.set()
    deadline = time.monotonic() + 10  # the interrupted job frees its worker once the model returns
    while request(f"{server.url}/health").json()["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert post_form(f"{server.url}/v1/segment", {"text": "x"}, PNG).status == 200


def test_server_bugs_are_500_json(live):
    model = StubModel()
    model.predict = lambda **kwargs: 1 / 0
    server = live(model)
    assert_error(post_form(f"{server.url}/v1/segment", {"text": "x"}, PNG), 500, "internal_error", "ZeroDivisionError")


def test_limits_are_validated():
    with pytest.raises(Sa2VAConfigError, match="timeout_s must be > 0.*max_concurrency must be >= 1"):
        ServeLimits(max_concurrency=0, timeout_s=0)
    with pytest.raises(Sa2VAConfigError, match="max_frames must be a finite int"):
        ServeLimits(max_frames=2.5)
    assert ServeLimits(max_upload_mb=1).max_upload_bytes == 1024 * 1024


def test_a_model_without_processor_is_refused_at_start():
    from types import SimpleNamespace

    with pytest.raises(Sa2VAConfigError, match="no tokenizer/processor attached"):
        create_app(SimpleNamespace(processor=None))
