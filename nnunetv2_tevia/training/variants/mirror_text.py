"""How TeViA mirrors: the default flips each report's location words with its image when the prompt file has a
``"mirror"`` word map (training/text_mirroring.py); these variants fix the choice whatever the prompt file says.

``nnUNetTrainerTeViA_mirrorText`` requires the word map and stops without one (for runs that must mirror);
``nnUNetTrainerTeViA_locationSafe`` never mirrors, even with a map (the default before issue 13, and what
reports whose words cannot be mapped need). docs/prompt_format.md, "Mirror word maps", says when to use which.
"""
import torch

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA


class nnUNetTrainerTeViA_mirrorText(nnUNetTrainerTeViA):
    require_mirror_map = True

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mirror_text = True


class nnUNetTrainerTeViA_locationSafe(nnUNetTrainerTeViA):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mirror_text = False
