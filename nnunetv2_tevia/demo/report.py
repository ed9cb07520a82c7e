"""Scoring and pictures for the demo: per-case Dice and overlay PNGs with the report as title."""
import io
import os
import textwrap
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk
from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json, maybe_mkdir_p, subfiles

from nnunetv2_tevia.evaluation.metrics import confusion_counts, dice_from_counts, prediction_files, summarise
from nnunetv2_tevia.io_utils import atomic_write_bytes

_KNOWN_ENDINGS = (".nii.gz", ".nii", ".png", ".mha", ".nrrd", ".tif", ".bmp")


def _read(path: str) -> np.ndarray:
    # SimpleITK reads NIfTI and PNG alike; 2D files come back as [row, column], 3D as [z, y, x].
    return sitk.GetArrayFromImage(sitk.ReadImage(path))


def _case_ids(folder: str, file_ending: str) -> list[str]:
    return [f[: -len(file_ending)] for f in subfiles(folder, suffix=file_ending, join=False)]


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty (nothing to find and nothing found is correct)."""
    return dice_from_counts(confusion_counts(pred, gt))


def dice_table(pred_folder: str, gt_folder: str, file_ending: str, label: int = 1) -> dict:
    """Per-case Dice of ``label`` of every case in ``gt_folder`` against its prediction in ``pred_folder``.

    A case where both prediction and ground truth lack the label scores 1.0 (nnU-Net's own evaluation
    reports NaN there instead and leaves it out of the mean). Returns {"per_case": {case_id: dice}, "mean": mean
    over cases (NaN if none), "pooled": pooled Dice, "n": number of cases}. A case without its prediction is a
    MissingPredictionError naming it (never left out of the mean; evaluation/metrics.py), a prediction without
    ground truth a FileNotFoundError, a shape mismatch a ValueError.
    """
    cases = sorted(_case_ids(gt_folder, file_ending))
    extra = sorted(set(_case_ids(pred_folder, file_ending)) - set(cases))
    if extra:
        raise FileNotFoundError(f"no ground truth {join(gt_folder, extra[0] + file_ending)} for prediction of case "
                                f"{extra[0]} in {pred_folder}")
    counts = {}
    for case_id, pred_file in prediction_files(pred_folder, cases, file_ending).items():
        gt_file = join(gt_folder, case_id + file_ending)
        pred, gt = _read(pred_file), _read(gt_file)
        if pred.shape != gt.shape:
            raise ValueError(f"case {case_id}: prediction shape {pred.shape} differs from ground truth {gt.shape} "
                             f"({gt_file})")
        counts[case_id] = confusion_counts(pred == label, gt == label)
    summary = summarise(list(counts.values()))
    return {"per_case": {k: dice_from_counts(c) for k, c in counts.items()}, "mean": summary["per_case_dice"],
            "pooled": summary["pooled_dice"], "n": len(counts)}


def _guess_file_ending(image_folder: str, label_folder: str) -> str:
    dataset_json = join(os.path.dirname(os.path.abspath(image_folder)), "dataset.json")
    if isfile(dataset_json):
        return load_json(dataset_json)["file_ending"]
    for f in sorted(os.listdir(label_folder)):
        for ending in _KNOWN_ENDINGS:
            if f.endswith(ending):
                return ending
    raise ValueError(f"cannot tell the file ending of {label_folder}; pass file_ending")


def _display_slice(gt: Optional[np.ndarray], pred: Optional[np.ndarray], shape: tuple) -> Optional[int]:
    """For 3D, the axial slice with most ground-truth foreground (else prediction, else the middle)."""
    if len(shape) == 2:
        return None
    for mask in (gt, pred):
        if mask is not None and mask.any():
            return int(np.argmax((mask > 0).reshape(shape[0], -1).sum(1)))
    return shape[0] // 2


def write_overlays(image_folder: str, gt_folder: Optional[str], pred_folder: str, prompts: Union[dict, object],
                   out_folder: str, max_cases: int = 8, file_ending: Optional[str] = None) -> list[str]:
    """Write one PNG per predicted case (first ``max_cases`` by id) to ``out_folder``; return their paths.

    Each PNG has three panels: the image, the image with the ground-truth contour (green), and the image with
    the prediction filled (red) and the ground-truth contour. The case's report is the title. ``prompts`` maps
    case id to text (a PromptFile's ``cases`` or the PromptFile itself). For 3D images the panels show the
    axial slice with most ground-truth foreground. ``file_ending`` defaults to the one in the dataset.json next
    to ``image_folder``. ``gt_folder`` may be None.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    texts = getattr(prompts, "cases", prompts)
    file_ending = file_ending or _guess_file_ending(image_folder, pred_folder)
    maybe_mkdir_p(out_folder)
    written = []
    for case_id in sorted(_case_ids(pred_folder, file_ending))[:max_cases]:
        image = _read(join(image_folder, f"{case_id}_0000{file_ending}")).astype(np.float32)
        pred = _read(join(pred_folder, case_id + file_ending))
        gt_file = join(gt_folder, case_id + file_ending) if gt_folder is not None else None
        gt = _read(gt_file) if gt_file is not None and isfile(gt_file) else None
        z = _display_slice(gt, pred, image.shape)
        if z is not None:
            image, pred = image[z], pred[z]
            gt = gt[z] if gt is not None else None

        fig, axes = plt.subplots(1, 3, figsize=(9, 3.6))
        panels = ("image", "ground truth", "prediction")
        for ax, panel in zip(axes, panels):
            ax.imshow(image, cmap="gray", interpolation="nearest")
            if panel == "prediction":
                ax.imshow(np.ma.masked_where(pred == 0, pred), cmap="autumn", alpha=0.5, interpolation="nearest")
            if panel != "image" and gt is not None and gt.any():
                ax.contour(gt > 0, levels=[0.5], colors="lime", linewidths=1)
            ax.set_title(panel + (f" (slice {z})" if z is not None and panel == "image" else ""), fontsize=9)
            ax.set_axis_off()
        text = texts.get(case_id, "(no report)")
        fig.suptitle(f"{case_id}: " + "\n".join(textwrap.wrap(text, 90)), fontsize=10)
        fig.tight_layout()
        path = join(out_folder, f"{case_id}.png")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    return written
