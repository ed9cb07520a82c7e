"""nnunetv2-tevia: text-guided segmentation (TeViA) as an nnU-Net v2 extension.

Importing this package is cheap: it imports neither torch nor nnunetv2. The trainer lives in
``nnunetv2_tevia.training``, the predictor in ``nnunetv2_tevia.inference``.
"""
__version__ = "0.1.0"
