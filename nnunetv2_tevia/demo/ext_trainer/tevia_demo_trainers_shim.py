"""Re-exports the demo's budget trainers, so that ``nnUNetv2_train ... -tr <Base>_demoBudget...`` finds them."""
from nnunetv2_tevia.demo.trainers import __getattr__  # noqa: F401  (PEP 562: nnU-Net's hasattr builds it by name)
from nnunetv2_tevia.demo.trainers import *  # noqa: F401,F403
