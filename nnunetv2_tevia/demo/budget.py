"""The demo's training budget and the names of its trainers (no torch: ``nnUNetv2_tevia_demo`` reads it first).

The demo trains TeViA and plain nnU-Net alike as ``<Base>_demoBudget``: batch 16 and 20 x 25 = 500 steps, sized so
that the whole demo finishes within 20 minutes on a 2-core CPU (docs/demo.md has the measured times), unseeded as
nnU-Net is. The budget is part of the name, so two budgets never share a results folder or a checkpoint:

    <Base>_demoBudget[<E>x<I>][_seed<S>]

``<E>x<I>``: E epochs of I iterations (``--epochs`` / ``--iterations``), written only when it is not the default, so
each budget has one name; ``_seed<S>``: random, numpy and torch seeded with S before the network is built.
nnunetv2_tevia/demo/trainers.py builds the classes. They are not in the package's trainer namespace: the demo
registers them (``registered_env``) for the nnU-Net commands it runs, and ``nnUNetv2_tevia_env --demo`` prints
the line that registers them for a command of your own.
"""
import os
import re
from typing import Dict, Mapping, NamedTuple, Optional

from nnunetv2_tevia.registration import with_folder

DEMO_EPOCHS = 20
DEMO_ITERATIONS = 25
# nnU-Net plans batch 100 for the demo's 2000 small images (at most 5 % of the dataset per batch); at 64 x 64 a
# batch of 16 makes many more steps in the same time, which both trainers need more than big batches.
DEMO_BATCH_SIZE = 16
DEMO_VAL_ITERATIONS = 2
# the trainers that get a demo budget: plain nnU-Net, TeViA and the variants the demo and its benchmarks train
BASES = ("nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_reference", "nnUNetTrainerTeViA_textDropout",
         "nnUNetTrainerTeViA_noAlign", "nnUNetTrainerTeViA_noProto", "nnUNetTrainerTeViA_noText",
         "nnUNetTrainerTeViA_noPatchPosition", "nnUNetTrainerTeViA_mirrorText", "nnUNetTrainerTeViA_locationSafe",
         "nnUNetTrainerTeViA_noParaphrase", "nnUNetTrainerTeViA_noSentenceKey", "nnUNetTrainerTeViA_noTextDropout",
         "nnUNetTrainerTeViA_attentionReader", "nnUNetTrainerTeViA_oneWording")
SHIM_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainer")
_NAME = re.compile(r"(?P<base>.+?)_demoBudget(?:(?P<epochs>\d+)x(?P<iterations>\d+))?(?:_seed(?P<seed>\d+))?")


class DemoBudget(NamedTuple):
    """One base trainer on the demo budget; ``trainer`` is its class name, ``demo_budget_of`` reads it back."""
    base: str
    epochs: int = DEMO_EPOCHS
    iterations: int = DEMO_ITERATIONS
    seed: Optional[int] = None  # None: unseeded

    @property
    def trainer(self) -> str:
        length = "" if (self.epochs, self.iterations) == (DEMO_EPOCHS, DEMO_ITERATIONS) \
            else f"{self.epochs}x{self.iterations}"
        return f"{self.base}_demoBudget{length}" + ("" if self.seed is None else f"_seed{self.seed}")


def demo_budget_of(name: str) -> Optional[DemoBudget]:
    """The budget a demo trainer name stands for; None if ``name`` is not the one name of a demo budget."""
    m = _NAME.fullmatch(name)
    if m is None or m["base"] not in BASES:
        return None
    budget = DemoBudget(m["base"], int(m["epochs"] or DEMO_EPOCHS), int(m["iterations"] or DEMO_ITERATIONS),
                        None if m["seed"] is None else int(m["seed"]))
    return budget if budget.trainer == name and budget.epochs > 0 and budget.iterations > 0 else None


def registered_env(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """``env`` (default: os.environ) with the demo's shim folder on ``nnUNet_extTrainer``: for the nnU-Net commands
    that train or predict the demo's models."""
    out = dict(os.environ if env is None else env)
    out["nnUNet_extTrainer"] = with_folder(out.get("nnUNet_extTrainer", ""), SHIM_FOLDER)
    return out
