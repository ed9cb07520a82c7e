"""``nnUNetv2_tevia_env``: print the export line for people who set ``nnUNet_extTrainer`` by hand."""
import argparse
import os

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.registration import shim_folder


@exit_on_user_error
def env_entry():
    parser = argparse.ArgumentParser(
        description="Print the shell line that makes nnU-Net find the TeViA trainers (nnUNet_extTrainer). "
                    "The package already sets it at interpreter start through a .pth file; use this only if "
                    "you start Python with -S or want the variable in your shell profile.")
    parser.add_argument("--folder-only", action="store_true",
                        help="[OPTIONAL] Print only the trainer shim folder.")
    args = parser.parse_args()
    if args.folder_only:
        print(shim_folder())
        return
    # Written against the shell's own value so that it keeps whatever is set there.
    print(f'export nnUNet_extTrainer="${{nnUNet_extTrainer:+$nnUNet_extTrainer{os.pathsep}}}{shim_folder()}"')
