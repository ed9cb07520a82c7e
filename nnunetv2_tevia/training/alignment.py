"""Foreground-to-text alignment (TeViA section 3), as pure functions.

The visual side is the last decoder feature map, detached and multiplied by the ground-truth
foreground, mapped without parameters to one vector per guided stage. Because it is detached,
``alignment_loss`` trains only the text projections and prompts: the foreground supervises the text.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


def alignment_grid(channels: int, ndim: int, max_grid: Optional[int] = None) -> Tuple[int, int]:
    """Split a stage's channel count C_s into a spatial grid g (per axis) and c channels with g**ndim * c == C_s.

    The largest grid wins, because the grid is what carries location ("upper left") into the vector.
    The reference's 768 = 16x16x3, 384 = 8x8x6 and 192 = 8x8x3 are what this gives in 2D with max_grid 16
    (for 384 it picks 8x8x6 since 16x16 does not divide 384).
    """
    max_grid = (16 if ndim == 2 else 8) if max_grid is None else max_grid
    for g in range(max_grid, 0, -1):
        if channels % (g ** ndim) == 0:
            return g, channels // (g ** ndim)
    return 1, channels


def foreground_mask(target: torch.Tensor, has_regions: bool, ignore_label: Optional[int]) -> torch.Tensor:
    """The union of all foreground labels (regions: any region), ignore-label voxels excluded. (B, 1, *S) float.

    ``target`` is nnU-Net's full-resolution target: label map (B, 1, *S), or region one-hot (B, R, *S) whose
    last channel is the ignore mask when an ignore label is set.
    """
    if has_regions:
        if ignore_label is not None:
            regions, ignore = target[:, :-1], target[:, -1:].bool()
            return (regions.bool().any(1, keepdim=True) & ~ignore).float()
        return target.bool().any(1, keepdim=True).float()
    fg = target > 0
    if ignore_label is not None:
        fg &= target != ignore_label
    return fg.float()


def foreground_vectors(features: torch.Tensor, fg_mask: torch.Tensor, channels: int
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Map masked features (B, C0, *S) to (B, channels) vectors without parameters.

    Returns the vectors and a (B,) bool tensor that is False for samples with an empty foreground:
    their vector is zero and cosine is undefined, so callers leave them out.
    """
    ndim = features.ndim - 2
    g, c = alignment_grid(channels, ndim)
    masked = features.detach().float() * fg_mask.float()
    pooled = F.adaptive_avg_pool1d(masked.flatten(2), 1) if g == 1 else \
        getattr(F, f"adaptive_avg_pool{ndim}d")(masked, (g,) * ndim).flatten(2)  # (B, C0, g^d)
    b, c0, cells = pooled.shape
    # resize the channel axis C0 -> c per grid cell by area averaging: every channel contributes (a linear
    # resize from 32 to 2 channels would keep only the first and the last)
    per_cell = pooled.transpose(1, 2).reshape(b * cells, 1, c0)
    per_cell = F.adaptive_avg_pool1d(per_cell, c) if c0 != c else per_cell
    vectors = per_cell.reshape(b, cells * c)
    valid = fg_mask.flatten(1).sum(1) > 0
    return vectors, valid


def alignment_loss(text_vectors: Sequence[torch.Tensor], visual_vectors: Sequence[torch.Tensor],
                   valid: torch.Tensor) -> torch.Tensor:
    """mean over stages of mean over valid samples of (1 - cos(text_s, vis_s)); 0 (with grad) if none is valid."""
    per_stage = []
    for t, v in zip(text_vectors, visual_vectors):
        cos = F.cosine_similarity(t.float(), v.float().detach(), dim=1)
        per_stage.append(((1 - cos) * valid.float()).sum() / valid.float().sum().clamp_min(1))
    return torch.stack(per_stage).mean()
