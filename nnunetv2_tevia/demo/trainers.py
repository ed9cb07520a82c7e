"""The demo's budget trainers, built from their names (the grammar and the budget: demo/budget.py).

nnU-Net finds a trainer by ``hasattr(module, name)``; the module ``__getattr__`` below (PEP 562) builds the class
the name stands for, once, so every name of the grammar is a trainer without a hand-kept list of classes. The
shim folder demo/ext_trainer re-exports it for nnU-Net's ``nnUNet_extTrainer`` search.
"""
import random
from typing import Dict

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia.demo.budget import BASES, DEMO_BATCH_SIZE, DEMO_VAL_ITERATIONS, DemoBudget, demo_budget_of

__all__ = [DemoBudget(base).trainer for base in BASES]  # the default budget of every base; other names by request
_built: Dict[str, type] = {}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def base_trainer(name: str) -> type:
    """A base trainer by name: plain nnU-Net's or one of the package's (training/all_trainers.py)."""
    if name == nnUNetTrainer.__name__:
        return nnUNetTrainer
    from nnunetv2_tevia.training import all_trainers

    return getattr(all_trainers, name)


class DemoBudgetMixin:
    """Placed before the trainer: the demo's batch size and length, and the seed if the name has one."""
    demo_budget: DemoBudget  # set on each built class

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        if self.demo_budget.seed is not None:
            seed_everything(self.demo_budget.seed)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.demo_budget.epochs
        self.num_iterations_per_epoch = self.demo_budget.iterations
        self.num_val_iterations_per_epoch = DEMO_VAL_ITERATIONS

    def _set_batch_size_and_oversample(self):
        # the trainer's ConfigurationManager holds a copy of the plans' configuration: plans.json keeps its batch
        self.configuration_manager.configuration['batch_size'] = DEMO_BATCH_SIZE
        super()._set_batch_size_and_oversample()


def demo_trainer(budget: DemoBudget) -> type:
    """The trainer class of ``budget``, named ``budget.trainer`` (built on first use)."""
    name = budget.trainer
    if name not in _built:
        _built[name] = type(name, (DemoBudgetMixin, base_trainer(budget.base)), {
            "demo_budget": budget, "__module__": __name__, "__qualname__": name,
            "__doc__": f"{budget.base} on the demo budget: batch {DEMO_BATCH_SIZE}, {budget.epochs} x "
                       f"{budget.iterations} steps, " + ("unseeded" if budget.seed is None else f"seed {budget.seed}")})
    return _built[name]


def __getattr__(name: str):
    budget = demo_budget_of(name)
    if budget is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return demo_trainer(budget)
