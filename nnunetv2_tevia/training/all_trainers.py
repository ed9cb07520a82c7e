"""Every trainer class of the package, in one namespace (what the shim folder re-exports).

Budget wrappers are not here: the demo's live in nnunetv2_tevia/demo/trainers.py, the benchmarks' in
benchmarks/trainers/, each registered only for the commands that train them (tests/test_layout.py checks)."""
from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA  # noqa: F401
from nnunetv2_tevia.training.variants.ablations import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.reference import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.augmentation import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.mirror_text import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.text_dropout import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.text_reading import *  # noqa: F401,F403
from nnunetv2_tevia.training.variants.training_length import *  # noqa: F401,F403
