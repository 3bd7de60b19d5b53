"""HTTP serving of one Sa2VA model: a FastAPI app (`create_app`), its limits and `run_server` (`sa2va serve`).

Needs the `serve` extra: `pip install 'sa2va[serve]'` (fastapi, uvicorn, python-multipart). See docs/serving.md.
"""

from sa2va.serve.limits import ServeLimits
from sa2va.serve.server import run_server


def create_app(model, limits: ServeLimits | None = None, *, model_id: str | None = None):
    """Build the FastAPI app around a loaded model; see :func:`sa2va.serve.app.create_app`."""
    from sa2va.serve.app import create_app as build

    return build(model, limits, model_id=model_id)


__all__ = ["ServeLimits", "create_app", "run_server"]
