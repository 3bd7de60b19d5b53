"""Bounded inference: a pool of worker threads, a bounded queue in front of it, and per-request time limits."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sa2va.errors import Sa2VABusyError, Sa2VATimeoutError

T = TypeVar("T")


class InferenceWorker:
    """Runs blocking inference jobs on `max_concurrency` threads with at most `max_queue` more waiting.

    A job is a callable taking a `threading.Event` that is set when its request has timed out; long jobs (videos)
    check it between frames and stop. A job that cannot be interrupted keeps its worker until it ends, and keeps
    counting against the limits until then, so a flood of slow requests cannot pile up unbounded work.

    Args:
        max_concurrency: worker threads.
        max_queue: admitted jobs that may wait for a worker beyond those running.
    """

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="sa2va-inference")
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._running = 0
        self._mean_s = 1.0  # running mean of job durations, for Retry-After

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return max(0, self._admitted - self._running)

    def retry_after_s(self) -> int:
        """Seconds after which a refused client should retry: the admitted work divided over the workers."""
        with self._lock:
            return max(1, math.ceil(self._mean_s * self._admitted / self.max_concurrency))

    async def run(self, job: Callable[[threading.Event], T], timeout_s: float) -> T:
        """Run `job` on a worker and return its result.

        Raises:
            Sa2VABusyError: `max_concurrency + max_queue` jobs are already admitted (nothing is run).
            Sa2VATimeoutError: the job did not finish within `timeout_s` (queue wait included).
        """
        with self._lock:
            if self._admitted >= self.max_concurrency + self.max_queue:
                busy = self._admitted
            else:
                busy = 0
                self._admitted += 1
        if busy:
            retry = self.retry_after_s()
            raise Sa2VABusyError(
                f"the server is busy: {busy} requests are running or queued (--max-concurrency "
                f"{self.max_concurrency}, --max-queue {self.max_queue}); retry in {retry} s.",
                retry_after_s=retry,
            )
        cancel = threading.Event()
        future: Future[T] = self._executor.submit(self._call, job, cancel)
        future.add_done_callback(self._release)  # also fires when a queued job is cancelled
        if timeout_s <= 0:
            future.cancel()
            cancel.set()
            raise Sa2VATimeoutError("the request's time limit was used up before inference could start.")
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except asyncio.TimeoutError as error:
            cancel.set()
            future.cancel()  # only succeeds while it is still queued
            raise Sa2VATimeoutError(
                f"the request did not finish within {timeout_s:.3g} s (queue wait included; --timeout-s). Send a "
                "smaller image or a shorter video, or retry when the server is less busy."
            ) from error

    def shutdown(self) -> None:
        """Stop taking jobs; running ones finish in the background."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _call(self, job: Callable[[threading.Event], T], cancel: threading.Event) -> T:
        if cancel.is_set():
            raise Sa2VATimeoutError("the request timed out while queued.")
        with self._lock:
            self._running += 1
        start = time.perf_counter()
        try:
            return job(cancel)
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._running -= 1
                self._mean_s = 0.8 * self._mean_s + 0.2 * elapsed

    def _release(self, _future: Future) -> None:
        with self._lock:
            self._admitted -= 1


__all__ = ["InferenceWorker"]
