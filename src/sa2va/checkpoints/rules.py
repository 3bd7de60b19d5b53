"""The unit of checkpoint conversion: a `KeyRule` ties tensors of the official layout to tensors of ours.

Most rules are renames (one official key ↔ one native key). A few reshape: InternViT's fused `qkv` ↔ `q/k/v`,
InternLM2's interleaved `wqkv` ↔ `q/k/v`, SAM2's four `point_embeddings.i` ↔ one `point_embed`, SAM2's single Fourier
matrix ↔ the two transformers copies. Every rule converts in both directions, so official → native → official is
bit-identical and every key on either side is accounted for exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensors = list[torch.Tensor]


def _identity(tensors: Tensors) -> Tensors:
    return tensors


@dataclass(frozen=True)
class KeyRule:
    """Official tensors ↔ native tensors.

    Attributes:
        official: keys in the official (reference / Hub) checkpoint, in the order `to_native` takes them.
        native: keys of `Sa2VAModel.state_dict()` (prefixes `mllm.`, `sam2.`, `text_hidden_fcs.`), in the order
            `to_native` returns them.
        to_native: official tensors → native tensors (default: unchanged, one to one).
        to_official: native tensors → official tensors (default: unchanged, one to one).
    """

    official: tuple[str, ...]
    native: tuple[str, ...]
    to_native: Callable[[Tensors], Tensors] = _identity
    to_official: Callable[[Tensors], Tensors] = _identity


def rename(official: str, native: str) -> KeyRule:
    """A one-to-one rule that only renames."""
    return KeyRule((official,), (native,))


__all__ = ["KeyRule", "Tensors", "rename"]
