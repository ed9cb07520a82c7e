"""The demo's training budget, applied alike to TeViA and to plain nnU-Net so the comparison is fair.

Batch ``DEMO_BATCH_SIZE`` and ``TEVIA_DEMO_EPOCHS`` x ``TEVIA_DEMO_ITERATIONS`` steps (nnunetv2_tevia/demo/budget.py).
"""
import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia.demo.budget import (DEMO_BATCH_SIZE, DEMO_EPOCHS, DEMO_ITERATIONS, EPOCHS_ENV, ITERATIONS_ENV,
                                        SEED_ENV)
from nnunetv2_tevia.training.variants.benchmark_budget import seed_everything
from nnunetv2_tevia.training.variants.snapshots import SnapshotMixin
from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA
from nnunetv2_tevia.training.variants.ablations import (nnUNetTrainerTeViA_noAlign, nnUNetTrainerTeViA_noPatchPosition,
                                                        nnUNetTrainerTeViA_noProto, nnUNetTrainerTeViA_noText)
from nnunetv2_tevia.training.variants.mirror_text import (nnUNetTrainerTeViA_locationSafe,
                                                          nnUNetTrainerTeViA_mirrorText)
from nnunetv2_tevia.training.variants.reference import nnUNetTrainerTeViA_reference
from nnunetv2_tevia.training.variants.text_dropout import nnUNetTrainerTeViA_textDropout
from nnunetv2_tevia.training.variants.text_reading import (nnUNetTrainerTeViA_attentionReader,
                                                           nnUNetTrainerTeViA_noParaphrase,
                                                           nnUNetTrainerTeViA_noSentenceKey,
                                                           nnUNetTrainerTeViA_noTextDropout,
                                                           nnUNetTrainerTeViA_oneWording)


class _DemoBudget(SnapshotMixin):
    """Mixin placed before the trainer. ``TEVIA_DEMO_SEED`` seeds it (default: unseeded, as nnU-Net)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        if SEED_ENV in os.environ:
            seed_everything(int(os.environ[SEED_ENV]))
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get(EPOCHS_ENV, DEMO_EPOCHS))
        self.num_iterations_per_epoch = int(os.environ.get(ITERATIONS_ENV, DEMO_ITERATIONS))
        self.num_val_iterations_per_epoch = 2

    def _set_batch_size_and_oversample(self):
        # the trainer's ConfigurationManager holds a copy of the plans' configuration: plans.json keeps its batch
        self.configuration_manager.configuration['batch_size'] = DEMO_BATCH_SIZE
        super()._set_batch_size_and_oversample()


class nnUNetTrainer_demoBudget(_DemoBudget, nnUNetTrainer):
    pass


class nnUNetTrainerTeViA_demoBudget(_DemoBudget, nnUNetTrainerTeViA):
    pass


class nnUNetTrainerTeViA_reference_demoBudget(_DemoBudget, nnUNetTrainerTeViA_reference):
    pass


class nnUNetTrainerTeViA_textDropout_demoBudget(_DemoBudget, nnUNetTrainerTeViA_textDropout):
    """The demo budget with text dropout: one demo model measured with and without reports."""


class nnUNetTrainerTeViA_noAlign_demoBudget(_DemoBudget, nnUNetTrainerTeViA_noAlign):
    pass


class nnUNetTrainerTeViA_noProto_demoBudget(_DemoBudget, nnUNetTrainerTeViA_noProto):
    pass


class nnUNetTrainerTeViA_noText_demoBudget(_DemoBudget, nnUNetTrainerTeViA_noText):
    pass


class nnUNetTrainerTeViA_noPatchPosition_demoBudget(_DemoBudget, nnUNetTrainerTeViA_noPatchPosition):
    pass


class nnUNetTrainerTeViA_mirrorText_demoBudget(_DemoBudget, nnUNetTrainerTeViA_mirrorText):
    """The demo budget with text-consistent mirroring (issue 13): the quadrant words flip with the image."""


class nnUNetTrainerTeViA_locationSafe_demoBudget(_DemoBudget, nnUNetTrainerTeViA_locationSafe):
    """The demo budget without mirroring (the demo's default before issue 13)."""


class nnUNetTrainerTeViA_noParaphrase_demoBudget(_DemoBudget, nnUNetTrainerTeViA_noParaphrase):
    pass


class nnUNetTrainerTeViA_noSentenceKey_demoBudget(_DemoBudget, nnUNetTrainerTeViA_noSentenceKey):
    pass


class nnUNetTrainerTeViA_noTextDropout_demoBudget(_DemoBudget, nnUNetTrainerTeViA_noTextDropout):
    pass


class nnUNetTrainerTeViA_attentionReader_demoBudget(_DemoBudget, nnUNetTrainerTeViA_attentionReader):
    pass


class nnUNetTrainerTeViA_oneWording_demoBudget(_DemoBudget, nnUNetTrainerTeViA_oneWording):
    """The demo budget with the design before issue 19 (the report's own wording only)."""
