"""Overlap metrics of binary masks, per case and pooled, as pure functions.

Two conventions are in use in the text-guided segmentation literature and give different numbers:
  * per case: Dice (or IoU) of every case, then the mean over cases (nnU-Net, LViT);
  * pooled: true/false positives and false negatives summed over all pixels of all cases, then one Dice
    (Ariadne's Thread / LanGuideMedSeg). Large lesions weigh more; a missed small lesion costs little.
A case where both prediction and ground truth are empty scores 1.0 per case (nothing to find and nothing
found is correct; nnU-Net's own evaluation gives NaN instead and leaves the case out). Pooled scores need no
such rule unless every case is empty, and then they are 1.0 too.
A case to score without a prediction file is an error naming it (``prediction_files``), never left out of a mean:
the demo and the benchmark both score through that one rule.
"""
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence

import numpy as np

from nnunetv2_tevia.errors import MissingPredictionError

EMPTY_SCORE = 1.0


@dataclass(frozen=True)
class Counts:
    tp: int
    fp: int
    fn: int


def confusion_counts(pred: np.ndarray, gt: np.ndarray) -> Counts:
    """Pixel counts of two boolean masks of the same shape."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    tp = int(np.count_nonzero(pred & gt))
    return Counts(tp=tp, fp=int(np.count_nonzero(pred)) - tp, fn=int(np.count_nonzero(gt)) - tp)


def dice_from_counts(c: Counts) -> float:
    denominator = 2 * c.tp + c.fp + c.fn
    return EMPTY_SCORE if denominator == 0 else 2 * c.tp / denominator


def iou_from_counts(c: Counts) -> float:
    denominator = c.tp + c.fp + c.fn
    return EMPTY_SCORE if denominator == 0 else c.tp / denominator


def pooled(counts: Iterable[Counts]) -> Counts:
    counts = list(counts)
    return Counts(tp=sum(c.tp for c in counts), fp=sum(c.fp for c in counts), fn=sum(c.fn for c in counts))


def summarise(counts: Sequence[Counts]) -> Dict[str, float]:
    """Per-case mean and pooled Dice and IoU of a set of cases (all NaN if there are none)."""
    if not counts:
        return {"n_cases": 0, **{k: float("nan") for k in ("per_case_dice", "per_case_iou", "pooled_dice",
                                                           "pooled_iou")}}
    total = pooled(counts)
    return {
        "n_cases": len(counts),
        "per_case_dice": float(np.mean([dice_from_counts(c) for c in counts])),
        "per_case_iou": float(np.mean([iou_from_counts(c) for c in counts])),
        "pooled_dice": dice_from_counts(total),
        "pooled_iou": iou_from_counts(total),
    }


def prediction_files(pred_folder: str, case_ids: List[str], file_ending: str) -> Dict[str, str]:
    """{case id: prediction file} for every case to score; a MissingPredictionError naming the cases without one."""
    files = {c: os.path.join(pred_folder, c + file_ending) for c in case_ids}
    missing = [c for c, f in files.items() if not os.path.isfile(f)]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise MissingPredictionError(
            f"{len(missing)} of {len(case_ids)} case(s) to score have no prediction in {pred_folder}: {shown} "
            f"(expected {files[missing[0]]}). Predict them again; a case is never left out of the mean")
    return files
