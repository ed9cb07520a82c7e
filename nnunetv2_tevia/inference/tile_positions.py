"""Where each sliding-window tile lies in its image, in the image's own [0, 1] coordinates.

The trainer gives every training patch its position in the image (training/patch_position.py); at inference
each tile gets its own the same way, so that "upper left" means the upper left of the image in a tile too.
nnU-Net pads an image smaller than the patch, centring the content (the odd voxel of padding after it).

nnU-Net's sliding window cuts the tiles in a producer thread and hands each forward the tile alone; how each tile
carries the box of its own slicer to its forward is nnunet_seam.tiles_carry_boxes.
"""
from typing import Sequence

import torch


def tile_box(slicer: tuple, padded_shape: Sequence[int], image_shape: Sequence[int]) -> torch.Tensor:
    """The (ndim, 2) box of one slicer of nnU-Net's sliding window: each spatial axis's first and last voxel,
    divided by (image size - 1). ``slicer[0]`` is the channel axis; an int entry (a 2D configuration's slice index)
    is not an axis of the patch."""
    before = [(p - s) // 2 for p, s in zip(padded_shape, image_shape)]
    box = [[(s.start - before[i]) / max(image_shape[i] - 1, 1), (s.stop - 1 - before[i]) / max(image_shape[i] - 1, 1)]
           for i, s in enumerate(slicer[1:]) if isinstance(s, slice)]
    return torch.tensor(box, dtype=torch.float32)
