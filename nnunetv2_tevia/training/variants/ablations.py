"""Ablations of TeViA's three ingredients. Same network in each, so differences are the ingredient's."""
import torch

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA


class nnUNetTrainerTeViA_noAlign(nnUNetTrainerTeViA):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.use_alignment = False


class nnUNetTrainerTeViA_noProto(nnUNetTrainerTeViA):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.use_prototype = False


class nnUNetTrainerTeViA_noText(nnUNetTrainerTeViA):
    """Every case gets the no-report text: TeViA's architecture and augmentation without the reports' information."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.use_case_text = False


class nnUNetTrainerTeViA_noPatchPosition(nnUNetTrainerTeViA):
    """Positions relative to each patch, not to the image: what location words lose where the patch is smaller than
    the image (identical to the default where the patch covers the image)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.use_patch_position = False
