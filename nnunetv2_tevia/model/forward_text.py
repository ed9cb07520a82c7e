"""The text each forward of one case is given: its report's features and, for a word-map model, the features of its
report as it reads after each flip. Built by the predictor (from its embeddings) and by the trainer's final validation
(from its text table); read by test-time mirroring (inference/mirrored_prediction.py)."""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch


class CaseText(NamedTuple):
    """One case's text as each forward of its prediction is given it: (1, L, D) features, (1, L) mask and, for a
    word-map model, {flipped map axes: (features, mask)} of its reports as they read after those flips."""
    case_id: str
    features: torch.Tensor
    mask: torch.Tensor
    flipped: Optional[dict] = None

    @classmethod
    def of(cls, case_id: str, features, mask, flipped: Optional[dict] = None) -> "CaseText":
        """From (L, D) and (L,) arrays or tensors (an embedding cache's, or rows of the trainer's text table)."""
        def batch(f, m):
            return torch.as_tensor(f).float()[None], torch.as_tensor(m, dtype=torch.bool)[None]
        return cls(case_id, *batch(features, mask), {tuple(c): batch(*v) for c, v in (flipped or {}).items()})

    def variant(self, map_axes: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The report as it reads with ``map_axes`` flipped; its own where nothing swaps."""
        return (self.flipped or {}).get(tuple(map_axes), (self.features, self.mask))
