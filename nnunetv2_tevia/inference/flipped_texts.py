"""Test-time mirroring with mirrored reports (issue 13), for models of nnUNetTrainerTeViA_mirrorText.

nnU-Net averages the predictions of the image and its flips along the model's allowed axes. A TeViA model whose
plans record a word map (``plans["tevia"]["mirror"]``) predicts each flip with the report as it reads after
that flip, and with the tile's position mirrored the way training mirrored it (training/mirror_text.py).
"""
import os
from typing import Dict, Optional, Sequence

import torch

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts.mirror_words import MirrorMap, mirror_map_from_json, text_variants
from nnunetv2_tevia.text.cache.mirror import flip_key
from nnunetv2_tevia.model.mirror_axes import covered_map_axes, flip_combinations, mirror_boxes

SEPARATOR = "#flip:"  # key of a flipped report among the texts to embed: "<case id>#flip:<flip key>"


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


def flipped_texts(texts: Dict[str, str], mirror_map: MirrorMap, map_axes: Sequence[int]) -> Dict[str, str]:
    """{"<case>#flip:<key>": text} of every flip of ``map_axes`` that changes a case's report."""
    out = {}
    for case, text in texts.items():
        for combo, variant in text_variants(text, mirror_map, map_axes).items():
            if combo and variant != text:
                out[f"{case}{SEPARATOR}{flip_key(combo)}"] = variant
    return out


def split_flipped(features: dict) -> tuple:
    """({case: features}, {case: {map axes: features}}) from the embedded originals and flips."""
    own, flipped = {}, {}
    for key, value in features.items():
        case, sep, flip = key.partition(SEPARATOR)
        if sep:
            flipped.setdefault(case, {})[tuple(int(a) for a in flip.split("+"))] = value
        else:
            own[key] = value
    return own, flipped


def predict_with_flipped_texts(network, net, x: torch.Tensor, patch_axes: Sequence[int], patch_to_map: Sequence[int],
                               mirror_map: MirrorMap, box: Optional[torch.Tensor]) -> torch.Tensor:
    """nnU-Net's test-time mirroring average, each flip predicted with its flipped report and mirrored box.
    ``network``: what to call (maybe compiled); ``net``: the TeViANetwork holding the texts."""
    prediction = network(x)
    combos = flip_combinations(tuple(patch_axes))
    try:
        for combo in combos:
            dims = [a + 2 for a in combo]
            net.use_flipped_text(covered_map_axes(combo, patch_to_map, mirror_map.axis_indices))
            if box is not None:
                flipped = torch.zeros(box.shape[0], dtype=torch.bool)
                flipped[list(combo)] = True
                net.set_patch_box(mirror_boxes(box, flipped))
            prediction += torch.flip(network(torch.flip(x, dims)), dims)
    finally:
        net.use_flipped_text(())
        if box is not None:
            net.set_patch_box(box)
    return prediction / (len(combos) + 1)
