"""Build the training mixture named by a training config's `data` list (one reader per `kind`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sa2va.data import sources
from sa2va.data.sampling import MixtureDataset
from sa2va.data.synthetic import ShapesDataset
from sa2va.errors import Sa2VAConfigError


def _option(entry, name: str):
    if name not in entry.options:
        raise Sa2VAConfigError(f"data kind {entry.kind!r} needs options.{name} (see docs/data_format.md).")
    return entry.options[name]


def _rest(entry, *used: str) -> dict:
    return {k: v for k, v in entry.options.items() if k not in used}


# kind -> (entry, seed) -> dataset. `path` is the main annotation file, `root` the image / frame / video folder.
READERS: dict[str, Callable] = {
    "synthetic": lambda e, seed: ShapesDataset(seed=seed, **e.options),
    "user": lambda e, seed: sources.UserDataset(_path(e), root=e.root or None, seed=seed, **e.options),
    "refcoco": lambda e, seed: sources.RefCOCODataset(
        _path(e), _option(e, "instances_json"), e.root, seed=seed, **_rest(e, "instances_json")
    ),
    "refvos": lambda e, seed: sources.RefVOSDataset(
        _path(e), _option(e, "mask_dict"), e.root, seed=seed, **_rest(e, "mask_dict")
    ),
    "refsav": lambda e, seed: sources.RefSAVDataset(_path(e), e.root, seed=seed, **e.options),
    "llava": lambda e, seed: sources.LLaVADataset(_path(e), e.root, seed=seed, **e.options),
    "videoqa": lambda e, seed: sources.VideoQADataset(_path(e), e.root, seed=seed, **e.options),
    "gcg": lambda e, seed: sources.GCGDataset(_path(e), e.root, seed=seed, **e.options),
    "osprey": lambda e, seed: sources.OspreyDataset(_path(e), e.root, seed=seed, **e.options),
    "finetune": lambda e, seed: sources.FinetuneDataset(_path(e), e.root, seed=seed, **e.options),
    "scenes": lambda e, seed: _scenes(e, seed),
}


def _scenes(entry, seed: int):
    """Scenes-world training data: written under `root` in the user format (once), then read as `user` data.

    Options: `num_images`, `num_videos`, `first_seed`, the conversation shape (`refer_turns`, `qa_turns`,
    `gcg_share`, `name_share`: see `sa2va.data.scenes_dataset.training_record`) and the `UserDataset` ones (`num_frames`, ...).
    """
    from sa2va.data.scenes_dataset import write_scenes

    options = dict(entry.options)
    names = ("num_images", "num_videos", "first_seed", "refer_turns", "qa_turns", "gcg_share", "name_share")
    generation = {k: options.pop(k) for k in names if k in options}
    root = write_scenes(entry.root or "data/scenes_train", "train", **generation)
    return sources.UserDataset(root / "train.jsonl", root=root, seed=seed, **options)


def _path(entry) -> Path:
    path = Path(entry.path)
    if not path.exists():
        raise Sa2VAConfigError(f"data file {path} ({entry.kind}) does not exist.")
    return path


def build_mixture(entries, seed: int = 0) -> MixtureDataset:
    """One dataset per config entry, repeated as asked.

    Raises:
        Sa2VAConfigError: an unknown kind, a missing file or a missing required option.
    """
    parts = []
    for entry in entries:
        reader = READERS.get(entry.kind)
        if reader is None:
            raise Sa2VAConfigError(f"unknown data kind {entry.kind!r}; expected one of {', '.join(READERS)}.")
        parts.append((reader(entry, seed), entry.repeats))
    return MixtureDataset(parts, seed=seed)


__all__ = ["build_mixture", "READERS"]
