"""Where each sliding-window tile lies in its image, in the image's own [0, 1] coordinates.

The trainer gives every training patch its position in the image (training/patch_position.py); at inference
each tile gets its own the same way, so that "upper left" means the upper left of the image in a tile too.
nnU-Net pads an image smaller than the patch, centring the content (the odd voxel of padding after it).

nnU-Net's sliding window cuts the tiles in a producer thread and hands each forward the tile alone. Within
``boxes_travel_with_tiles``, every tile is tagged with the box of its own slicer as nnU-Net puts the pair on its
queue, so the box goes wherever the tile goes, whatever the order of the forwards; a tensor that the window did not
cut (say, tiles stacked into one batch) has no box, and ``box_of_tile`` refuses it.
"""
from contextlib import contextmanager
from functools import partial
from queue import Queue
from typing import Sequence
from unittest import mock

import nnunetv2.inference.predict_from_raw_data as nnunet_predictor_module
import torch

from nnunetv2_tevia.errors import TeViAError

TILE_BOX = "tevia_tile_box"  # the attribute a tile carries its box in


class TilePositionError(TeViAError):
    """A forward of the sliding window reached the network without its tile's position."""


def tile_box(slicer: tuple, padded_shape: Sequence[int], image_shape: Sequence[int]) -> torch.Tensor:
    """The (ndim, 2) box of one slicer of nnU-Net's sliding window: each spatial axis's first and last voxel,
    divided by (image size - 1). ``slicer[0]`` is the channel axis; an int entry (a 2D configuration's slice index)
    is not an axis of the patch."""
    before = [(p - s) // 2 for p, s in zip(padded_shape, image_shape)]
    box = [[(s.start - before[i]) / max(image_shape[i] - 1, 1), (s.stop - 1 - before[i]) / max(image_shape[i] - 1, 1)]
           for i, s in enumerate(slicer[1:]) if isinstance(s, slice)]
    return torch.tensor(box, dtype=torch.float32)


class _TaggingQueue(Queue):
    """nnU-Net's tile queue (``queue.Queue``); each (tile, slicer) put on it tags the tile with its (1, ndim, 2) box."""

    def __init__(self, maxsize: int = 0, *, box_of):
        super().__init__(maxsize)
        self.box_of = box_of

    def put(self, item, block=True, timeout=None):
        if isinstance(item, tuple):  # (tile, slicer); a string marks the end
            setattr(item[0], TILE_BOX, self.box_of(item[1])[None])
        super().put(item, block, timeout)


@contextmanager
def boxes_travel_with_tiles(padded_shape: Sequence[int], image_shape: Sequence[int]):
    """Around nnU-Net's ``_internal_predict_sliding_window_return_logits``, which builds its queue by the module's
    name ``Queue``: swapped for the call, as the trainer swaps nnU-Net's loader (nnUNetTrainerTeViA.get_dataloaders)."""
    box_of = partial(tile_box, padded_shape=tuple(padded_shape), image_shape=tuple(image_shape))
    with mock.patch.object(nnunet_predictor_module, "Queue", partial(_TaggingQueue, box_of=box_of)):
        yield


def box_of_tile(tile: torch.Tensor) -> torch.Tensor:
    box = getattr(tile, TILE_BOX, None)
    if box is None:
        raise TilePositionError(
            f"a tile of shape {tuple(tile.shape)} reached the network without its position in the image; only the "
            f"tiles nnU-Net's sliding window cuts carry one (inference/tile_positions.py). If nnU-Net changed how it "
            f"cuts tiles (this package is tested with nnunetv2 2.8.1), please report it")
    return box
