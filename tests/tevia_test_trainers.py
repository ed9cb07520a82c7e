"""Tiny budgets for the tests: a few iterations per epoch, nothing like a real training.

Not part of the package (a user's ``-tr`` search never sees them): tests/conftest.py puts this folder on
PYTHONPATH and tests/ext_trainer on ``nnUNet_extTrainer`` for the test session and the commands it runs."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA
from nnunetv2_tevia.training.variants.mirror_text import nnUNetTrainerTeViA_mirrorText
from nnunetv2_tevia.training.variants.reference import nnUNetTrainerTeViA_reference


class _Tiny:
    """Mixin placed before the trainer: 2 epochs of 3 iterations (the prototype warms up in epoch 0 and runs on
    momentum in epoch 1)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2


class nnUNetTrainerTeViA_tiny(_Tiny, nnUNetTrainerTeViA):
    pass


class nnUNetTrainerTeViA_tinySaveEveryEpoch(nnUNetTrainerTeViA_tiny):
    """Checkpoints after every epoch, for interruption and --c tests."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 4
        self.save_every = 1


class nnUNetTrainerTeViA_reference_tiny(_Tiny, nnUNetTrainerTeViA_reference):
    """The reference design with the tiny budget."""


class nnUNetTrainer_tevia_tiny(_Tiny, nnUNetTrainer):
    """Plain nnU-Net (no text) with the tiny budget: the pretraining run of fine-tuning tests."""


class nnUNetTrainerTeViA_mirrorText_tiny(_Tiny, nnUNetTrainerTeViA_mirrorText):
    """Text-consistent mirroring with the tiny budget."""
