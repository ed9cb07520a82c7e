"""The benchmarks' training budgets, applied alike to plain nnU-Net, TeViA and its variants.

These trainers belong to the benchmark scripts, not to the package: a user's ``nnUNetv2_train -tr`` never finds
them. A script registers this folder for the nnU-Net commands it starts (``registered_env``: this folder on
PYTHONPATH, ext_trainer/ on ``nnUNet_extTrainer``), as tests/conftest.py registers the test trainers. The budget is
part of the trainer's name, so two budgets never share a results folder or a checkpoint:

    <Base>_<kind>Budget[<E>x<I>][_seed<S>]        e.g. nnUNetTrainerTeViA_cpuBudget, nnUNetTrainer_gpuShortBudget80x50

``cpu``: batch 8 and 25 x 40 = 1000 training steps, sized from a measured step time: on the 2-core development CPU
at 112 x 112 a training step took 1.45-1.66 s, so the five trainers take about 2.4 h there (docs/benchmarks.md,
"Why 1000 steps"). ``gpuShort``: batch 8 and 48 x 250 = 12 000 steps: the CPU budget's setting, a dozen times
longer, sized for several trainings side by side on one GPU within a 10-minute call (gpu_long_schedule.py).
``gpu``: nnU-Net's own schedule (1000 x 250) and the plans' batch size. ``<E>x<I>`` (cpu and gpuShort): E epochs
of I iterations, written only when it is not the kind's default, so each budget has one name (gpu_long_schedule.py's
4000-step CPU run is ``_gpuShortBudget80x50``). ``_seed<S>``: the seed of random, numpy and torch, set before the
network is built; without it, seed 0.

Every budget skips nnU-Net's final validation (the benchmark scores a labelled test folder instead,
run_benchmark.py) and logs the peak GPU memory. With ``TEVIA_SNAPSHOT_EVERY=K`` set it also keeps
``checkpoint_step<N>.pth`` every K epochs, N the steps so far (learning curves). That is an environment variable, not
a name, because a kept checkpoint changes nothing: a training resumed with another K trains the same model.
``<demo trainer>_snapshots`` (e.g. ``nnUNetTrainerTeViA_demoBudget_seed0_snapshots``) is a demo budget trainer
(nnunetv2_tevia/demo/budget.py) with those snapshots, for demo_learning_curves.py.

nnU-Net finds a trainer by ``hasattr(module, name)``; the module ``__getattr__`` below (PEP 562) builds the class a
name stands for, once, from ``BASES``: there is no hand-kept list of classes.
"""
import os
import re
from typing import Dict, Mapping, NamedTuple, Optional

import torch

from nnunetv2_tevia.demo.budget import demo_budget_of
from nnunetv2_tevia.demo.trainers import base_trainer, demo_trainer, seed_everything
from nnunetv2_tevia.registration import with_folder

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_FOLDER = os.path.join(HERE, "ext_trainer")
SNAPSHOT_ENV = "TEVIA_SNAPSHOT_EVERY"
SNAPSHOTS = "_snapshots"
PEAK_GPU_MEMORY_LOG = "benchmark: peak GPU memory allocated (MiB):"
CPU_BATCH_SIZE = 8  # also gpuShort's
CPU_EPOCHS, CPU_ITERATIONS = 25, 40
GPU_SHORT_EPOCHS, GPU_SHORT_ITERATIONS = 48, 250
# the per-epoch pseudo Dice only feeds the progress plot; the benchmark predicts with checkpoint_final
CPU_VAL_ITERATIONS = 2
DEFAULT_LENGTH = {"cpu": (CPU_EPOCHS, CPU_ITERATIONS), "gpuShort": (GPU_SHORT_EPOCHS, GPU_SHORT_ITERATIONS),
                  "gpu": None}  # gpu: nnU-Net's own
# The trainers run_benchmark.py offers, its "all" (the five of every table) first. Not in "all": text dropout is for
# measuring one model with and without reports (--no-report); full DA is TeViA with nnU-Net's mirroring and
# rotations, for reports whose locations survive mirroring (or name none); reference is the reference code's
# arrangement (docs/architecture.md); mirrorText requires the prompt file's "mirror" word map
# (docs/prompt_format.md), locationSafe never mirrors; mirrorUnflipped is the control for text-consistent mirroring
# (the default's mirroring with the reports' words left as written); noTextFullDA is _noText with nnU-Net's
# augmentation (TeViA's network against nnU-Net's, same augmentation), nnUNetTrainer_locationSafe plain nnU-Net with
# TeViA's augmentation (the text-free baseline of the same augmentation); the last three undo issue 19's reading of
# the reports in part (no paraphrases, no text dropout) or in full (oneWording).
BASES = ("nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_noText", "nnUNetTrainerTeViA_noAlign",
         "nnUNetTrainerTeViA_noProto",
         "nnUNetTrainerTeViA_textDropout", "nnUNetTrainerTeViA_fullDA", "nnUNetTrainerTeViA_reference",
         "nnUNetTrainerTeViA_mirrorText", "nnUNetTrainerTeViA_locationSafe", "nnUNetTrainerTeViA_mirrorUnflipped",
         "nnUNetTrainerTeViA_noTextFullDA", "nnUNetTrainer_locationSafe",
         "nnUNetTrainerTeViA_noParaphrase", "nnUNetTrainerTeViA_noTextDropout", "nnUNetTrainerTeViA_oneWording")
_NAME = re.compile(r"(?P<base>.+?)_(?P<kind>cpu|gpuShort|gpu)Budget(?:(?P<epochs>\d+)x(?P<iterations>\d+))?"
                   r"(?:_seed(?P<seed>\d+))?")


class Budget(NamedTuple):
    """One base trainer on one benchmark budget; ``trainer`` is its class name, ``budget_of`` reads it back."""
    base: str
    kind: str  # cpu, gpuShort or gpu
    epochs: Optional[int]  # None for gpu: nnU-Net's own schedule
    iterations: Optional[int]
    seed: int = 0

    @property
    def trainer(self) -> str:
        length = "" if self.kind == "gpu" or (self.epochs, self.iterations) == DEFAULT_LENGTH[self.kind] \
            else f"{self.epochs}x{self.iterations}"
        return f"{self.base}_{self.kind}Budget{length}" + (f"_seed{self.seed}" if self.seed else "")

    def description(self) -> str:
        """What results.md and every model record say about the budget."""
        if self.kind == "gpu":
            return ("nnU-Net's schedule and the plans' batch size (1000 epochs x 250 iterations; "
                    "nnUNetTrainer defaults), final validation skipped")
        return (f"batch {CPU_BATCH_SIZE}, {self.epochs} epochs x {self.iterations} iterations = "
                f"{self.epochs * self.iterations} training steps ({CPU_VAL_ITERATIONS} validation iterations per "
                f"epoch), final validation skipped")


def make_budget(base: str, kind: str, epochs: Optional[int] = None, iterations: Optional[int] = None,
           seed: int = 0) -> Budget:
    """``base`` on budget ``kind``, with the kind's default length where ``epochs`` / ``iterations`` are None."""
    if base not in BASES:
        raise ValueError(f"no benchmark budget for {base}; the trainers with one: {', '.join(BASES)}")
    default = DEFAULT_LENGTH[kind]
    if default is None:
        if epochs is not None or iterations is not None:
            raise ValueError("the gpu budget is nnU-Net's own schedule; epochs and iterations are for cpu and "
                             "gpuShort")
        return Budget(base, kind, None, None, seed)
    epochs, iterations = default[0] if epochs is None else epochs, default[1] if iterations is None else iterations
    if epochs < 1 or iterations < 1 or seed < 0:
        raise ValueError(f"epochs ({epochs}) and iterations ({iterations}) must be positive, the seed ({seed}) at "
                         f"least 0")
    return Budget(base, kind, epochs, iterations, seed)


def budget_of(name: str) -> Optional[Budget]:
    """The budget a trainer name stands for; None if ``name`` is not the one name of a benchmark budget."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    try:
        b = make_budget(m["base"], m["kind"], *(None if m[k] is None else int(m[k]) for k in ("epochs", "iterations")),
                   seed=int(m["seed"] or 0))
    except ValueError:
        return None
    return b if b.trainer == name else None


def registered_env(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """``env`` (default: os.environ) with this folder importable and its shim folder searched by nnU-Net: for the
    nnU-Net commands a benchmark starts, and for a benchmark that builds or loads these trainers itself."""
    out = dict(os.environ if env is None else env)
    out["PYTHONPATH"] = with_folder(out.get("PYTHONPATH", ""), HERE)
    out["nnUNet_extTrainer"] = with_folder(out.get("nnUNet_extTrainer", ""), SHIM_FOLDER)
    return out


class SnapshotMixin:
    """Placed before the trainer: ``checkpoint_step<N>.pth`` every ``TEVIA_SNAPSHOT_EVERY`` epochs, when set."""

    def on_epoch_end(self):
        super().on_epoch_end()  # counts the epoch
        every = int(os.environ.get(SNAPSHOT_ENV, 0))
        if every and self.current_epoch % every == 0:
            steps = self.current_epoch * self.num_iterations_per_epoch
            self.save_checkpoint(os.path.join(self.output_folder, f"checkpoint_step{steps}.pth"))


class _BenchmarkBudget(SnapshotMixin):
    """Placed before the trainer: the seed, peak GPU memory in the log, no final validation, snapshots."""
    bench_budget: Budget  # set on each built class

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        seed_everything(self.bench_budget.seed)
        super().__init__(plans, configuration, fold, dataset_json, device)

    def on_train_end(self):
        super().on_train_end()
        if self.device.type == 'cuda':
            self.print_to_log_file(PEAK_GPU_MEMORY_LOG, round(torch.cuda.max_memory_allocated(self.device) / 2 ** 20))

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("benchmark budget: final validation skipped (the benchmark scores imagesTs)")


class _CpuBudget(_BenchmarkBudget):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch = self.bench_budget.epochs, self.bench_budget.iterations
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
    """The CPU budget's setting; only its default length differs."""


MIXINS = {"cpu": _CpuBudget, "gpuShort": _GpuShortBudget, "gpu": _GpuBudget}
__all__ = [make_budget(base, kind).trainer for base in BASES for kind in MIXINS]  # defaults; other names by request
_built: Dict[str, type] = {}


def trainer_class(b: Budget) -> type:
    """The trainer class of budget ``b``, named ``b.trainer`` (built on first use)."""
    if b.trainer not in _built:
        _built[b.trainer] = type(b.trainer, (MIXINS[b.kind], base_trainer(b.base)), {
            "bench_budget": b, "__module__": __name__, "__qualname__": b.trainer,
            "__doc__": f"{b.base} on the benchmark budget: {b.description()}, seed {b.seed}"})
    return _built[b.trainer]


def _snapshot_class(name: str) -> Optional[type]:
    demo = demo_budget_of(name[:-len(SNAPSHOTS)]) if name.endswith(SNAPSHOTS) else None
    if demo is None:
        return None
    if name not in _built:
        _built[name] = type(name, (SnapshotMixin, demo_trainer(demo)), {
            "__module__": __name__, "__qualname__": name,
            "__doc__": f"{demo.trainer} with a checkpoint every {SNAPSHOT_ENV} epochs (learning curves)"})
    return _built[name]


def __getattr__(name: str):
    b = budget_of(name)
    cls = trainer_class(b) if b is not None else _snapshot_class(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls
