"""Shim folder of the demo's budget trainers for nnU-Net's ``nnUNet_extTrainer`` search; only ``nnUNetv2_tevia_demo``
registers it (nnunetv2_tevia/demo/budget.py, ``registered_env``), for the nnU-Net commands it runs.

nnU-Net imports every module here as a top-level module and drops them from ``sys.modules`` after the search, so
the module here only re-exports what lives in ``nnunetv2_tevia.demo.trainers``.
"""
