"""Sa2VA's mask losses (REFERENCE_SPEC §7.2): BCE and Dice on uncertainty-sampled points of the low-res logits.

Point sampling follows Mask2Former: draw `oversample × N` random points, keep the `importance × N` most uncertain
(logit closest to 0) and fill the rest with fresh random points. BCE is averaged over objects × points (weight 2.0);
Dice `1 - (2 Σ p t + 1) / (Σ p + Σ t + 1)` over each object's points is averaged over objects (weight 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MaskLossConfig:
    num_points: int = 112 * 112  # 12,544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    bce_weight: float = 2.0
    dice_weight: float = 0.5


def point_sample(values: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of `(N, 1, h, w)` maps at `(N, P, 2)` xy coordinates in [0, 1] → `(N, P)`."""
    grid = 2.0 * coords[:, :, None, :] - 1.0  # (N, P, 1, 2) in [-1, 1]
    return F.grid_sample(values, grid, mode="bilinear", align_corners=False)[:, 0, :, 0]


def _uniform(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform draws from `generator` on its own device (a per-sample CPU generator also drives CUDA training)."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, device=where, generator=generator).to(device)


def uncertain_points(logits: torch.Tensor, config: MaskLossConfig, generator: torch.Generator | None) -> torch.Tensor:
    """`(N, P, 2)` sampling coordinates, most of them where `(N, 1, h, w)` logits are least certain."""
    n = logits.shape[0]
    num_sampled = int(config.num_points * config.oversample_ratio)
    coords = _uniform((n, num_sampled, 2), logits.device, generator)
    uncertainty = -point_sample(logits.detach(), coords).abs()  # (N, num_sampled)
    num_important = int(config.importance_sample_ratio * config.num_points)
    top = uncertainty.topk(num_important, dim=1).indices  # (N, k)
    important = torch.gather(coords, 1, top[..., None].expand(-1, -1, 2))
    num_random = config.num_points - num_important
    random = _uniform((n, num_random, 2), logits.device, generator)
    return torch.cat([important, random], dim=1)


def mask_losses(
    logits: torch.Tensor, targets: torch.Tensor, config: MaskLossConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted BCE and Dice of predicted mask logits against binary targets.

    Args:
        logits: `(num_objects, h, w)` low-res mask logits.
        targets: `(num_objects, h, w)` {0, 1} targets at the same size (resized with nearest by the caller).
        config: point counts and weights.
        generator: RNG of the random point draws.

    Returns:
        `(bce_weight × BCE, dice_weight × Dice)`, both scalars.
    """
    logits = logits[:, None].float()
    coords = uncertain_points(logits, config, generator)
    point_logits = point_sample(logits, coords)  # (N, P)
    point_targets = point_sample(targets[:, None].float(), coords)
    bce = F.binary_cross_entropy_with_logits(point_logits, point_targets, reduction="mean")
    probs = point_logits.sigmoid()
    dice = 1 - (2 * (probs * point_targets).sum(1) + 1) / (probs.sum(1) + point_targets.sum(1) + 1)
    return config.bce_weight * bce, config.dice_weight * dice.mean()


def fit_object_count(
    embeddings: torch.Tensor, targets: torch.Tensor, count: int = 5, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's five-objects rule: truncate to the shorter list, then exactly `count` pairs.

    More pairs: a random subset without replacement; fewer: tiled.

    Args:
        embeddings: `(n_seg, 256)` prompts.
        targets: `(n_mask, ...)` their masks.
    """
    n = min(embeddings.shape[0], targets.shape[0])
    embeddings, targets = embeddings[:n], targets[:n]
    if n > count:
        keep = torch.randperm(n, generator=generator)[:count].to(embeddings.device)
        return embeddings[keep], targets[keep]
    if n < count:
        repeat = torch.arange(count, device=embeddings.device) % n
        return embeddings[repeat], targets[repeat]
    return embeddings, targets


__all__ = ["MaskLossConfig", "mask_losses", "point_sample", "uncertain_points", "fit_object_count"]
