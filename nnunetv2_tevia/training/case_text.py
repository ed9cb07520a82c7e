"""Each case's cached text features as one table on the training device, looked up by ``batch['keys']``.

Built once from the active text cache when the trainer initialises: no I/O and no encoder in the
training loop. Which text each case gets is the one rule of prompts/text_choice.py (``training_choices``); row 0 is
the no-report text. A case's report has one row; its other phrasings (the prompt file's
"alternatives" and the paraphrases, text/cache/variants.py) have rows of their own, and training draws one of the
case's rows per sample (``row_indices(..., rng=...)``); validation and prediction always use the report itself.
"""
from functools import partial
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.model.forward_text import CaseText
from nnunetv2_tevia.prompts.text_choice import REPORT, TextChoice, choose_texts, training_rule
from nnunetv2_tevia.text.cache.mirror import parse_flip_key
from nnunetv2_tevia.training.mirror_text import sample_flips

NO_REPORT_ROW = 0


def training_choices(cache, case_ids: Iterable[str], *, text_dropout: float, case_text: bool, dataset: str,
                     prompt_file: str) -> Dict[str, TextChoice]:
    """Each training case's text by the one rule (``training_rule``): its report where the cache holds one (the
    cache files it under its sha256, the choice's text), else the no-report text or a MissingTextError naming every
    such case, the prompt file and the command to run."""
    case_ids = list(case_ids)
    rule = training_rule(cache.no_report_text, text_dropout=text_dropout, case_text=case_text, dataset=dataset,
                         cache_folder=cache.folder, prompt_file=prompt_file)
    return choose_texts(case_ids, {k: cache.text_sha256(k) for k in case_ids}, rule)


def load_rows(loads: Sequence[Callable[[], Tuple[np.ndarray, np.ndarray]]]) -> Tuple[np.ndarray, np.ndarray]:
    """Each loader's (features (L, D), mask (L,)) as rows of two arrays allocated once (not a list of loaded copies
    and then a stacked one)."""
    features = masks = None
    for i, load in enumerate(loads):
        f, m = load()
        if features is None:
            features = np.empty((len(loads),) + f.shape, f.dtype)
            masks = np.empty((len(loads),) + m.shape, m.dtype)
        features[i], masks[i] = f, m
    return features, masks


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
    def from_cache(cls, cache, choices: Dict[str, TextChoice]) -> "CaseTextTable":
        """The table of ``choices`` (``training_choices``): a case's report (and its phrasings) from the cache, every
        other case on the no-report row."""
        loads: List[Callable[[], Tuple[np.ndarray, np.ndarray]]] = [cache.no_report_features]
        rows: Dict[str, int] = {}
        for k, choice in choices.items():
            if choice.source == REPORT:
                rows[k] = len(loads)
                loads.append(partial(cache.features, k))
            else:
                rows[k] = NO_REPORT_ROW
        # the case's other phrasings (one row per distinct text), loaded into the same arrays
        variant_rows: Dict[str, List[int]] = {}
        row_of: Dict[str, int] = {}
        for k, row in rows.items():
            if row == NO_REPORT_ROW:
                continue
            for sha in cache.variant_shas(k):
                if sha not in row_of:
                    row_of[sha] = len(loads)
                    loads.append(partial(cache.features_of_text, sha, f"a phrasing of case {k!r}"))
                variant_rows.setdefault(k, []).append(row_of[sha])
        table = cls(*load_rows(loads), rows)
        table.variant_rows = variant_rows
        table.variant_sha = {r: s for s, r in row_of.items()}
        return table

    def _append(self, loads: Sequence[Callable[[], Tuple[np.ndarray, np.ndarray]]]) -> None:
        """Rows loaded straight into the grown table: no list of loaded copies and no concatenation beside it, so the
        peak memory is the old table plus the new one (a cache of many phrasings and flips is tens of MB in 2D)."""
        if not loads:
            return
        n = len(self.features)
        features = self.features.new_empty((n + len(loads),) + tuple(self.features.shape[1:]))
        masks = self.masks.new_empty((n + len(loads),) + tuple(self.masks.shape[1:]))
        features[:n], masks[:n] = self.features, self.masks
        self.features, self.masks = features[:n], masks[:n]  # still whole if a load fails; the old table is freed
        for i, load in enumerate(loads):
            f, m = load()
            features[n + i], masks[n + i] = torch.from_numpy(f), torch.from_numpy(m)
        self.features, self.masks = features, masks

    def to(self, device: torch.device) -> "CaseTextTable":
        self.features = self.features.to(device)
        self.masks = self.masks.to(device)
        return self

    def add_mirror_rows(self, cache, map_axes: Sequence[int], patch_to_map: Sequence[int]) -> None:
        """Rows of each case's flipped reports (those that differ from its own; text/cache/mirror.py). Cases on
        the no-report row keep it whatever the flip. ``patch_to_map``: each patch axis's map axis
        (model/mirror_axes.patch_map_axes)."""
        loads = []
        for k, row in self.rows.items():
            if row == NO_REPORT_ROW:
                continue
            for key in cache.mirror_flips(k):
                self.flip_rows.setdefault(k, {})[parse_flip_key(key)] = len(self.features) + len(loads)
                loads.append(partial(cache.mirrored_features, k, parse_flip_key(key)))
        for row, sha in self.variant_sha.items():
            for key, fsha in cache.variant_flips(sha).items():
                self.variant_flip_rows.setdefault(row, {})[parse_flip_key(key)] = len(self.features) + len(loads)
                loads.append(partial(cache.features_of_text, fsha, f"a flipped phrasing ({key})"))
        self._append(loads)
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

    def case_text(self, case_id: str) -> CaseText:
        """A case's report with its flipped reports, for a prediction's forwards (the final validation)."""
        row = self.row_indices([case_id])[0]
        flipped = {combo: (self.features[r], self.masks[r]) for combo, r in self.flip_rows.get(case_id, {}).items()}
        return CaseText.of(case_id, self.features[row], self.masks[row], flipped)

    def lookup(self, rows: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(rows, device=self.features.device, dtype=torch.long)
        return self.features.index_select(0, idx), self.masks.index_select(0, idx)
