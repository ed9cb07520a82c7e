"""The reference code's arrangement, kept so that anyone can compare it with the default.

Guided stages on the decoder stages' inputs with self-attention, slot projections, slot sinusoids on the keys and
a cross-attention scale of 0.01; the prototype in the alignment layout, switched on at once; every parameter in
nnU-Net's SGD. Under nnU-Net's training it learns to ignore the report on the demo and on Kvasir-SEG
(docs/architecture.md, "Departures from the reference code").
"""
import torch

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA


class nnUNetTrainerTeViA_reference(nnUNetTrainerTeViA):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.tevia_design = "reference"
        self.text_optimizer = None
        self.mirror_text = False  # the reference code does not mirror
        self.sample_text_variants = False  # it trains on each report's own wording, and never without a report
        self.text_dropout = 0.0
