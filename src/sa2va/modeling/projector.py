"""`text_hidden_fcs`: the LLM hidden state of a `[SEG]` token projected to SAM2's 256-d prompt space."""

from __future__ import annotations

from torch import nn


def build_text_hidden_fcs(hidden_size: int, prompt_dim: int = 256) -> nn.Sequential:
    """Linear(D, D) → ReLU → Linear(D, 256) → Dropout(0), as the reference (REFERENCE_SPEC §1.7).

    A plain `nn.Sequential` keeps the checkpoint key names `text_hidden_fcs.{0,2}.{weight,bias}`.

    Args:
        hidden_size: the LLM hidden size D.
        prompt_dim: SAM2's prompt width (256).

    Returns:
        A module mapping `(..., D)` to `(..., prompt_dim)`.
    """
    return nn.Sequential(
        nn.Linear(hidden_size, hidden_size),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_size, prompt_dim),
        nn.Dropout(0.0),
    )


__all__ = ["build_text_hidden_fcs"]
