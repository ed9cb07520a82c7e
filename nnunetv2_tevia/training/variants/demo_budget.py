"""The demo's training budget, applied alike to TeViA and to plain nnU-Net so the comparison is fair.

Sized for a 2-core CPU, where the whole demo was meant to take about 20 minutes (measured 41 minutes
with the machine shared with other jobs; see docs/demo.md). Set ``TEVIA_DEMO_EPOCHS`` to train longer or shorter without a new class.
"""
import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA
from nnunetv2_tevia.training.variants.text_dropout import nnUNetTrainerTeViA_textDropout


def apply_demo_budget(trainer: nnUNetTrainer) -> None:
    trainer.num_epochs = int(os.environ.get("TEVIA_DEMO_EPOCHS", 20))
    trainer.num_iterations_per_epoch = int(os.environ.get("TEVIA_DEMO_ITERATIONS", 25))
    trainer.num_val_iterations_per_epoch = 5


class nnUNetTrainer_demoBudget(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        apply_demo_budget(self)


class nnUNetTrainerTeViA_demoBudget(nnUNetTrainerTeViA):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        apply_demo_budget(self)


class nnUNetTrainerTeViA_textDropout_demoBudget(nnUNetTrainerTeViA_textDropout):
    """The demo budget with text dropout: one demo model measured with and without reports."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        apply_demo_budget(self)
