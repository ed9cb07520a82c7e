"""Text-consistent mirroring (issue 13): which axes each training sample was flipped along, and its flipped patch
box.

nnU-Net's data loader runs batchgeneratorsv2's ``MirrorTransform`` on each sample. ``RecordingMirrorTransform``
writes the axes it flipped into the sample's dict; ``MirrorBoxLoader`` (the patch-box loader, whose transforms
are wrapped to collect that entry) adds ``batch['mirror_axes']``, bool (B, patch ndim), and mirrors each flipped
sample's ``batch['patch_box']``: after the flip the patch shows the flipped image at the mirrored position.
The axis and box maths, shared with the predictor, is in model/mirror_axes.py.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform

from nnunetv2_tevia.model.mirror_axes import covered_map_axes, mirror_boxes
from nnunetv2_tevia.training.patch_position import PatchBoxLoader

SAMPLE_KEY = "mirrored_axes"


class RecordingMirrorTransform(MirrorTransform):
    """nnU-Net's mirroring, unchanged, plus the flipped axes in the sample dict (``SAMPLE_KEY``)."""

    def apply(self, data_dict, **params):
        data_dict = super().apply(data_dict, **params)
        data_dict[SAMPLE_KEY] = tuple(int(a) for a in params["axes"])
        return data_dict


class _CollectFlips:
    """Wraps the loader's transforms: calls them and notes each sample's flipped axes (none without mirroring)."""

    def __init__(self, transforms, sink: list):
        self.transforms, self.sink = transforms, sink

    def __call__(self, **data_dict):
        out = self.transforms(**data_dict)
        self.sink.append(tuple(out.get(SAMPLE_KEY, ())))
        return out


class MirrorBoxLoader(PatchBoxLoader):
    """The patch-box loader plus ``batch['mirror_axes']`` and mirrored boxes of flipped samples."""

    def generate_train_batch(self):
        flips: list = []
        transforms = self.transforms
        if transforms is not None:
            self.transforms = _CollectFlips(transforms, flips)
        try:
            batch = super().generate_train_batch()
        finally:
            self.transforms = transforms
        ndim = batch["patch_box"].shape[1]
        flipped = torch.zeros(len(batch["keys"]), ndim, dtype=torch.bool)
        for b, axes in enumerate(flips):
            flipped[b, list(axes)] = True
        batch["mirror_axes"] = flipped
        batch["patch_box"] = mirror_boxes(batch["patch_box"], flipped)
        return batch


def sample_flips(mirror_axes: Optional[torch.Tensor], patch_to_map: Sequence[int],
                 map_axes: Sequence[int]) -> List[Tuple[int, ...]]:
    """Per sample, the flipped axes that the word map covers, as map axes (what selects the text variant)."""
    if mirror_axes is None:
        return []
    return [covered_map_axes(torch.nonzero(row).flatten().tolist(), patch_to_map, map_axes)
            for row in mirror_axes.cpu()]
