"""Load: 200 requests from 20 concurrent clients against a server process; no failures, bounded memory growth.

The server runs in its own process (so its RSS is measured alone) and answers with `StubModel`, so the test measures
the server's own work per request (multipart upload, image/video decoding, queueing, RLE, overlay PNGs,
conversations) rather than 200 forward passes of a network; the API and UI tests cover the real model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .helpers import mp4_bytes, png_bytes, post_form, request

psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 20
REQUESTS = 200
WARM_UP = 40
RSS_GROWTH_BOUND_MIB = 25  # after warm-up; see docs/serving.md


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_process():
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "tests.serve.stub", str(port)], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if request(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        assert process.poll() is None, "the server process exited"
        assert time.monotonic() < deadline, "the server process did not start"
        time.sleep(0.2)
    yield url, psutil.Process(process.pid)
    process.terminate()
    process.wait(timeout=20)


def test_200_requests_from_20_clients(server_process):
    url, process = server_process
    image = {"file": ("scene.png", png_bytes(160, 120, (40, 90, 160)), "image/png")}
    video = {"file": ("clip.mp4", mp4_bytes(4, 64, 48), "video/mp4")}
    lock = threading.Lock()
    conversations: list[str] = []

    def one(index: int) -> tuple[int, float]:
        start = time.perf_counter()
        kind = index % 10
        if kind < 4:
            reply = post_form(f"{url}/v1/segment", {"text": "the box", "overlay": str(kind < 2).lower()}, image)
        elif kind == 4:
            reply = post_form(f"{url}/v1/segment", {"text": "the square", "overlay": "true"}, video)
        elif kind < 8 or not conversations:
            reply = post_form(f"{url}/v1/chat", {"text": "What is this?", "overlay": "true"}, image)
            if reply.status == 200:
                with lock:
                    conversations.append(reply.json()["conversation_id"])
        else:
            with lock:
                conversation = conversations[-1]
            reply = post_form(f"{url}/v1/chat", {"text": "And then?", "conversation_id": conversation})
        return reply.status, time.perf_counter() - start

    def run(count: int) -> list[tuple[int, float]]:
        with ThreadPoolExecutor(CLIENTS) as clients:
            return list(clients.map(one, range(count)))

    run(WARM_UP)
    rss_before = process.memory_info().rss
    start = time.perf_counter()
    results = run(REQUESTS)
    elapsed = time.perf_counter() - start
    rss_after = process.memory_info().rss

    statuses = [status for status, _ in results]
    latencies = sorted(latency for _, latency in results)
    growth_mib = (rss_after - rss_before) / 2**20
    print(
        f"\n{REQUESTS} requests, {CLIENTS} clients: {elapsed:.1f} s, {REQUESTS / elapsed:.0f} req/s, latency p50 "
        f"{latencies[len(latencies) // 2] * 1000:.0f} ms p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms; "
        f"server RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB ({growth_mib:+.1f} MiB, bound "
        f"{RSS_GROWTH_BOUND_MIB} MiB)"
    )
    assert statuses.count(200) == REQUESTS, {status: statuses.count(status) for status in set(statuses)}
    assert growth_mib < RSS_GROWTH_BOUND_MIB
    health = request(f"{url}/health").json()
    assert (health["running"], health["queued"]) == (0, 0)
    assert health["conversations"] <= 16  # the load server keeps at most 16
