"""Do location words still work where the patch is smaller than the image? The demo at 128 x 128 with a 64 x 64 patch.

    python benchmarks/patch_position_demo.py -o tevia_patch_demo

Writes the demo dataset at 128 x 128 (the same four-quadrant task: the report names the target lesions), plans and
preprocesses it, and adds a configuration ``2d_patch64`` to its plans (nnU-Net's own ``inherits_from``: the 2d
configuration with a 64 x 64 patch, so every training crop shows about a quarter of the image and prediction
slides 3 x 3 tiles over it). Then trains, at the demo budget, ``nnUNetTrainerTeViA_demoBudget`` (positions are
where the crop or tile lies in the image) and ``nnUNetTrainerTeViA_noPatchPosition_demoBudget`` (positions
relative to the crop or tile), predicts the test images with their reports and with reports swapped to the
distractors, and writes OUT/patch_position.md with the Dice of each. A second call skips what is done.
Budget on the 2-core CPU: about 20 minutes.
"""
import argparse
import json
import os
import sys

from nnunetv2_tevia.cli.demo import Demo

TRAINERS = ("nnUNetTrainerTeViA_demoBudget", "nnUNetTrainerTeViA_noPatchPosition_demoBudget")
CONFIG = "2d_patch64"


def add_small_patch_configuration(plans_file: str, patch: int) -> None:
    plans = json.load(open(plans_file))
    if CONFIG not in plans["configurations"]:
        plans["configurations"][CONFIG] = {"inherits_from": "2d", "patch_size": [patch, patch]}
        with open(plans_file + ".tmp", "w") as f:
            json.dump(plans, f, indent=2)
        os.replace(plans_file + ".tmp", plans_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--workdir", default="tevia_patch_demo", help="[OPTIONAL] Work folder.")
    parser.add_argument("--size", type=int, default=128, help="[OPTIONAL] Image size. Default: 128")
    parser.add_argument("--patch", type=int, default=64, help="[OPTIONAL] Patch size. Default: 64")
    parser.add_argument("--num-train", type=int, default=2000, help="[OPTIONAL] Default: 2000")
    parser.add_argument("--num-test", type=int, default=100, help="[OPTIONAL] Default: 100")
    parser.add_argument("-device", default="cpu", choices=["cpu", "cuda"], help="[OPTIONAL] Default: cpu")
    args = parser.parse_args()

    demo = Demo(args.workdir, False, args.num_train, args.num_test, 0, args.device, 993, None, None)
    demo.dataset_name = "Dataset993_TeViADemoLarge"
    demo.raw = os.path.join(demo.env["nnUNet_raw"], demo.dataset_name)
    if not os.path.isfile(os.path.join(demo.raw, "tevia_prompts_swapped.json")):
        from nnunetv2_tevia.demo.generator import generate_demo_dataset
        from nnunetv2_tevia.demo.report_variants import write_swapped_variant

        folder = generate_demo_dataset(demo.env["nnUNet_raw"], 993, "TeViADemoLarge", args.num_train, args.num_test,
                                       size=args.size, overwrite=True)
        write_swapped_variant(folder)
    demo.preprocess()
    add_small_patch_configuration(os.path.join(demo.env["nnUNet_preprocessed"], demo.dataset_name,
                                               "nnUNetPlans.json"), args.patch)
    demo.config = CONFIG
    from nnunetv2_tevia.demo.report import dice_table

    rows = []
    for trainer in TRAINERS:
        demo.train(trainer)
        preds = os.path.join(demo.workdir, "predictions", trainer)
        demo.predict(trainer, os.path.join(preds, "right"))
        demo.predict(trainer, os.path.join(preds, "swapped"),
                     prompts=os.path.join(demo.raw, "tevia_prompts_swapped.json"))
        right = dice_table(os.path.join(preds, "right"), os.path.join(demo.raw, "labelsTs"), ".png")["mean"]
        swapped = dice_table(os.path.join(preds, "swapped"), os.path.join(demo.raw, "labelsTs_swapped"), ".png")["mean"]
        rows.append(f"| `{trainer}` | {right:.4f} | {swapped:.4f} | {demo.timings.get(f'train_{trainer}', '–')} |")
    table = ("| trainer | Dice, right reports | Dice, swapped reports vs swapped truth | training s |\n"
             "| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")
    text = (f"# Patch smaller than the image: {args.size} x {args.size} demo images, {args.patch} x {args.patch} "
            f"patch\n\n{args.num_train} training and {args.num_test} test cases, demo budget, device {args.device}.\n\n"
            + table)
    path = os.path.join(demo.workdir, "patch_position.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    print(path)


if __name__ == "__main__":
    sys.exit(main())
