"""Text-consistent mirroring in training (issue 13): whether the trainer mirrors (the text cache's word map), which
axes each training sample was flipped along, and its flipped patch box.

``use_word_map`` puts the cache's flipped reports into the trainer's text table and the word map into the plans
(what the predictor's test-time mirroring reads, inference/mirrored_prediction.py); ``text_mirror_axes`` says which
patch axes may be flipped with the words.

nnU-Net's data loader runs batchgeneratorsv2's ``MirrorTransform`` on each sample. ``RecordingMirrorTransform``
writes the axes it flipped into the sample's dict; ``MirrorBoxLoader`` (the patch-box loader, whose transforms
are wrapped to collect that entry) adds ``batch['mirror_axes']``, bool (B, patch ndim), and mirrors each flipped
sample's ``batch['patch_box']``: after the flip the patch shows the flipped image at the mirrored position.
The axis and box maths, shared with the predictor, is in model/mirror_axes.py.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.model.config import PLANS_KEY
from nnunetv2_tevia.model.mirror_axes import covered_map_axes, mirror_boxes, mirrorable_patch_axes, patch_map_axes
from nnunetv2_tevia.prompts.mirror_words import MirrorMap, mirror_map_to_json
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


def use_word_map(cache, table, plans: dict, patch_ndim: int, *, required_by: Optional[str],
                 log: Callable[[str], None]) -> Optional[MirrorMap]:
    """The cache's word map, its flipped reports added to ``table`` (training/case_text.py) and the map recorded in
    ``plans``. Without one: None (images are not mirrored), or a TextCacheError for ``required_by`` (a trainer that
    must mirror, nnUNetTrainerTeViA_mirrorText)."""
    mirror_map = cache.mirror_map
    if mirror_map is None:
        if required_by:
            raise TextCacheError(
                f"{required_by} flips each report with its image, but the active text cache {cache.folder} holds no "
                f"mirrored reports: add a \"mirror\" section (e.g. \"mirror\": {{\"preset\": \"2d\"}}, "
                f"docs/prompt_format.md) to {cache.manifest.get('prompt_file') or 'the prompt file'} and run "
                f"{cache.fix_command()}")
        log("TeViA: the prompt file has no \"mirror\" word map, so images are not mirrored (reports name sides); add "
            "one to train with mirrored images and reports (docs/prompt_format.md, Mirror word maps)")
        return None
    table.add_mirror_rows(cache, mirror_map.axis_indices, patch_map_axes(plans, patch_ndim))
    plans[PLANS_KEY]["mirror"] = mirror_map_to_json(mirror_map)
    return mirror_map


def text_mirror_axes(mirror_map: Optional[MirrorMap], plans: dict, patch_ndim: int) -> Tuple[int, ...]:
    """The patch axes that may be flipped with the reports' words: those the word map lists (none without one)."""
    if mirror_map is None:
        return ()
    return mirrorable_patch_axes(mirror_map.axis_indices, patch_map_axes(plans, patch_ndim))
