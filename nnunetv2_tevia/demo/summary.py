"""The demo's table and demo_summary.json, from the predictions the demo made and the records of what made them."""
import os
import platform
import time

from nnunetv2_tevia.errors import StaleResultError
from nnunetv2_tevia.evaluation.provenance import read_record
from nnunetv2_tevia.io_utils import atomic_write_json


def write_report(demo) -> str:
    """The demo's last step (nnUNetv2_tevia_demo): score every row, print the table, write the overlays and
    demo_summary.json, whose every row names its model folder and the arguments that trained it."""
    from nnunetv2_tevia.demo.report import dice_table, write_overlays
    from nnunetv2_tevia.prompts.prompt_file import load_prompts

    ending = ".nii.gz" if demo.three_d else ".png"
    tevia = demo.tevia
    models = {t: read_record(demo.model_folder(t)) for t in (tevia, demo.plain)}
    results, rows = {}, []
    for name, trainer, folder, labels in demo.rows():
        made_by = read_record(folder)
        if not (made_by and made_by.get("complete") and models[trainer]
                and made_by["inputs"].get("model") == models[trainer]["id"]):
            raise StaleResultError(f"{folder} is not a finished prediction of the model in "
                                   f"{demo.model_folder(trainer)}; run the demo again to predict it")
        r = results[name] = dice_table(folder, os.path.join(demo.raw, labels), ending)
        rows.append({"row": name, "dice": r["mean"], "pooled_dice": r["pooled"], "n": r["n"],
                     "per_case": r["per_case"], "predictions": folder, "labels": os.path.join(demo.raw, labels),
                     "model_folder": demo.model_folder(trainer), "model_arguments": models[trainer]["arguments"],
                     "prediction_made_by": made_by})
    print()
    width = max(len(name) for name in results)
    print(f"{'model':{width}s} {'mean Dice per case':>18s}  {'cases':>5s}")
    for name, r in results.items():
        print(f"{name:{width}s} {r['mean']:18.4f}  {r['n']:5d}")
    overlays = os.path.join(demo.workdir, "overlays")
    prompts = load_prompts(os.path.join(demo.raw, "tevia_prompts.json"))
    images, labels = os.path.join(demo.raw, "imagesTs"), os.path.join(demo.raw, "labelsTs")
    write_overlays(images, labels, demo.prediction_folder(), prompts,
                   os.path.join(overlays, f"tevia{demo.suffix}"), max_cases=8, file_ending=ending)
    write_overlays(images, labels, demo.prediction_folder(tevia=False), prompts, os.path.join(overlays, "nnunet"),
                   max_cases=8, file_ending=ending)
    swapped = load_prompts(os.path.join(demo.raw, "tevia_prompts_swapped.json"))
    write_overlays(images, os.path.join(demo.raw, "labelsTs_swapped"), demo.prediction_folder("swapped"),
                   swapped, os.path.join(overlays, f"tevia{demo.suffix}_swapped"), max_cases=8, file_ending=ending)
    demo.say(f"overlay PNGs (image, ground truth, prediction, report): {overlays}")
    dataset, trained = read_record(demo.raw), models[tevia]["arguments"]
    summary = {
        tevia: {"dice": results[tevia]["mean"],
                "dice_with_swapped_reports_vs_swapped_truth":
                    results[f"{tevia} (reports swapped to the distractors)"]["mean"],
                "dice_with_swapped_reports_vs_original_truth":
                    results[f"{tevia} (swapped reports, vs the original targets)"]["mean"],
                "dice_without_report": results[f"{tevia} (no report)"]["mean"],
                "dice_with_reworded_reports": {n: results[f"{tevia} ({n})"]["mean"] for n in demo.extra_prompts},
                "per_case": results[tevia]["per_case"]},
        demo.plain: {"dice": results[demo.plain]["mean"], "per_case": results[demo.plain]["per_case"]},
        "rows": rows,
        "dice_convention": "mean over test cases of the per-case foreground Dice (pooled_dice: all pixels of "
                           "all test cases at once); a case without its prediction is an error, never left out",
        # what the models were trained with and on, from their records (made_by: every record in full)
        "budget": {"epochs": trained["epochs"], "iterations_per_epoch": trained["iterations"],
                   "batch_size": trained["batch_size"], "configuration": trained["configuration"],
                   **({k: dataset["arguments"][k] for k in ("num_train", "num_test", "seed")} if dataset else {})},
        "made_by": {"dataset": dataset, "preprocessed": read_record(demo.preprocessed), "models": models},
        "seconds": {**demo.timings, "total": round(time.time() - demo.t0, 1)},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "device": demo.device},
    }
    path = os.path.join(demo.workdir, f"demo_summary{demo.suffix}.json")
    atomic_write_json(path, summary)
    return path
