"""Axis and box maths of text-consistent mirroring (issue 13), shared by training and prediction.

The word map counts the spatial axes of the image as nnU-Net's reader returns it from the file (2 for a 2D dataset:
row, column; 3 for a 3D one, e.g. SimpleITK's z, y, x), so that a prompt file can be written before planning.
nnU-Net's preprocessing then transposes the axes (the plans' ``transpose_forward``), and a patch of a 2D
configuration on a 3D dataset has one axis fewer: ``patch_map_axes`` translates patch axes to map axes once,
for training and prediction alike. Which flips there are is prompts/mirror_words.flip_combinations.
"""
from typing import Sequence, Tuple

import torch


def image_ndim(plans: dict) -> int:
    """2 for a 2D dataset (nnU-Net stores its images as (c, 1, x, y)), else 3."""
    shape = plans.get("original_median_shape_after_transp") or [0, 0, 0]
    return 2 if shape[0] == 1 else 3


def patch_map_axes(plans: dict, patch_ndim: int) -> Tuple[int, ...]:
    """For each patch axis, the word map's axis (the file's axis) it shows.

    Preprocessed axis j (of the three nnU-Net keeps, a 2D image being (1, rows, columns)) is the file's axis
    ``transpose_forward[j]``; a patch with fewer axes covers the last ones; a 2D dataset's map has no dummy axis."""
    transpose = list(plans.get("transpose_forward") or range(3))
    first = len(transpose) - patch_ndim
    dummy = len(transpose) - image_ndim(plans)
    return tuple(int(transpose[first + k]) - dummy for k in range(patch_ndim))


def mirrorable_patch_axes(map_axes: Sequence[int], patch_to_map: Sequence[int]) -> Tuple[int, ...]:
    """The patch axes that a word map covers: the ones that may be flipped together with the text."""
    return tuple(k for k, m in enumerate(patch_to_map) if m in set(map_axes))


def covered_map_axes(patch_axes: Sequence[int], patch_to_map: Sequence[int],
                     map_axes: Sequence[int]) -> Tuple[int, ...]:
    """Flipped patch axes -> the map axes among them that the word map covers, sorted (what selects a text
    variant); the one translation used by training (per sample) and by test-time mirroring (per flip)."""
    covered = set(map_axes)
    return tuple(sorted(patch_to_map[a] for a in patch_axes if patch_to_map[a] in covered))


def mirror_boxes(boxes: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """(B, ndim, 2) boxes of patches flipped along ``flipped`` (bool (B, ndim)): (lo, hi) becomes (1 - hi, 1 - lo),
    the flipped patch's first and last voxel in the flipped image's [0, 1] coordinates."""
    mirrored = 1 - boxes.flip(-1)
    return torch.where(flipped[..., None].to(boxes.device), mirrored, boxes)
