"""Each case's cached text features as one table on the training device, looked up by ``batch['keys']``.

Built once from the active text cache when the trainer initialises: no I/O and no encoder in the
training loop. Row 0 is the no-report text. A case's report has one row; its other phrasings (the prompt file's
"alternatives" and the paraphrases, text/cache/variants.py) have rows of their own, and training draws one of the
case's rows per sample (``row_indices(..., rng=...)``); validation and prediction always use the report itself.
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nnunetv2_tevia.errors import MissingTextError, TextCacheError
from nnunetv2_tevia.text.cache.mirror import parse_flip_key
from nnunetv2_tevia.training.mirror_text import sample_flips

NO_REPORT_ROW = 0


class CaseTextTable:
    def __init__(self, features: np.ndarray, masks: np.ndarray, rows: Dict[str, int]):
        self.features = torch.from_numpy(features)   # (R, L, D) float16
        self.masks = torch.from_numpy(masks)         # (R, L) bool
        self.rows = rows                             # case id -> row; cases without a report -> NO_REPORT_ROW
        self.flip_rows: Dict[str, Dict[tuple, int]] = {}  # case id -> flipped map axes -> row of its flipped report
        self.variant_rows: Dict[str, List[int]] = {}  # case id -> rows of its other phrasings
        self.variant_flip_rows: Dict[int, Dict[tuple, int]] = {}  # phrasing row -> flipped map axes -> row
        self.variant_sha: Dict[int, str] = {}  # phrasing row -> sha256 of its text (for its flipped variants)
        self.flip_patch_to_map, self.flip_map_axes = (), ()

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
        table = cls(np.stack(feats), np.stack(masks), rows)
        table._add_variant_rows(cache)
        return table

    def _add_variant_rows(self, cache) -> None:
        feats, masks, row_of = [], [], {}
        for k, row in self.rows.items():
            if row == NO_REPORT_ROW:
                continue
            for sha in cache.variant_shas(k):
                if sha not in row_of:
                    f, m = cache.features_of_text(sha, f"a phrasing of case {k!r}")
                    row_of[sha] = len(self.features) + len(feats)
                    feats.append(f)
                    masks.append(m)
                self.variant_rows.setdefault(k, []).append(row_of[sha])
        self.variant_sha = {r: s for s, r in row_of.items()}
        self._append(feats, masks)

    def _append(self, feats, masks) -> None:
        if feats:
            device = self.features.device
            self.features = torch.cat((self.features, torch.from_numpy(np.stack(feats)).to(device)))
            self.masks = torch.cat((self.masks, torch.from_numpy(np.stack(masks)).to(device)))

    def to(self, device: torch.device) -> "CaseTextTable":
        self.features = self.features.to(device)
        self.masks = self.masks.to(device)
        return self

    def add_mirror_rows(self, cache, map_axes: Sequence[int], patch_to_map: Sequence[int]) -> None:
        """Rows of each case's flipped reports (those that differ from its own; text/cache/mirror.py). Cases on
        the no-report row keep it whatever the flip. ``patch_to_map``: each patch axis's map axis
        (model/mirror_axes.patch_map_axes)."""
        feats, masks = [], []
        for k, row in self.rows.items():
            if row == NO_REPORT_ROW:
                continue
            for key in cache.mirror_flips(k):
                f, m = cache.mirrored_features(k, parse_flip_key(key))
                self.flip_rows.setdefault(k, {})[parse_flip_key(key)] = len(self.features) + len(feats)
                feats.append(f)
                masks.append(m)
        for row, sha in self.variant_sha.items():
            for key, fsha in cache.variant_flips(sha).items():
                f, m = cache.features_of_text(fsha, f"a flipped phrasing ({key})")
                self.variant_flip_rows.setdefault(row, {})[parse_flip_key(key)] = len(self.features) + len(feats)
                feats.append(f)
                masks.append(m)
        self._append(feats, masks)
        self.flip_patch_to_map, self.flip_map_axes = tuple(patch_to_map), tuple(map_axes)

    def row_indices(self, keys: Sequence[str], mirror_axes=None, rng: Optional[np.random.Generator] = None
                    ) -> List[int]:
        """Each key's row; with ``rng`` (training), a row drawn uniformly from the case's report and its other
        phrasings; with ``mirror_axes`` (bool (B, patch ndim), batch['mirror_axes']), the row of that text as it
        reads after that sample's flips."""
        try:
            rows = [self.rows[k] for k in keys]
        except KeyError as e:
            raise TextCacheError(f"case {e.args[0]} is not in the text table built from the active cache; "
                                 f"re-run nnUNetv2_tevia_prompts embed for this dataset") from None
        if rng is not None and self.variant_rows:
            choices = [[r] + self.variant_rows.get(k, []) for k, r in zip(keys, rows)]
            rows = [c[int(rng.integers(len(c)))] for c in choices]
        if mirror_axes is None or not (self.flip_rows or self.variant_flip_rows):
            return rows
        flips = sample_flips(mirror_axes, self.flip_patch_to_map, self.flip_map_axes)
        return [self.flip_rows.get(k, {}).get(f, r) if r == self.rows[k] else self.variant_flip_rows.get(r, {}).get(f, r)
                for k, f, r in zip(keys, flips, rows)]

    def lookup(self, rows: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(rows, device=self.features.device, dtype=torch.long)
        return self.features.index_select(0, idx), self.masks.index_select(0, idx)
