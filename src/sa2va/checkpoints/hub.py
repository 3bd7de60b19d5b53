"""Where a checkpoint lives: a local folder, a released model name, or a Hugging Face Hub id."""

from __future__ import annotations

import os
from pathlib import Path

from sa2va.errors import Sa2VACheckpointError

# The released checkpoints (ByteDance on the Hub), by the short names users type.
RELEASED = {
    name: f"ByteDance/{name}"
    for name in (
        "Sa2VA-1B",
        "Sa2VA-4B",
        "Sa2VA-8B",
        "Sa2VA-26B",
        "Sa2VA-InternVL3-2B",
        "Sa2VA-InternVL3-8B",
        "Sa2VA-InternVL3-14B",
        "Sa2VA-Qwen2_5-VL-3B",
        "Sa2VA-Qwen2_5-VL-7B",
        "Sa2VA-Qwen3-VL-4B",
    )
}

# The model bundled inside the package (trained by `sa2va train configs/tiny_scenes.yaml`), used when no model is named.
DEFAULT_MODEL = "sa2va-tiny"
EMBEDDED = {DEFAULT_MODEL: Path(__file__).resolve().parent.parent / "assets" / "sa2va-tiny"}

# Files a checkpoint needs; never `*.py` (remote code is never run) and pickle only on request.
_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


def resolve_checkpoint(name_or_path: str | os.PathLike, allow_pickle: bool = False) -> Path:
    """A local folder holding the checkpoint: the path itself, or a Hub snapshot downloaded on demand.

    Args:
        name_or_path: a folder, the embedded model's id (`sa2va-tiny`), a released name (e.g. `Sa2VA-4B`) or a Hub
            id (`ByteDance/Sa2VA-4B`).
        allow_pickle: also fetch `*.bin` files.

    Raises:
        Sa2VACheckpointError: the folder does not exist, or the Hub cannot be reached (offline mode included),
            with a message saying how to point at a local copy instead.
    """
    name = str(name_or_path)
    if name in EMBEDDED:
        if not (EMBEDDED[name] / "config.json").is_file():
            raise Sa2VACheckpointError(
                f"the embedded model {name!r} is missing from this install ({EMBEDDED[name]}); reinstall sa2va or "
                "train it with `sa2va train --config configs/tiny_scenes.yaml`."
            )
        return EMBEDDED[name]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    repo_id = RELEASED.get(name, name)
    if path.exists() or repo_id.count("/") != 1 or name.startswith((".", "/", "~")):
        raise Sa2VACheckpointError(
            f"{name!r} is neither a checkpoint folder nor a Hub id (owner/name) nor a released model "
            f"({', '.join(RELEASED)})."
        )
    from huggingface_hub import snapshot_download

    patterns = [*_PATTERNS, "*.bin"] if allow_pickle else _PATTERNS
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as error:  # offline mode, no network, unknown repo, gated repo: all end here
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        how = (
            f"download it where the Hub is reachable (`huggingface-cli download {repo_id} --local-dir DIR`), copy "
            "DIR here and pass the folder path instead"
        )
        state = "HF_HUB_OFFLINE is set" if offline else f"the Hub could not be reached ({type(error).__name__}: {error})"
        raise Sa2VACheckpointError(f"cannot fetch {repo_id!r}: {state}. To use it, {how}.") from error


__all__ = ["DEFAULT_MODEL", "EMBEDDED", "RELEASED", "resolve_checkpoint"]
