"""Overlap metrics of binary masks, per case and pooled, as pure functions.

Two conventions are in use in the text-guided segmentation literature and give different numbers:
  * per case: Dice (or IoU) of every case, then the mean over cases (nnU-Net, LViT);
  * pooled: true/false positives and false negatives summed over all pixels of all cases, then one Dice
    (Ariadne's Thread / LanGuideMedSeg). Large lesions weigh more; a missed small lesion costs little.
A case where both prediction and ground truth are empty scores 1.0 per case (nothing to find and nothing
found is correct; nnU-Net's own evaluation gives NaN instead and leaves the case out). Pooled scores need no
such rule unless every case is empty, and then they are 1.0 too.
"""
from dataclasses import dataclass
from typing import Dict, Iterable, Sequence

import numpy as np

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
