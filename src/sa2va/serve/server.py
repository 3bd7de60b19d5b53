"""`sa2va serve`: load the model once, build the app, and run it with uvicorn."""

from __future__ import annotations

import logging

from sa2va.serve.limits import ServeLimits

logger = logging.getLogger(__name__)


def run_server(
    model,
    limits: ServeLimits | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_id: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve `model` over HTTP until interrupted (Ctrl-C).

    Args:
        model: a loaded `Sa2VAModel` (see `sa2va.serve.create_app`).
        limits: request limits.
        host: interface to listen on; the default only accepts local clients.
        port: TCP port.
        model_id: the name reported by `/v1/models`.
        log_level: uvicorn's log level.
    """
    import uvicorn

    from sa2va.serve.app import create_app

    app = create_app(model, limits, model_id=model_id)
    logger.info("serving %s on http://%s:%d (web UI at /, API docs at /docs)", model_id, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


__all__ = ["run_server"]
