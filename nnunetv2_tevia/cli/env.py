"""``nnUNetv2_tevia_env``: print the export line for people who set ``nnUNet_extTrainer`` by hand."""
import argparse
import os

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.demo.budget import SHIM_FOLDER as DEMO_SHIM_FOLDER
from nnunetv2_tevia.registration import shim_folder


@exit_on_user_error
def env_entry():
    parser = argparse.ArgumentParser(
        description="Print the shell line that makes nnU-Net find the TeViA trainers (nnUNet_extTrainer). "
                    "The package already sets it at interpreter start through a .pth file; use this only if "
                    "you start Python with -S or want the variable in your shell profile.")
    parser.add_argument("--folder-only", action="store_true",
                        help="[OPTIONAL] Print only the trainer shim folder.")
    parser.add_argument("--demo", action="store_true",
                        help="[OPTIONAL] The folder of the demo's budget trainers (<trainer>_demoBudget...) instead, "
                             "which only nnUNetv2_tevia_demo registers: for running nnU-Net's commands on a demo "
                             "model yourself (eval \"$(nnUNetv2_tevia_env --demo)\", then nnUNetv2_tevia_predict).")
    args = parser.parse_args()
    folder = DEMO_SHIM_FOLDER if args.demo else shim_folder()
    if args.folder_only:
        print(folder)
        return
    # Written against the shell's own value so that it keeps whatever is set there.
    print(f'export nnUNet_extTrainer="${{nnUNet_extTrainer:+$nnUNet_extTrainer{os.pathsep}}}{folder}"')
