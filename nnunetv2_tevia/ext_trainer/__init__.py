"""Shim folder for nnU-Net's ``nnUNet_extTrainer`` search.

nnU-Net imports every module here as a top-level module and drops them from ``sys.modules`` after the
search, so these modules only re-export classes that live in ``nnunetv2_tevia.training``.
"""
