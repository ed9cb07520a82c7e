"""Augmentation that keeps location words true: no mirroring and small rotations.

Reports name sides and zones ("lower left lung"). nnU-Net mirrors along every axis and rotates 2D patches by up
to 180 degrees, which pairs a flipped image with unflipped text and teaches the network that "left" means either
side. The scaling range is nnU-Net's (0.85-1.25 of the patch for the initial crop).
"""
from typing import Sequence, Tuple

import numpy as np
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size


def location_safe_rotation(rotation: Tuple[float, float], dummy_2d: bool, patch_size: Sequence[int],
                           max_degrees: float) -> Tuple[Tuple[float, float], list]:
    """nnU-Net's rotation range clipped to +-max_degrees, and the initial patch size that range needs."""
    limit = np.deg2rad(max_degrees)
    rotation = (max(rotation[0], -limit), min(rotation[1], limit))
    dim = len(patch_size)
    initial_patch_size = get_patch_size(patch_size[-dim:], rotation, rotation, rotation, (0.85, 1.25))
    if dummy_2d:
        initial_patch_size[0] = patch_size[0]
    return rotation, initial_patch_size
