"""Every failure a user can trigger, as one typed hierarchy.

Catch :class:`Sa2VAError` to handle anything this library raises on purpose. The subclasses also derive from the
builtin exception that fits (``ValueError``, ``OSError``) so generic handlers keep working.
"""

from __future__ import annotations


class Sa2VAError(Exception):
    """Root of every error a user of ``sa2va`` can trigger."""


class Sa2VAInputError(Sa2VAError, ValueError):
    """An argument (image, video, text, mask prompt, ...) is missing, malformed or unsupported by this model."""


class Sa2VAConfigError(Sa2VAError, ValueError):
    """A configuration is inconsistent or names something this library does not know."""


class Sa2VACheckpointError(Sa2VAError, OSError):
    """A checkpoint folder or Hub id cannot be read, or its tensors do not match the model."""


class Sa2VALimitError(Sa2VAInputError):
    """A request is larger than a configured limit (upload size, frame count); the message names the limit."""


class Sa2VANotFoundError(Sa2VAInputError, LookupError):
    """Something named by the caller (e.g. a server conversation id) does not exist or has expired."""


class Sa2VABusyError(Sa2VAError):
    """The server cannot take the request now (its queue is full); retry after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Sa2VATimeoutError(Sa2VAError, TimeoutError):
    """A request did not finish within its time limit."""


__all__ = [
    "Sa2VAError",
    "Sa2VAInputError",
    "Sa2VAConfigError",
    "Sa2VACheckpointError",
    "Sa2VALimitError",
    "Sa2VANotFoundError",
    "Sa2VABusyError",
    "Sa2VATimeoutError",
]
