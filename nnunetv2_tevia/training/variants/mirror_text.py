"""How TeViA mirrors: the default flips each report's location words with its image when the prompt file has a
``"mirror"`` word map (training/mirror_text.py); these variants fix the choice whatever the prompt file says.

``nnUNetTrainerTeViA_mirrorText`` requires the word map and stops without one (for runs that must mirror);
``nnUNetTrainerTeViA_locationSafe`` never mirrors, even with a map (the default before issue 13, and what
reports whose words cannot be mapped need). docs/prompt_format.md, "Mirror word maps", says when to use which.

``nnUNetTrainerTeViA_mirrorUnflipped`` is the control for text-consistent mirroring (docs/benchmarks.md): the
default's augmentation (its small rotations, every patch axis mirrored, in training and at test time) with each
report left as written when its image is flipped. Against the default it measures what flipping the words is
worth; it is not for use on reports that name sides.
"""
from typing import Tuple

import torch

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA


class nnUNetTrainerTeViA_mirrorText(nnUNetTrainerTeViA):
    require_mirror_map = True  # the default's mirror_text, and stop without a word map


class nnUNetTrainerTeViA_locationSafe(nnUNetTrainerTeViA):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mirror_text = False


class nnUNetTrainerTeViA_mirrorUnflipped(nnUNetTrainerTeViA):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mirror_text = False  # no flipped reports and no word map in the plans: prediction keeps them too

    def _text_mirror_axes(self) -> Tuple[int, ...]:
        # what the default mirrors with a word map of every axis (the 2d preset): every patch axis
        return tuple(range(len(self.configuration_manager.patch_size)))
