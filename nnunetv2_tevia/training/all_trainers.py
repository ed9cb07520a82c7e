"""Every trainer class of the package, in one namespace (what the shim folder re-exports)."""
from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA  # noqa: F401
from nnunetv2_tevia.training.variants.ablations import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.reference import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.augmentation import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.mirror_text import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.text_dropout import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.text_reading import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.training_length import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.demo_budget import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.benchmark_budget import *  # noqa: F401,F403
