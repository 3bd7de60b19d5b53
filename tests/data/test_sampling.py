"""`MixtureDataset` (repeats, independent draws) and `LengthGroupedSampler` (pure-modality batches)."""

from __future__ import annotations

import pytest

from sa2va.data.sample import TrainingSample, Turn
from sa2va.data.sampling import LengthGroupedSampler, MixtureDataset
from sa2va.errors import Sa2VAConfigError


class _Toy:
    """Items record their own index and draw."""

    def __init__(self, name: str, size: int, length: int) -> None:
        self.name, self.size, self.length = name, size, length

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> TrainingSample:
        return self.sample(index)

    def sample(self, index: int, draw: int = 0) -> TrainingSample:
        return TrainingSample([Turn(f"{self.name}:{index}", str(draw))])

    @property
    def modality_lengths(self) -> list[int]:
        return [self.length] * self.size


class _Plain:
    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> TrainingSample:
        return TrainingSample([Turn(f"plain:{index}", "")])


def _key(sample: TrainingSample) -> tuple[str, str]:
    return sample.conversation[0].user, sample.conversation[0].assistant


def test_mixture_repeats_and_draws():
    images, videos = _Toy("img", 4, 100), _Toy("vid", 4, 10000)
    mixture = MixtureDataset([(images, 2), (videos, 0.5), (_Plain(), 1)], seed=0)
    assert len(mixture) == 8 + 2 + 3
    keys = [_key(mixture[i]) for i in range(len(mixture))]
    assert keys[:8] == [(f"img:{i % 4}", str(i // 4)) for i in range(8)]  # two copies, two draws
    half = keys[8:10]
    assert len({k[0] for k in half}) == 2 and all(k[0].startswith("vid:") for k in half)
    assert keys[10:] == [("plain:0", ""), ("plain:1", ""), ("plain:2", "")]
    assert mixture.modality_lengths == [100] * 8 + [10000] * 2 + [100] * 3
    mixture.set_epoch(1)
    assert _key(mixture[0]) == ("img:0", "3")  # a new epoch re-draws
    again = MixtureDataset([(images, 2), (videos, 0.5), (_Plain(), 1)], seed=0)
    assert [_key(again[i]) for i in range(8, 10)] == half  # the fractional subset is seeded
    with pytest.raises(IndexError):
        mixture[len(mixture)]
    with pytest.raises(Sa2VAConfigError):
        MixtureDataset([(images, -1)])


def test_length_grouped_sampler_never_mixes_modalities():
    lengths = [100] * 11 + [10000] * 7 + [20000] * 2
    sampler = LengthGroupedSampler(lengths, batch_size=4, seed=3)
    batches = sampler.batches()
    assert all(len(b) == 4 and len({lengths[i] for i in b}) == 1 for b in batches)
    covered = {i for b in batches for i in b}
    assert covered == set(range(len(lengths)))  # short tails are filled, nothing is lost
    flat = list(sampler)
    assert len(flat) == len(sampler) == 4 * len(batches)
    assert [flat[k : k + 4] for k in range(0, len(flat), 4)] == batches  # DataLoader chunks give these batches
    assert LengthGroupedSampler(lengths, 4, seed=3).batches() == batches  # deterministic per (seed, epoch)
    sampler.set_epoch(1)
    assert sampler.batches() != batches
    dropped = LengthGroupedSampler(lengths, batch_size=4, seed=3, drop_last=True)
    assert len(dropped) == 4 * (2 + 1 + 0) and all(len({lengths[i] for i in b}) == 1 for b in dropped.batches())
    with pytest.raises(Sa2VAConfigError):
        LengthGroupedSampler(lengths, 0)
