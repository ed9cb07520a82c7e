"""The benchmark's training budgets, applied alike to plain nnU-Net, TeViA and its three ablations.

``_cpuBudget``: batch 8 and ``TEVIA_BENCH_EPOCHS`` x ``TEVIA_BENCH_ITERS`` training steps (default 25 x 40 = 1000),
sized from a measured step time: on the 2-core development CPU at 112 x 112 a training step took 1.45-1.66 s, so
the five trainers take about 2.4 h there (docs/benchmarks.md, "Why 1000 steps").
``_gpuBudget``: nnU-Net's own schedule (1000 x 250) and the plans' batch size.
``_gpuShortBudget``: batch 8 and ``TEVIA_BENCH_EPOCHS`` x ``TEVIA_BENCH_ITERS`` steps (default 48 x 250 = 12 000):
the CPU budget's setting, a dozen times longer, sized for several trainings side by side on one GPU within a
10-minute call (benchmarks/gpu_long_schedule.py; docs/benchmarks.md).

Both seed ``random``, numpy and torch from ``TEVIA_BENCH_SEED`` (default 0) before the network is built, and
both skip nnU-Net's final validation: the benchmark scores a labelled test folder instead
(benchmarks/run_benchmark.py).
"""
import os
import random

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA
from nnunetv2_tevia.training.variants.ablations import (nnUNetTrainerTeViA_noAlign, nnUNetTrainerTeViA_noProto,
                                                        nnUNetTrainerTeViA_noText)
from nnunetv2_tevia.training.variants.augmentation import (nnUNetTrainer_locationSafe, nnUNetTrainerTeViA_fullDA,
                                                           nnUNetTrainerTeViA_noTextFullDA)
from nnunetv2_tevia.training.variants.mirror_text import (nnUNetTrainerTeViA_locationSafe,
                                                          nnUNetTrainerTeViA_mirrorText,
                                                          nnUNetTrainerTeViA_mirrorUnflipped)
from nnunetv2_tevia.training.variants.reference import nnUNetTrainerTeViA_reference
from nnunetv2_tevia.training.variants.snapshots import SnapshotMixin
from nnunetv2_tevia.training.variants.text_dropout import nnUNetTrainerTeViA_textDropout
from nnunetv2_tevia.training.variants.text_reading import (nnUNetTrainerTeViA_noParaphrase,
                                                           nnUNetTrainerTeViA_noTextDropout,
                                                           nnUNetTrainerTeViA_oneWording)

SEED_ENV = "TEVIA_BENCH_SEED"
EPOCHS_ENV = "TEVIA_BENCH_EPOCHS"
ITERS_ENV = "TEVIA_BENCH_ITERS"
CPU_BATCH_SIZE = 8
CPU_EPOCHS = 25
CPU_ITERATIONS = 40
# the per-epoch pseudo Dice only feeds the progress plot; the benchmark predicts with checkpoint_final
CPU_VAL_ITERATIONS = 2
PEAK_GPU_MEMORY_LOG = "benchmark: peak GPU memory allocated (MiB):"

GPU_SHORT_EPOCHS = 48
GPU_SHORT_ITERATIONS = 250
BUDGETS = ("cpuBudget", "gpuBudget", "gpuShortBudget")

__all__ = [f"{base.__name__}_{budget}" for base in (nnUNetTrainer, nnUNetTrainerTeViA, nnUNetTrainerTeViA_noText,
                                                      nnUNetTrainerTeViA_noAlign, nnUNetTrainerTeViA_noProto,
                                                      nnUNetTrainerTeViA_textDropout, nnUNetTrainerTeViA_fullDA,
                                                      nnUNetTrainerTeViA_reference, nnUNetTrainerTeViA_mirrorText,
                                                      nnUNetTrainerTeViA_locationSafe,
                                                      nnUNetTrainerTeViA_mirrorUnflipped,
                                                      nnUNetTrainerTeViA_noTextFullDA, nnUNetTrainer_locationSafe)
           for budget in BUDGETS] + [f"{base.__name__}_cpuBudget" for base in (
               nnUNetTrainerTeViA_noParaphrase, nnUNetTrainerTeViA_noTextDropout, nnUNetTrainerTeViA_oneWording)]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


class _BenchmarkBudget(SnapshotMixin):
    """Mixin placed before the trainer: seeding, peak GPU memory in the log, no final validation, snapshots
    (``TEVIA_SNAPSHOT_EVERY``)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        seed_everything(int(os.environ.get(SEED_ENV, 0)))
        super().__init__(plans, configuration, fold, dataset_json, device)

    def on_train_end(self):
        super().on_train_end()
        if self.device.type == 'cuda':
            self.print_to_log_file(PEAK_GPU_MEMORY_LOG, round(torch.cuda.max_memory_allocated(self.device) / 2 ** 20))

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("benchmark budget: final validation skipped (the benchmark scores imagesTs)")


class _CpuBudget(_BenchmarkBudget):
    default_epochs, default_iterations = CPU_EPOCHS, CPU_ITERATIONS

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get(EPOCHS_ENV, self.default_epochs))
        self.num_iterations_per_epoch = int(os.environ.get(ITERS_ENV, self.default_iterations))
        self.num_val_iterations_per_epoch = CPU_VAL_ITERATIONS
        self.save_every = 5  # the benchmark resumes an interrupted training with --c from checkpoint_latest

    def _set_batch_size_and_oversample(self):
        # the trainer's ConfigurationManager holds a deep copy of the plans' configuration, so plans.json keeps
        # the planned batch size; nnU-Net's own code then splits this one over DDP workers as usual
        self.configuration_manager.configuration['batch_size'] = CPU_BATCH_SIZE
        super()._set_batch_size_and_oversample()


class _GpuBudget(_BenchmarkBudget):
    """nnU-Net's defaults, unchanged; only the seed and the skipped final validation differ."""


class _GpuShortBudget(_CpuBudget):
    default_epochs, default_iterations = GPU_SHORT_EPOCHS, GPU_SHORT_ITERATIONS


class nnUNetTrainer_cpuBudget(_CpuBudget, nnUNetTrainer):
    pass


class nnUNetTrainer_gpuBudget(_GpuBudget, nnUNetTrainer):
    pass


class nnUNetTrainerTeViA_cpuBudget(_CpuBudget, nnUNetTrainerTeViA):
    pass


class nnUNetTrainerTeViA_gpuBudget(_GpuBudget, nnUNetTrainerTeViA):
    pass


class nnUNetTrainerTeViA_noText_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_noText):
    pass


class nnUNetTrainerTeViA_noText_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_noText):
    pass


class nnUNetTrainerTeViA_noAlign_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_noAlign):
    pass


class nnUNetTrainerTeViA_noAlign_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_noAlign):
    pass


class nnUNetTrainerTeViA_noProto_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_noProto):
    pass


class nnUNetTrainerTeViA_noProto_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_noProto):
    pass


class nnUNetTrainerTeViA_textDropout_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_textDropout):
    """For measuring one model with and without reports (docs/text_dropout.md); not one of the five."""


class nnUNetTrainerTeViA_textDropout_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_textDropout):
    pass


class nnUNetTrainerTeViA_fullDA_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_fullDA):
    pass


class nnUNetTrainerTeViA_fullDA_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_fullDA):
    pass


class nnUNetTrainerTeViA_reference_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_reference):
    pass


class nnUNetTrainerTeViA_reference_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_reference):
    pass


class nnUNetTrainer_gpuShortBudget(_GpuShortBudget, nnUNetTrainer):
    pass


class nnUNetTrainerTeViA_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA):
    pass


class nnUNetTrainerTeViA_noText_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_noText):
    pass


class nnUNetTrainerTeViA_noAlign_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_noAlign):
    pass


class nnUNetTrainerTeViA_noProto_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_noProto):
    pass


class nnUNetTrainerTeViA_textDropout_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_textDropout):
    pass


class nnUNetTrainerTeViA_fullDA_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_fullDA):
    pass


class nnUNetTrainerTeViA_reference_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_reference):
    pass


class nnUNetTrainerTeViA_mirrorText_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_mirrorText):
    pass


class nnUNetTrainerTeViA_mirrorText_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_mirrorText):
    pass


class nnUNetTrainerTeViA_mirrorText_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_mirrorText):
    pass


class nnUNetTrainerTeViA_locationSafe_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_locationSafe):
    pass


class nnUNetTrainerTeViA_locationSafe_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_locationSafe):
    pass


class nnUNetTrainerTeViA_locationSafe_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_locationSafe):
    pass


class nnUNetTrainerTeViA_noParaphrase_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_noParaphrase):
    pass


class nnUNetTrainerTeViA_noTextDropout_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_noTextDropout):
    pass


class nnUNetTrainerTeViA_oneWording_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_oneWording):
    pass


class nnUNetTrainerTeViA_mirrorUnflipped_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_mirrorUnflipped):
    pass


class nnUNetTrainerTeViA_mirrorUnflipped_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_mirrorUnflipped):
    pass


class nnUNetTrainerTeViA_mirrorUnflipped_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_mirrorUnflipped):
    pass


class nnUNetTrainerTeViA_noTextFullDA_cpuBudget(_CpuBudget, nnUNetTrainerTeViA_noTextFullDA):
    pass


class nnUNetTrainerTeViA_noTextFullDA_gpuBudget(_GpuBudget, nnUNetTrainerTeViA_noTextFullDA):
    pass


class nnUNetTrainerTeViA_noTextFullDA_gpuShortBudget(_GpuShortBudget, nnUNetTrainerTeViA_noTextFullDA):
    pass


class nnUNetTrainer_locationSafe_cpuBudget(_CpuBudget, nnUNetTrainer_locationSafe):
    pass


class nnUNetTrainer_locationSafe_gpuBudget(_GpuBudget, nnUNetTrainer_locationSafe):
    pass


class nnUNetTrainer_locationSafe_gpuShortBudget(_GpuShortBudget, nnUNetTrainer_locationSafe):
    pass
