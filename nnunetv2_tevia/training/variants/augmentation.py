"""Augmentation variants: nnU-Net's full augmentation (mirroring, large rotations, mirrored test-time prediction) for
TeViA, for reports that name no side or zone, and for the text-blind ablation; TeViA's location-safe augmentation for
plain nnU-Net. With the default and _noText they make the 2 x 2 of network x augmentation (docs/benchmarks.md)."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia.training.location_safe_augmentation import location_safe_rotation
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


class nnUNetTrainer_locationSafe(nnUNetTrainer):
    """Plain nnU-Net with TeViA's location-safe augmentation: no mirroring in training or prediction, rotations within
    +-15 degrees. The text-free baseline that differs from TeViA in what TeViA adds (guided stages, reports, their
    losses) and in nothing else. Also for any data whose left and right must not be swapped (chest radiographs)."""
    max_rotation_degrees = 15.0

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, _, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        rotation, initial_patch_size = location_safe_rotation(rotation, dummy_2d, self.configuration_manager.patch_size,
                                                              self.max_rotation_degrees)
        self.inference_allowed_mirroring_axes = None
        self.print_to_log_file(f"location-safe augmentation: rotation within +-{self.max_rotation_degrees} degrees, "
                               f"no mirroring")
        return rotation, dummy_2d, initial_patch_size, None
