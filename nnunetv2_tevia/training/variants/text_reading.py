"""Ablations of how the default design reads a report (docs/architecture.md, "Reading what a report means"): each
switches off one of the parts that make reworded reports and missing reports work, or brings back the earlier way."""
import torch

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA


class nnUNetTrainerTeViA_noParaphrase(nnUNetTrainerTeViA):
    """Each case trains on its report only: no alternatives, no paraphrases."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.sample_text_variants = False


class nnUNetTrainerTeViA_noSentenceKey(nnUNetTrainerTeViA):
    """The report's tokens only: no sentence-embedding key."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.sentence_key = False


class nnUNetTrainerTeViA_noTextDropout(nnUNetTrainerTeViA):
    """Never trains on the no-report text: a case without a report is then out of the training distribution."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.text_dropout = 0.0


class nnUNetTrainerTeViA_attentionReader(nnUNetTrainerTeViA):
    """Slots pooled by attention over the tokens (order-invariant) instead of the Conv1d over token positions."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.text_reader = "attention"


class nnUNetTrainerTeViA_oneWording(nnUNetTrainerTeViA):
    """The default design before issue 19: the report's own wording only, no sentence key, no text dropout."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.sample_text_variants = False
        self.sentence_key = False
        self.text_dropout = 0.0
