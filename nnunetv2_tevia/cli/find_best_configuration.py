"""``nnUNetv2_tevia_find_best_configuration``: nnU-Net's, with inference instructions that use the reports.

nnU-Net's ``nnUNetv2_find_best_configuration`` works on TeViA results as it is (train with ``--npz``
so that ensembles can be evaluated). Its printed instructions say ``nnUNetv2_predict``, which would
refuse a TeViA model; this command runs it, then prints and writes the same instructions with
``nnUNetv2_tevia_predict ... --prompts PROMPTS_JSON`` for every TeViA model among the winners.
"""
import sys

from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.model.config import PLANS_KEY


def is_tevia_model(dataset_name: str, trainer: str, plans: str, configuration: str) -> bool:
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    plans_file = join(get_output_folder(dataset_name, trainer, plans, configuration), "plans.json")
    return isfile(plans_file) and PLANS_KEY in load_json(plans_file)


def tevia_inference_instructions(inference_info: dict) -> str:
    """The instructions of nnU-Net's ``print_inference_instructions``, with TeViA models predicted with text."""
    from nnunetv2.configuration import default_num_processes
    from nnunetv2.evaluation.find_best_configuration import generate_inference_command
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    dataset = inference_info["dataset_name_or_id"]
    dataset_name = maybe_convert_to_dataset_name(dataset)
    models = inference_info["best_model_or_ensemble"]["selected_model_or_models"]
    ensemble = len(models) > 1
    lines = ["***Run inference like this:***", ""]
    outputs = []
    for j, m in enumerate(models):
        out = f"OUTPUT_FOLDER_MODEL_{j + 1}" if ensemble else "OUTPUT_FOLDER"
        outputs.append(out)
        cmd = generate_inference_command(dataset, m["configuration"], m["plans_identifier"], m["trainer"],
                                         inference_info["folds"], save_npz=ensemble, output_folder=out)
        if is_tevia_model(dataset_name, m["trainer"], m["plans_identifier"], m["configuration"]):
            cmd = "\n".join(c.replace("nnUNetv2_predict ", "nnUNetv2_tevia_predict ", 1) + " --prompts PROMPTS_JSON"
                            for c in cmd.splitlines())
        lines.append(cmd)
    if ensemble:
        lines += ["", "Then ensemble with:", "",
                  f"nnUNetv2_ensemble -i {' '.join(outputs)} -o OUTPUT_FOLDER -np {default_num_processes}"]
    best = inference_info["best_model_or_ensemble"]
    lines += ["", "***Once inference is completed, run postprocessing like this:***", "",
              f"nnUNetv2_apply_postprocessing -i OUTPUT_FOLDER -o OUTPUT_FOLDER_PP -pp_pkl_file "
              f"{best['postprocessing_file']} -np {default_num_processes} -plans_json {best['some_plans_file']}",
              "", "PROMPTS_JSON is a prompt file holding the reports of the cases in INPUT_FOLDER (default: the "
              "dataset's tevia_prompts.json)."]
    return "\n".join(lines)


@exit_on_user_error
def find_best_configuration_entry():
    from nnunetv2.evaluation.find_best_configuration import find_best_configuration_entry_point
    from nnunetv2.paths import nnUNet_results
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    if "-h" in sys.argv or "--help" in sys.argv:
        print(__doc__.strip() + "\n\nnnU-Net's options follow.\n")
    find_best_configuration_entry_point()  # nnU-Net's own argument parsing, evaluation and ensembling
    dataset_name = maybe_convert_to_dataset_name(sys.argv[1])
    info_file = join(nnUNet_results, dataset_name, "inference_information.json")
    text = tevia_inference_instructions(load_json(info_file))
    out = join(nnUNet_results, dataset_name, "inference_instructions_tevia.txt")
    with open(out, "w") as f:
        f.write(text + "\n")
    print("\n***With per-case reports (TeViA models):***\n")
    print(text)
    print(f"\n(written to {out})")
