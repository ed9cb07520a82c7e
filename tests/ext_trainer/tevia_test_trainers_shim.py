"""nnU-Net's ``nnUNet_extTrainer`` search imports this folder's modules and drops them afterwards, so this module
only re-exports the test trainers, which live in tests/tevia_test_trainers.py (conftest.py registers both)."""
from tevia_test_trainers import *  # noqa: F401,F403
