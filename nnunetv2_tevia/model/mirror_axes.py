"""Axis and box maths of text-consistent mirroring (issue 13), shared by training and prediction.

The word map counts the spatial axes of the preprocessed image (2 for a 2D dataset, 3 for a 3D one); a patch of a
2D configuration on a 3D dataset has one axis fewer, so patch axis k is map axis k + 1 there.
"""
import itertools
from typing import List, Sequence, Tuple

import torch


def image_ndim(plans: dict) -> int:
    """2 for a 2D dataset (nnU-Net stores its images as (c, 1, x, y)), else 3."""
    shape = plans.get("original_median_shape_after_transp") or [0, 0, 0]
    return 2 if shape[0] == 1 else 3


def axis_offset(plans: dict, patch_ndim: int) -> int:
    """Map axis = patch axis + this."""
    return max(0, image_ndim(plans) - patch_ndim)


def mirrorable_patch_axes(map_axes: Sequence[int], offset: int, patch_ndim: int) -> Tuple[int, ...]:
    """The patch axes that a word map covers: the ones that may be flipped together with the text."""
    return tuple(k for k in range(patch_ndim) if k + offset in set(map_axes))


def covered_map_axes(patch_axes: Sequence[int], offset: int, map_axes: Sequence[int]) -> Tuple[int, ...]:
    """Flipped patch axes -> the map axes among them that the word map covers (what selects a text variant);
    the one translation used by training (per sample) and by test-time mirroring (per flip)."""
    covered = set(map_axes)
    return tuple(a + offset for a in patch_axes if a + offset in covered)


def flip_combinations(axes: Sequence[int]) -> List[Tuple[int, ...]]:
    """Every non-empty combination of ``axes``, in nnU-Net's test-time order."""
    return [c for r in range(1, len(axes) + 1) for c in itertools.combinations(axes, r)]


def mirror_boxes(boxes: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """(B, ndim, 2) boxes of patches flipped along ``flipped`` (bool (B, ndim)): (lo, hi) becomes (1 - hi, 1 - lo),
    the flipped patch's first and last voxel in the flipped image's [0, 1] coordinates."""
    mirrored = 1 - boxes.flip(-1)
    return torch.where(flipped[..., None].to(boxes.device), mirrored, boxes)
