"""Test-time mirroring with mirrored reports (issue 13) and mirrored tile positions.

nnU-Net averages the predictions of the image and its flips along the model's allowed axes. A TeViA model whose
plans record a word map (``plans["tevia"]["mirror"]``) predicts each flip with the report as it reads after
that flip (``CaseText.variant``; the flipped reports are embedded and filed as a text cache files them,
text/cache/mirror.py). Every model predicts each flip with the tile's position mirrored the way training mirrors a
flipped patch's (training/mirror_text.py), with or without a word map (``_fullDA`` mirrors images without one).
"""
import os
from typing import Callable, Optional, Sequence

import torch

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.model.forward_text import CaseText
from nnunetv2_tevia.model.mirror_axes import covered_map_axes, mirror_boxes
from nnunetv2_tevia.prompts.mirror_words import MirrorMap, flip_combinations, mirror_map_from_json


def model_mirror_map(tevia: dict, where: str) -> Optional[MirrorMap]:
    return mirror_map_from_json(tevia["mirror"], where) if tevia.get("mirror") else None


def check_prompt_map(model_map: Optional[MirrorMap], prompts, model_folder: str) -> None:
    """A prompt file whose "mirror" section differs from the model's would flip reports the model never saw."""
    theirs = getattr(prompts, "mirror", None)
    if model_map is None or theirs is None or theirs.axes == model_map.axes:
        return
    raise PromptFileError(
        f"{prompts.path or 'the prompt file'}: its \"mirror\" word map differs from the one the model in "
        f"{model_folder} was trained with ({os.path.join(model_folder, 'plans.json')}, \"tevia\" -> \"mirror\"). "
        f"Prediction flips the reports with the model's map: remove the prompt file's \"mirror\" section or make "
        f"it equal to the model's")


def forward_inputs(text: Optional[CaseText], box: Optional[torch.Tensor], patch_to_map: Sequence[int],
                   mirror_map: Optional[MirrorMap]) -> Callable[[tuple], tuple]:
    """What the forward of a tile flipped along ``combo`` (patch axes) is given: (features, mask, box). The text is
    the report as it reads after the flip (without a word map: the report); the (1, ndim, 2) box is mirrored along
    the flipped axes. No text: (None, None), and the network decides (MissingTextError or its no-report text)."""
    def inputs_of(combo: tuple) -> tuple:
        features = mask = None
        if text is not None:
            features, mask = text.variant(
                covered_map_axes(combo, patch_to_map, mirror_map.axis_indices) if mirror_map is not None else ())
        if box is None:
            return features, mask, None
        flipped = torch.zeros(box.shape[:2], dtype=torch.bool)
        flipped[:, list(combo)] = True
        return features, mask, mirror_boxes(box, flipped)
    return inputs_of


def mirrored_prediction(network, x: torch.Tensor, patch_axes: Sequence[int],
                        inputs_of: Callable[[tuple], tuple]) -> torch.Tensor:
    """nnU-Net's test-time mirroring: the mean of the predictions of ``x`` and of its flips along every combination
    of ``patch_axes`` (nnU-Net's order), each forward given ``inputs_of(combo)`` (``forward_inputs``)."""
    combos = flip_combinations(tuple(patch_axes))
    prediction = None
    for combo in combos:
        dims = [a + 2 for a in combo]
        features, mask, box = inputs_of(combo)
        y = network(torch.flip(x, dims) if dims else x, features, mask, patch_box=box)
        y = torch.flip(y, dims) if dims else y
        prediction = y if prediction is None else prediction + y
    return prediction / len(combos)
