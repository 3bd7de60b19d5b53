"""Build the training mixture named by a training config's `data` list."""

from __future__ import annotations

from pathlib import Path

from sa2va.data.synthetic import ShapesDataset
from sa2va.errors import Sa2VAConfigError


class RepeatedMixture:
    """Datasets concatenated, each repeated `repeats` times (index `i` maps to one dataset's item)."""

    def __init__(self, parts: list[tuple[object, int]]):
        self.parts = parts
        self._offsets = []
        total = 0
        for dataset, repeats in parts:
            self._offsets.append(total)
            total += len(dataset) * repeats
        self._length = total

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int):
        for (dataset, _repeats), offset in zip(reversed(self.parts), reversed(self._offsets)):
            if index >= offset:
                return dataset[(index - offset) % len(dataset)]
        raise IndexError(index)


def _user(entry, seed):
    from sa2va.data.sources import UserDataset

    return UserDataset(_path(entry), root=entry.root or None, **entry.options)


READERS = {
    "synthetic": lambda entry, seed: ShapesDataset(seed=seed, **entry.options),
    "user": _user,
}


def _path(entry) -> Path:
    path = Path(entry.path)
    if not path.exists():
        raise Sa2VAConfigError(f"data file {path} ({entry.kind}) does not exist.")
    return path


def build_mixture(entries, seed: int = 0) -> RepeatedMixture:
    """One dataset per config entry, repeated as asked.

    Raises:
        Sa2VAConfigError: an unknown kind or a missing file.
    """
    parts = []
    for entry in entries:
        reader = READERS.get(entry.kind)
        if reader is None:
            raise Sa2VAConfigError(f"unknown data kind {entry.kind!r}; expected one of {', '.join(READERS)}.")
        parts.append((reader(entry, seed), entry.repeats))
    return RepeatedMixture(parts)


__all__ = ["build_mixture", "RepeatedMixture", "READERS"]
