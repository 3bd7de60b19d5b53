"""Read the pickled annotation files of the public datasets without letting them run code.

Two public formats are pickles: REFER's ``refs(unc).p`` / ``refs(umd).p`` (RefCOCO, RefCOCO+, RefCOCOg; written by
Python 2) and the ``mask_dict.pkl`` of Ref-YouTube-VOS / Ref-DAVIS. Both hold only plain containers: lists and dicts of
strings, numbers, bytes (RLE counts) and ``None``. A normal ``pickle.load`` would also execute any callable the file
names (``os.system``, ...), so a downloaded annotation file could run arbitrary code.

:func:`load_pickle` uses an unpickler whose ``find_class`` only hands out a short allow-list of harmless builtin
constructors (``dict``, ``list``, ``tuple``, ``set``, ``frozenset``, ``str``, ``bytes``, ``bytearray``, ``int``,
``float``, ``complex``, ``bool``) plus a restricted stand-in for ``_codecs.encode`` that only turns text into bytes
with latin-1 (how protocol-2 pickles written by Python 3 store ``bytes``). Everything else, numpy arrays, classes and
any function included, is refused with :class:`UnsafePickleError` before it is called. Plain containers are built by
pickle opcodes that never go through ``find_class``, so the allowed data loads unchanged.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
from pathlib import Path
from typing import Any

from sa2va.errors import Sa2VAInputError

_ALLOWED_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float", "complex", "bool"}
)


class UnsafePickleError(Sa2VAInputError):
    """A pickle names a callable or class outside the allow-list of plain builtin containers and scalars."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Protocol 2 stores `bytes` as `_codecs.encode(text, "latin1")`; only that exact use is allowed.
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"_codecs.encode is only allowed with latin-1 text, got encoding {encoding!r}.")
    return text.encode("latin-1", errors="strict")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only plain builtin types (see the module docstring); anything else raises."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 and protocol 0/1 pickles name the module `__builtin__` (the base class maps it; this override must).
        if module in ("builtins", "__builtin__") and name in _ALLOWED_BUILTINS:
            return getattr(builtins, name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise UnsafePickleError(
            f"the pickle references {module}.{name}; only plain data (dict, list, tuple, set, str, bytes, int, float, "
            "bool, None) may be loaded from annotation pickles, so nothing in the file can run code. Convert the file "
            "to JSON if it holds other objects (e.g. numpy arrays)."
        )


def loads_pickle(data: bytes) -> Any:
    """Unpickle plain data from bytes with :class:`RestrictedUnpickler`.

    Raises:
        UnsafePickleError: the data references a non-allowed callable or class.
        Sa2VAInputError: the data is not a valid pickle.
    """
    try:
        # utf-8 decodes Python 2 `str` objects (ASCII ids and names, or UTF-8 text) into `str`.
        return RestrictedUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise Sa2VAInputError(f"not a valid pickle ({type(error).__name__}: {error}).") from None


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """Load a pickled annotation file that holds only plain data, without running any code it names.

    Args:
        path: the pickle file.

    Returns:
        The plain Python object (lists, dicts, str, bytes, numbers, None).

    Raises:
        UnsafePickleError: the file references a callable or class outside the allow-list (e.g. ``os.system``).
        Sa2VAInputError: the file cannot be read or is not a valid pickle.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise Sa2VAInputError(f"cannot read pickle file {path} ({error}).") from None
    try:
        return loads_pickle(data)
    except Sa2VAInputError as error:
        raise type(error)(f"{path}: {error}") from None


__all__ = ["RestrictedUnpickler", "UnsafePickleError", "load_pickle", "loads_pickle"]
