"""Every failure as `{"error": {"type", "message"}}` with the right status, and the request-body size guard."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sa2va.errors import (
    Sa2VABusyError,
    Sa2VAError,
    Sa2VAInputError,
    Sa2VALimitError,
    Sa2VANotFoundError,
    Sa2VATimeoutError,
)
from sa2va.serve.limits import MIB

logger = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides.
ERROR_STATUS: tuple[tuple[type[Sa2VAError], int, str], ...] = (
    (Sa2VALimitError, 413, "limit_exceeded"),
    (Sa2VANotFoundError, 404, "not_found"),
    (Sa2VAInputError, 422, "invalid_input"),
    (Sa2VABusyError, 503, "busy"),
    (Sa2VATimeoutError, 504, "timeout"),
    (Sa2VAError, 400, "bad_request"),
)
HTTP_TYPES = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "limit_exceeded", 422: "invalid_input"
}


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def sa2va_error_response(error: Sa2VAError) -> JSONResponse:
    """The response for a typed library error."""
    status, kind = next((s, k) for cls, s, k in ERROR_STATUS if isinstance(error, cls))
    headers = {"Retry-After": str(error.retry_after_s)} if isinstance(error, Sa2VABusyError) else None
    return error_response(status, kind, str(error), headers)


def describe_validation(error: RequestValidationError) -> str:
    """One sentence per problem of a request FastAPI could not parse, e.g. "form field 'text': Field required"."""
    parts = []
    for problem in error.errors():
        where = [str(p) for p in problem.get("loc", ()) if p not in ("body",)]
        field = f"field '{'.'.join(where)}'" if where else "request"
        parts.append(f"{field}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) + ". See /docs for the expected multipart form fields."


def install_error_handlers(app: FastAPI) -> None:
    """Map typed errors, request-parsing errors, HTTP errors and anything unexpected onto the error JSON."""

    @app.exception_handler(Sa2VAError)
    async def _sa2va(_request: Request, error: Sa2VAError) -> JSONResponse:
        return sa2va_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_input", describe_validation(error))

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, error: HTTPException) -> JSONResponse:
        kind = HTTP_TYPES.get(error.status_code, "bad_request" if error.status_code < 500 else "internal_error")
        return error_response(error.status_code, kind, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error while answering a request")
        message = f"internal server error ({type(error).__name__}); see the server log."
        return error_response(500, "internal_error", message)


class BodySizeLimit:
    """ASGI middleware refusing request bodies over `max_bytes` with 413, before they are parsed or stored.

    A declared `Content-Length` over the limit is refused at once; a streamed body is counted as it arrives. Up to
    `drain_bytes` of the rest is read and dropped first, so ordinary clients get the 413 instead of a reset connection.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int = 16 * MIB) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes

    def _message(self) -> str:
        return (
            f"request body is larger than this server's limit of {self.max_bytes / MIB:.3g} MiB (--max-upload-mb plus "
            "room for the form fields); send a smaller file."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._drain(receive, 0)
            await self._refuse(send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body", False):
                        await self._drain(receive, 0)
                    # FastAPI re-raises HTTPExceptions met while parsing a body; the handler above answers it
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    async def _drain(self, receive: Receive, dropped: int) -> None:
        while dropped <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": {"type": "limit_exceeded", "message": self._message()}}).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})


__all__ = ["ERROR_STATUS", "BodySizeLimit", "error_response", "install_error_handlers", "sa2va_error_response"]
