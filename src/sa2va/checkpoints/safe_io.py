"""Reading and writing checkpoint tensors: safetensors (sharded or not), lazily, and atomically on write.

Pickle (`pytorch_model*.bin`) is refused unless the caller opts in with `allow_pickle=True`; even then it is read
with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import save_file

from sa2va.errors import Sa2VACheckpointError

SAFETENSORS_SINGLE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SINGLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


class CheckpointReader:
    """Lazy access to the tensors of a checkpoint folder: nothing is read until :meth:`get` asks for one tensor.

    Args:
        folder: a folder with `model.safetensors`, or `model.safetensors.index.json` and its shards (or, with
            `allow_pickle`, the `pytorch_model*.bin` equivalents).
        allow_pickle: accept pickle `.bin` files (read with `weights_only=True`).

    Raises:
        Sa2VACheckpointError: no weights, a shard named by the index is missing, a shard is truncated or corrupt, or
            only pickle files exist and `allow_pickle` is False.
    """

    def __init__(self, folder: str | os.PathLike, allow_pickle: bool = False):
        self.folder = Path(folder)
        self._where: dict[str, Path] = {}
        self._headers: dict[Path, tuple[dict, int]] = {}
        self._pickled: dict[Path, dict[str, torch.Tensor]] = {}
        if (self.folder / SAFETENSORS_INDEX).exists():
            self._read_index(self.folder / SAFETENSORS_INDEX)
        elif (self.folder / SAFETENSORS_SINGLE).exists():
            self._add_file(self.folder / SAFETENSORS_SINGLE)
        elif (self.folder / PICKLE_INDEX).exists() or (self.folder / PICKLE_SINGLE).exists():
            if not allow_pickle:
                raise Sa2VACheckpointError(
                    f"{self.folder} holds only pickle weights (pytorch_model*.bin), which can run arbitrary code when "
                    "loaded. Convert them to safetensors, or pass allow_pickle=True if you trust the source."
                )
            if (self.folder / PICKLE_INDEX).exists():
                self._read_index(self.folder / PICKLE_INDEX)
            else:
                self._add_file(self.folder / PICKLE_SINGLE)
        else:
            raise Sa2VACheckpointError(
                f"no weights in {self.folder}: expected {SAFETENSORS_SINGLE} or {SAFETENSORS_INDEX} with its shards."
            )

    def _read_index(self, index_path: Path) -> None:
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as error:
            raise Sa2VACheckpointError(f"{index_path} is not a valid checkpoint index: {error}") from error
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (self.folder / s).exists()]
        if missing:
            raise Sa2VACheckpointError(f"{index_path.name} lists shard(s) missing from {self.folder}: {missing}")
        for shard in shards:
            self._add_file(self.folder / shard)
        extra = set(weight_map) - set(self._where)
        if extra:
            raise Sa2VACheckpointError(
                f"{index_path.name} lists {len(extra)} tensor(s) its shards do not contain, e.g. {sorted(extra)[:3]}"
            )

    def _add_file(self, path: Path) -> None:
        if path.suffix == ".safetensors":
            header, data_start = _read_header(path)
            ends = [v["data_offsets"][1] for v in header.values()]
            expected = data_start + max(ends, default=0)
            if path.stat().st_size < expected:
                raise Sa2VACheckpointError(
                    f"{path} is truncated: {path.stat().st_size} bytes on disk, its header describes {expected}."
                )
            self._headers[path] = (header, data_start)
            keys = list(header)
        else:
            try:
                tensors = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as error:
                raise Sa2VACheckpointError(f"cannot read {path}: {error}") from error
            self._pickled[path] = tensors
            keys = list(tensors)
        for key in keys:
            self._where[key] = path

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def shape(self, key: str) -> tuple[int, ...]:
        path = self._where[key]
        if path in self._pickled:
            return tuple(self._pickled[path][key].shape)
        return tuple(self._headers[path][0][key]["shape"])

    def get(self, key: str) -> torch.Tensor:
        """One tensor, read from disk now into a fresh CPU tensor.

        Plain reads rather than a memory map: mapped pages count as resident memory until the file is closed,
        which would double the peak memory of loading a large checkpoint.
        """
        path = self._where[key]
        if path in self._pickled:
            return self._pickled[path][key]
        header, data_start = self._headers[path]
        info = header[key]
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise Sa2VACheckpointError(f"tensor {key!r} in {path} has unsupported dtype {info['dtype']}.")
        begin, end = info["data_offsets"]
        tensor = torch.empty(info["shape"], dtype=dtype)
        if tensor.numel() * tensor.element_size() != end - begin:
            raise Sa2VACheckpointError(f"tensor {key!r} in {path}: its byte range does not match its shape.")
        if end > begin:
            with open(path, "rb") as f:
                f.seek(data_start + begin)
                buffer = tensor.view(-1).view(torch.uint8).numpy()
                if f.readinto(buffer) != end - begin:
                    raise Sa2VACheckpointError(f"{path} ended before tensor {key!r} was read: the file is truncated.")
        return tensor

    def size_on_disk(self) -> int:
        """Bytes of all weight files."""
        return sum(p.stat().st_size for p in {*self._headers, *self._pickled})


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


def _read_header(path: Path) -> tuple[dict, int]:
    """The tensor table of a safetensors file and the offset where its data starts."""
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if header_len <= 0 or header_len > path.stat().st_size:
                raise ValueError(f"header length {header_len} does not fit the file")
            header = json.loads(f.read(header_len))
    except (ValueError, UnicodeDecodeError, OSError) as error:
        raise Sa2VACheckpointError(f"cannot read {path}: truncated or not a safetensors file ({error})") from error
    header.pop("__metadata__", None)
    return header, 8 + header_len


def write_safetensors(
    tensors: Iterator[tuple[str, torch.Tensor]],
    folder: Path,
    max_shard_bytes: int = 5 * 1024**3,
    metadata: dict[str, str] | None = None,
) -> list[str]:
    """Write `(name, tensor)` pairs as `model.safetensors`, or shards + index when larger than `max_shard_bytes`.

    Tensors are consumed one shard at a time, so at most one shard is held in memory.

    Returns:
        The names of the files written.
    """
    metadata = {"format": "pt", **(metadata or {})}
    current: dict[str, torch.Tensor] = {}
    size = 0
    written: list[tuple[str, list[str], int]] = []

    def flush() -> None:
        nonlocal current, size
        if not current:
            return
        name = f"shard-{len(written):05d}.tmp"
        save_file({k: v.contiguous() for k, v in current.items()}, str(folder / name), metadata=metadata)
        written.append((name, list(current), size))
        current, size = {}, 0

    for name, tensor in tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > max_shard_bytes:
            flush()
        current[name] = tensor
        size += nbytes
    flush()
    if len(written) == 1:
        os.replace(folder / written[0][0], folder / SAFETENSORS_SINGLE)
        return [SAFETENSORS_SINGLE]
    total = len(written)
    weight_map: dict[str, str] = {}
    names = []
    for i, (tmp_name, keys, _) in enumerate(written):
        final = f"model-{i + 1:05d}-of-{total:05d}.safetensors"
        os.replace(folder / tmp_name, folder / final)
        names.append(final)
        weight_map.update(dict.fromkeys(keys, final))
    index = {"metadata": {"total_size": sum(s for _, _, s in written)}, "weight_map": weight_map}
    (folder / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True))
    return [*names, SAFETENSORS_INDEX]


@contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to `target`; on success it replaces `target`, on failure it is removed.

    Raises:
        Sa2VACheckpointError: `target` exists and is a non-empty folder or a file.
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Sa2VACheckpointError(f"{target} already exists and is not an empty folder; choose a new destination.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()
    os.replace(staging, target)


__all__ = ["CheckpointReader", "write_safetensors", "atomic_folder"]
