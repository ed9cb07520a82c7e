"""nnU-Net's full augmentation (mirroring, large rotations, mirrored test-time prediction) for reports
that name no side or zone, and the same for the text-blind ablation."""
import torch

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA
from nnunetv2_tevia.training.variants.ablations import nnUNetTrainerTeViA_noText


class nnUNetTrainerTeViA_fullDA(nnUNetTrainerTeViA):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.location_safe_augmentation = False


class nnUNetTrainerTeViA_noTextFullDA(nnUNetTrainerTeViA_noText):
    """TeViA's network on one constant text with nnU-Net's full augmentation: against nnUNetTrainer it measures the
    network alone, against _noText the augmentation alone (docs/benchmarks.md)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.location_safe_augmentation = False
