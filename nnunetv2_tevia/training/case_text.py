"""Each case's cached text features as one table on the training device, looked up by ``batch['keys']``.

Built once from the active text cache when the trainer initialises: no I/O and no encoder in the
training loop. Row 0 is the no-report text.
"""
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import torch

from nnunetv2_tevia.errors import MissingTextError, TextCacheError

NO_REPORT_ROW = 0


class CaseTextTable:
    def __init__(self, features: np.ndarray, masks: np.ndarray, rows: Dict[str, int]):
        self.features = torch.from_numpy(features)   # (R, L, D) float16
        self.masks = torch.from_numpy(masks)         # (R, L) bool
        self.rows = rows                             # case id -> row; cases without a report -> NO_REPORT_ROW

    @classmethod
    def from_cache(cls, cache, case_ids: Iterable[str], no_report_allowed: bool, dataset: str,
                   prompt_file: str) -> "CaseTextTable":
        feats, masks = [], []
        f, m = cache.no_report_features()
        feats.append(f)
        masks.append(m)
        rows: Dict[str, int] = {}
        missing: List[str] = []
        for k in case_ids:
            if cache.has_case(k):
                f, m = cache.features(k)
                rows[k] = len(feats)
                feats.append(f)
                masks.append(m)
            elif no_report_allowed:
                rows[k] = NO_REPORT_ROW
            else:
                missing.append(k)
        if missing:
            shown = ", ".join(missing[:10]) + (f" ... and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise MissingTextError(
                f"{len(missing)} training case(s) of {dataset} have no report text in the active text cache "
                f"{cache.folder}: {shown}. Write their reports into {prompt_file} (or set a \"default\" text "
                f"there), then run: nnUNetv2_tevia_prompts embed -d {dataset}")
        return cls(np.stack(feats), np.stack(masks), rows)

    def to(self, device: torch.device) -> "CaseTextTable":
        self.features = self.features.to(device)
        self.masks = self.masks.to(device)
        return self

    def row_indices(self, keys: Sequence[str]) -> List[int]:
        try:
            return [self.rows[k] for k in keys]
        except KeyError as e:
            raise TextCacheError(f"case {e.args[0]} is not in the text table built from the active cache; "
                                 f"re-run nnUNetv2_tevia_prompts embed for this dataset") from None

    def lookup(self, rows: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(rows, device=self.features.device, dtype=torch.long)
        return self.features.index_select(0, idx), self.masks.index_select(0, idx)
