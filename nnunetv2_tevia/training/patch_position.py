"""Where each training patch lies in its image, so that location words mean the same in a patch as in the image.

nnU-Net's data loader crops each sample around a box it draws (``get_bbox``) and then augments the crop; the
network sees the centre ``final_patch_size`` of it. ``PatchBoxLoader`` records the boxes and adds
``batch['patch_box']``: per sample and axis, the final patch's first and last voxel in the case's own [0, 1]
coordinates (of nnU-Net's preprocessed, cropped-to-nonzero image). Rotation and scaling of the augmentation
are not undone: they move a position by at most the augmentation's own range.
"""
from typing import List, Sequence, Tuple

import numpy as np
import torch
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader


def patch_boxes(boxes: Sequence[Tuple[Sequence[int], Sequence[int], Sequence[int]]],
                final_patch_size: Sequence[int]) -> torch.Tensor:
    """(lower bounds, upper bounds, image shape) of each drawn box -> (B, ndim, 2): the centred final patch's first and
    last voxel, divided by (image size - 1) per axis (an axis of size 1 maps to 0)."""
    out = []
    for lbs, ubs, shape in boxes:
        lbs, ubs, shape = (np.asarray(v, dtype=np.float64) for v in (lbs, ubs, shape))
        centre = (lbs + ubs - 1) / 2
        half = (np.asarray(final_patch_size, dtype=np.float64) - 1) / 2
        scale = np.maximum(shape - 1, 1)
        out.append(np.stack(((centre - half) / scale, (centre + half) / scale), axis=1))
    return torch.from_numpy(np.stack(out)).float()


class PatchBoxLoader(nnUNetDataLoader):
    """nnU-Net's data loader, unchanged, plus ``batch['patch_box']``."""

    def get_bbox(self, data_shape, force_fg, class_locations, overwrite_class=None, verbose=False):
        lbs, ubs = super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)
        self._boxes.append((lbs, ubs, data_shape))
        return lbs, ubs

    def generate_train_batch(self):
        self._boxes: List = []
        batch = super().generate_train_batch()
        boxes = patch_boxes(self._boxes, self.final_patch_size)
        # a 2D configuration loads (1, x, y) cases and drops the singleton axis from the patch
        batch["patch_box"] = boxes[:, 1:] if self.patch_size_was_2d else boxes
        return batch
