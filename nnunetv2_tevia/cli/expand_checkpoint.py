"""``nnUNetv2_tevia_expand_checkpoint``: make a plain nnU-Net checkpoint usable for TeViA fine-tuning."""
import argparse

from nnunetv2_tevia.cli._common import exit_on_user_error


@exit_on_user_error
def expand_checkpoint_entry(argv=None):
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_tevia_expand_checkpoint",
        description="Fine-tune TeViA from a plain nnU-Net checkpoint. nnUNetv2_train -pretrained_weights refuses "
                    "a plain checkpoint for a TeViA trainer (the guided stages are missing from it). This command "
                    "builds the TeViA network for the dataset, configuration and plans (from "
                    "nnUNet_preprocessed and the active text cache), puts every plain weight into it and writes "
                    "a checkpoint that -pretrained_weights accepts. The guided stages start from their fresh "
                    "initialisation.")
    parser.add_argument("-i", dest="input", required=True,
                        help="[REQUIRED] plain nnU-Net checkpoint (checkpoint_final.pth of an nnUNetv2_train run "
                             "with the same plans)")
    parser.add_argument("-o", dest="output", required=True, help="[REQUIRED] checkpoint to write")
    parser.add_argument("-d", dest="dataset", required=True, help="[REQUIRED] dataset name or id to fine-tune on")
    parser.add_argument("-c", dest="configuration", required=True,
                        help="[REQUIRED] configuration, e.g. 2d or 3d_fullres")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans",
                        help="[OPTIONAL] plans identifier. Default: nnUNetPlans")
    parser.add_argument("-tr", dest="trainer", default="nnUNetTrainerTeViA",
                        help="[OPTIONAL] TeViA trainer (variant) that will be fine-tuned. Default: nnUNetTrainerTeViA")
    args = parser.parse_args(argv)

    from nnunetv2_tevia.training.pretrained import expand_checkpoint

    command = expand_checkpoint(args.input, args.output, args.dataset, args.configuration, args.plans, args.trainer)
    print(f"wrote {args.output}. Fine-tune with (FOLD: 0 to 4, or all; the same file serves every fold):\n"
          f"  {command}")


if __name__ == "__main__":
    expand_checkpoint_entry()
