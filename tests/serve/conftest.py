"""Servers for the serve tests: a tiny random model taught to answer with [SEG], and a stub for server-only tests."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn, python-multipart) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (fastapi, uvicorn, python-multipart) is not installed")

from sa2va.serve import ServeLimits, create_app  # noqa: E402
from sa2va.testing import tiny_model  # noqa: E402

from .helpers import LiveServer  # noqa: E402


@pytest.fixture(scope="package")
def tiny():
    """A tiny random InternVL-family model (small SAM2 input, so each answer takes a fraction of a second)."""
    return tiny_model("internvl", sam2_image_size=64)


@pytest.fixture(scope="package")
def tiny_server(tiny):
    """The tiny model served over a real socket with small limits."""
    server = LiveServer(create_app(tiny, ServeLimits(max_upload_mb=1, max_frames=4, timeout_s=60), model_id="tiny"))
    yield server
    server.stop()


@pytest.fixture
def live():
    """`live(model, **limits)` starts a server for one test; all are stopped afterwards."""
    servers = []

    def start(model, model_id: str = "stub", **limits) -> LiveServer:
        servers.append(LiveServer(create_app(model, ServeLimits(**limits), model_id=model_id)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
