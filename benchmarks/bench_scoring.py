"""Scores of a prediction folder against a label folder, read with the dataset's own nnU-Net reader."""
from typing import Dict, List

from batchgenerators.utilities.file_and_folder_operations import join
from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

from nnunetv2_tevia.evaluation.metrics import confusion_counts, prediction_files, summarise


def foreground_labels(dataset_json: Dict) -> Dict[str, int]:
    labels = {}
    for name, value in dataset_json["labels"].items():
        if isinstance(value, (list, tuple)):
            raise ValueError(f"label {name!r} is a region {value}; the benchmark scores plain labels only")
        if int(value) != 0 and name != "ignore":
            labels[name] = int(value)
    return labels


def score_folder(pred_folder: str, gt_folder: str, case_ids: List[str], dataset_json: Dict) -> Dict:
    """Per label: every case's pixel counts and the per-case / pooled summary; and the mean over labels."""
    ending = dataset_json["file_ending"]
    reader = determine_reader_writer_from_dataset_json(dataset_json, join(gt_folder, case_ids[0] + ending))()
    labels = foreground_labels(dataset_json)
    counts = {name: {} for name in labels}
    for case_id, pred_file in prediction_files(pred_folder, case_ids, ending).items():  # the demo's rule too
        gt_file = join(gt_folder, case_id + ending)
        pred, _ = reader.read_seg(pred_file)
        gt, _ = reader.read_seg(gt_file)
        for name, value in labels.items():
            counts[name][case_id] = confusion_counts(pred == value, gt == value)
    per_label = {name: {"summary": summarise(list(c.values())),
                        "cases": {k: vars(v) for k, v in c.items()}} for name, c in counts.items()}
    keys = ("per_case_dice", "per_case_iou", "pooled_dice", "pooled_iou")
    mean = {k: sum(v["summary"][k] for v in per_label.values()) / len(per_label) for k in keys}
    return {"labels": per_label, "mean_over_labels": {"n_cases": len(case_ids), **mean}}
