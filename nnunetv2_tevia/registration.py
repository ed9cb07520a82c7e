"""Where the trainer shim folder is, and the ``nnUNet_extTrainer`` value that makes ``-tr`` find it.

The ``.pth`` file installed by setup.py applies the same rule at interpreter start; this module is for
``nnUNetv2_tevia_env`` and for tests.
"""
import os


def shim_folder() -> str:
    """The folder that nnU-Net searches for external trainers. It only re-exports our classes."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainer")


def with_shim(value: str) -> str:
    """Append the shim folder to an ``nnUNet_extTrainer`` value, keeping what is there, never twice."""
    d = shim_folder()
    parts = [p for p in value.split(os.pathsep) if p]
    if os.path.realpath(d) in (os.path.realpath(p) for p in parts):
        return value
    return value + os.pathsep + d if value else d
