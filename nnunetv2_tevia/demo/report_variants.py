"""Variants of the demo's test reports: the distractors named instead of the targets (swapped), and the same
targets in the validation and held-out wordings (report_templates.WORDINGS), each with the labels to score against.
"""
from typing import Optional

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import join, maybe_mkdir_p

from nnunetv2_tevia.demo.generator import (METADATA_FILENAME, SWAPPED_LABELS_FOLDER, SWAPPED_PROMPTS_FILENAME,
                                           _write_case, load_metadata, render_mask)
from nnunetv2_tevia.demo.report_templates import demo_mirror_map, format_report
from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts


def swapped_report(case: dict, seed: int = 0) -> tuple[str, list[str]]:
    """Report naming the distractors of ``case`` (an entry of demo_metadata.json's "cases") and those zones.

    The distractors are the complement of the targets, so they number 1 to 3 as well. The phrasing is drawn
    from a generator seeded by ``seed`` and the case's lesion geometry, hence is deterministic.
    """
    zones = [l["zone"] for l in case["lesions"] if not l["target"]]
    # Seeding from the geometry ties the phrasing to the case without needing its id.
    key = [seed, 2] + [int(round(c * 1e4)) for l in case["lesions"] for c in l["center"]]
    return format_report(zones, np.random.default_rng(key)), zones


# row name -> (report_templates.WORDINGS key, prompt file name)
REWORDED_PROMPTS = {"validation wording": ("validation", "tevia_prompts_validation_wording.json"),
                    "held-out wording": ("held-out", "tevia_prompts_heldout_wording.json")}


def reworded_report(case: dict, wording: str, seed: int = 0) -> str:
    """The case's report (same targets) in ``wording`` (report_templates.WORDINGS), deterministic per case."""
    key = [seed, 3, list(REWORDED_PROMPTS).index(wording)] + \
        [int(round(c * 1e4)) for l in case["lesions"] for c in l["center"]]
    return format_report([l["zone"] for l in case["lesions"] if l["target"]], np.random.default_rng(key),
                         REWORDED_PROMPTS[wording][0])


def write_reworded_variants(dataset_folder: str, case_ids: Optional[list[str]] = None, seed: int = 0) -> dict:
    """Write the test cases' reports in the validation and the held-out wordings (report_templates.WORDINGS): the
    same targets, so they are scored against the ordinary labelsTs. Returns {row name: prompt file path}."""
    meta = load_metadata(dataset_folder)
    cases = meta["cases"]
    if case_ids is None:
        case_ids = sorted(c for c, v in cases.items() if v["split"] == "test")
    out = {}
    for row, (_, filename) in REWORDED_PROMPTS.items():
        texts = {c: reworded_report(cases[c], row, seed) for c in case_ids}
        out[row] = save_prompts(PromptFile(path=join(dataset_folder, filename), cases=texts,
                                           classes={"lesion": "the lesions named in the report"},
                                           mirror=demo_mirror_map(meta["three_d"])))
    return out


def write_swapped_variant(dataset_folder: str, case_ids: Optional[list[str]] = None, seed: int = 0) -> dict:
    """Write swapped reports and matching labels for test cases (default: all test cases).

    Writes ``tevia_prompts_swapped.json`` (only the chosen cases) and ``labelsTs_swapped/<case><file_ending>``
    into ``dataset_folder``. Returns {"prompts": path, "labels": folder, "cases": [case ids]}.
    """
    meta = load_metadata(dataset_folder)
    cases = meta["cases"]
    if case_ids is None:
        case_ids = sorted(c for c, v in cases.items() if v["split"] == "test")
    for unknown in (c for c in case_ids if c not in cases):
        raise KeyError(f"case {unknown} is not in {join(dataset_folder, METADATA_FILENAME)}")
    labels_folder = join(dataset_folder, SWAPPED_LABELS_FOLDER)
    maybe_mkdir_p(labels_folder)
    shape = (meta["size"],) * (3 if meta["three_d"] else 2)
    texts = {}
    for case_id in case_ids:
        texts[case_id], zones = swapped_report(cases[case_id], seed)
        _write_case(None, render_mask(shape, cases[case_id]["lesions"], zones), case_id, None, labels_folder,
                    meta["three_d"])
    prompts_path = join(dataset_folder, SWAPPED_PROMPTS_FILENAME)
    save_prompts(PromptFile(path=prompts_path, cases=texts, classes={"lesion": "the lesions named in the report"},
                            mirror=demo_mirror_map(meta["three_d"])))
    return {"prompts": prompts_path, "labels": labels_folder, "cases": list(case_ids)}
