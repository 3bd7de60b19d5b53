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


__all__ = ["Sa2VAError", "Sa2VAInputError", "Sa2VAConfigError", "Sa2VACheckpointError"]
