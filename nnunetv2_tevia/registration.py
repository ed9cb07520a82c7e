"""Where the trainer shim folder is, and the ``nnUNet_extTrainer`` value that makes ``-tr`` find it.

The ``.pth`` file installed by setup.py applies the same rule at interpreter start; this module is for
``nnUNetv2_tevia_env`` and for tests.
"""
import os


def shim_folder() -> str:
    """The folder that nnU-Net searches for external trainers. It only re-exports our classes."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainer")


def with_folder(value: str, folder: str) -> str:
    """Append ``folder`` to an ``os.pathsep`` list (``nnUNet_extTrainer``, ``PYTHONPATH``), keeping what is there,
    never twice."""
    parts = [p for p in value.split(os.pathsep) if p]
    if os.path.realpath(folder) in (os.path.realpath(p) for p in parts):
        return value
    return value + os.pathsep + folder if value else folder


def with_shim(value: str) -> str:
    """Append the shim folder to an ``nnUNet_extTrainer`` value, keeping what is there, never twice."""
    return with_folder(value, shim_folder())
