"""Re-exports every TeViA trainer so that ``nnUNetv2_train ... -tr <name>`` finds it."""
from nnunetv2_tevia.training.all_trainers import *  # noqa: F401,F403
