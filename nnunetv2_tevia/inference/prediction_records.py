"""Which report and which model made each segmentation of an output folder.

Beside the outputs, ``.tevia_predictions/CASE.json`` records the sha256 of the case's text and a fingerprint of the
model (weights of every fold, plans, sliding-window and mirroring settings). ``--continue_prediction`` keeps an
output only when its record matches what this run would use; any other output is predicted again. One small file
per case, written atomically, so parallel ``-num_parts`` runs never write the same file.

A record is written before its case is predicted, and only after the case's old outputs are removed: an output on
disk therefore always has the record of what made it, and an interrupted run leaves a record without an output,
which the next run predicts.
"""
import hashlib
import json
import os
from typing import Dict, List, Sequence

import torch

from nnunetv2_tevia.io_utils import atomic_write_json
from nnunetv2_tevia.prompts.prompt_file import text_sha256

RECORDS = ".tevia_predictions"


def model_fingerprint(predictor) -> str:
    """sha256 of everything of the predictor that changes a segmentation, except the text."""
    h = hashlib.sha256()
    settings = {"plans": predictor.plans_manager.plans, "configuration": predictor.configuration_manager.configuration,
                "step_size": predictor.tile_step_size, "gaussian": predictor.use_gaussian,
                "mirror_axes": list(predictor.allowed_mirroring_axes or ()) if predictor.use_mirroring else []}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for params in predictor.list_of_parameters:
        for name in sorted(params):
            h.update(name.encode())
            value = params[name]
            if torch.is_tensor(value):
                h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            else:
                h.update(repr(value).encode())
    return h.hexdigest()


def _record_path(ofile: str) -> str:
    folder, case = os.path.split(ofile)
    return os.path.join(folder, RECORDS, f"{case}.json")


def _read(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cases_to_predict(ofiles: Sequence[str], case_ids: Sequence[str], texts: Dict[str, str], model_sha: str,
                     file_ending: str, save_probabilities: bool, overwrite: bool) -> List[int]:
    """Indices of the cases to predict: all with ``overwrite``; else those without every output, or whose outputs
    were made from another text or by another model. Old outputs of a case to predict are removed first."""
    todo = []
    for i, (ofile, case) in enumerate(zip(ofiles, case_ids)):
        record = {"case": case, "text_sha256": text_sha256(texts[case]), "model_sha256": model_sha}
        path = _record_path(ofile)
        same = _read(path) == record
        outputs = [ofile + file_ending] + ([ofile + ".npz"] if save_probabilities else [])
        if same and not overwrite and all(os.path.isfile(f) for f in outputs):
            continue
        if not same:
            for f in (ofile + file_ending, ofile + ".npz", ofile + ".pkl"):
                if os.path.isfile(f):
                    os.remove(f)
            atomic_write_json(path, record)
        todo.append(i)
    if not overwrite:
        print(f"--continue_prediction: {len(ofiles) - len(todo)} case(s) kept (same text, same model), {len(todo)} "
              f"to predict (not predicted yet, or made from another text or by another model)")
    return todo
