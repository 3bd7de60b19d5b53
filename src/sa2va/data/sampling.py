"""The training mixture: datasets concatenated with repeats, and a sampler that never mixes images and videos in a
batch (the reference's `ConcatDataset` + `LengthGroupedSampler` on `modality_length`, REFERENCE_SPEC §7.3-7.4).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from sa2va.data.records import IMAGE_MODALITY_LENGTH
from sa2va.data.sample import TrainingSample
from sa2va.errors import Sa2VAConfigError

logger = logging.getLogger(__name__)


class SampleSource(Protocol):
    """What a mixture part must offer: `len()` and `[i] -> TrainingSample`. Optional: `sample(i, draw)` for
    independent re-draws of repeated items, and `modality_lengths` (one grouping key per item)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> TrainingSample: ...


class MixtureDataset:
    """Datasets concatenated, each repeated `repeats` times per epoch (fractions allowed, e.g. 0.5 or 2.5).

    Global index `j` of a part with `n` items maps to item `j % n` for the whole copies; the fractional remainder takes
    a seeded random subset of the items (without replacement), as the reference's index mapping. Each copy of an item
    is a separate draw of its random choices (`dataset.sample(i, draw)` when the dataset offers it, with `draw` = the
    copy number plus an offset per epoch), so RefCOCO ×5 gives five different dialogues per image.

    Args:
        parts: `(dataset, repeats)` pairs, `repeats >= 0`.
        seed: seeds the fractional subsets.

    Raises:
        Sa2VAConfigError: a negative or non-finite `repeats`.
    """

    def __init__(self, parts: Sequence[tuple[SampleSource, float]], seed: int = 0) -> None:
        self.parts = list(parts)
        self.seed = seed
        self.epoch = 0
        self._sizes: list[int] = []
        self._subsets: list[np.ndarray] = []
        for position, (dataset, repeats) in enumerate(self.parts):
            if not isinstance(repeats, (int, float)) or not math.isfinite(repeats) or repeats < 0:
                raise Sa2VAConfigError(f"repeats of mixture part {position} must be a number >= 0, got {repeats!r}.")
            n = len(dataset)
            remainder = int(n * repeats) - n * math.floor(repeats)
            self._sizes.append(int(n * repeats))
            subset = np.random.default_rng((seed, position)).permutation(n)[:remainder] if remainder else np.empty(0)
            self._subsets.append(subset.astype(np.int64))
        self._offsets = np.cumsum([0, *self._sizes])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of `epoch` (each epoch re-draws every repeated item)."""
        self.epoch = epoch

    def locate(self, index: int) -> tuple[int, int, int]:
        """`(part, item, draw)` of global `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"mixture index {index} out of range for {len(self)} items.")
        part = int(np.searchsorted(self._offsets, index, side="right")) - 1
        dataset, repeats = self.parts[part]
        n = len(dataset)
        j = index - int(self._offsets[part])
        copies = math.floor(repeats)
        copy, item = divmod(j, n)
        if copy >= copies:  # the fractional remainder
            item = int(self._subsets[part][j - copies * n])
        return part, item, self.epoch * (copies + 1) + copy

    def __getitem__(self, index: int) -> TrainingSample:
        part, item, draw = self.locate(int(index))
        dataset = self.parts[part][0]
        sample = getattr(dataset, "sample", None)
        return sample(item, draw) if callable(sample) else dataset[item]

    @property
    def modality_lengths(self) -> list[int]:
        """Grouping key of every global index, from each part's `modality_lengths` (100 when a part has none)."""
        lengths: list[int] = []
        for part, (dataset, repeats) in enumerate(self.parts):
            own: Any = getattr(dataset, "modality_lengths", None)
            if own is None:
                logger.debug("mixture part %d (%s) has no modality_lengths; treating it as images", part, dataset)
                own = [IMAGE_MODALITY_LENGTH] * len(dataset)
            own = np.asarray(own, dtype=np.int64)
            items = np.concatenate([np.tile(np.arange(len(dataset)), math.floor(repeats)), self._subsets[part]])
            lengths.extend(own[items.astype(np.int64)].tolist())
        return lengths


class LengthGroupedSampler:
    """Indices in batches whose items share one `modality_length` (images 100, videos 10000, Ref-SAV 20000), so a
    batch never mixes images and videos.

    Per epoch: each group is shuffled and cut into batches of `batch_size`; a group's last, short batch is filled up
    with items of the same group from the start of its shuffled order (or dropped with `drop_last`); then all batches
    are shuffled together. Iterating yields the batches back to back, so a `DataLoader(batch_size=batch_size)` over
    this sampler gets exactly these batches. Deterministic per `(seed, epoch)`.

    Args:
        lengths: grouping key per dataset index (e.g. `MixtureDataset.modality_lengths`).
        batch_size: items per batch (per process and micro-batch).
        seed: shuffling seed.
        drop_last: drop each group's short last batch instead of filling it.

    Raises:
        Sa2VAConfigError: `batch_size < 1`.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, drop_last: bool = False) -> None:
        if batch_size < 1:
            raise Sa2VAConfigError(f"batch_size must be >= 1, got {batch_size}.")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.seed, self.drop_last = batch_size, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle as epoch `epoch`."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches, each `batch_size` indices of one length group."""
        rng = np.random.default_rng((self.seed, self.epoch))
        batches: list[list[int]] = []
        for key in np.unique(self.lengths):  # sorted keys: the draw order does not depend on dict order
            members = rng.permutation(np.flatnonzero(self.lengths == key))
            full, rest = divmod(len(members), self.batch_size)
            for b in range(full):
                batches.append(members[b * self.batch_size : (b + 1) * self.batch_size].tolist())
            if rest and not self.drop_last:
                tail = members[full * self.batch_size :]
                filler = np.resize(members, self.batch_size - rest)  # cycles when the group is smaller than a batch
                batches.append(np.concatenate([tail, filler]).tolist())
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        total = 0
        for key in np.unique(self.lengths):
            full, rest = divmod(int((self.lengths == key).sum()), self.batch_size)
            total += (full + (1 if rest and not self.drop_last else 0)) * self.batch_size
        return total


__all__ = ["MixtureDataset", "LengthGroupedSampler", "SampleSource"]
