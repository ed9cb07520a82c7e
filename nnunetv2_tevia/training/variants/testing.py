"""Tiny budgets for tests and CI: a few iterations per epoch, nothing like a real training."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA
from nnunetv2_tevia.training.variants.reference import nnUNetTrainerTeViA_reference


class nnUNetTrainerTeViA_tiny(nnUNetTrainerTeViA):
    """2 epochs of 3 iterations (the prototype warms up in epoch 0 and runs on momentum in epoch 1)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2


class nnUNetTrainerTeViA_tinySaveEveryEpoch(nnUNetTrainerTeViA_tiny):
    """Checkpoints after every epoch, for interruption and --c tests."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 4
        self.save_every = 1


class nnUNetTrainerTeViA_reference_tiny(nnUNetTrainerTeViA_reference):
    """The reference design with nnUNetTrainerTeViA_tiny's budget."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2


class nnUNetTrainer_tevia_tiny(nnUNetTrainer):
    """Plain nnU-Net (no text) with nnUNetTrainerTeViA_tiny's budget: the pretraining run of fine-tuning tests."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2
