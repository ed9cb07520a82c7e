"""Learning curves on the demo: test Dice with the right reports and with swapped reports, against training steps.

    python benchmarks/demo_learning_curves.py -o tevia_demo --seeds 0 1

Uses the demo's dataset and preprocessing in WORKDIR (made by ``nnUNetv2_tevia_demo -o WORKDIR`` or by this
script, with the same defaults), then trains each trainer at the demo budget per seed as
``<trainer>_demoBudget[<E>x<I>]_seed<S>_snapshots`` (benchmarks/trainers/bench_trainers.py) with
``TEVIA_SNAPSHOT_EVERY`` set, so that a checkpoint is kept every few epochs. Every snapshot predicts the
test images twice with nnU-Net's own predictors: with the test reports (scored against labelsTs) and with the
reports swapped to the distractor lesions (scored against labelsTs_swapped). A text-blind model predicts the same
mask for both, so its "swapped" Dice is its Dice against the distractors' masks.

Writes WORKDIR/learning_curves/curves.json, curves.md (table) and curves.png. A second call skips finished
trainings and scored snapshots. Budget on the 2-core CPU: about 6-8 minutes of training per (trainer, seed)
at the demo budget, plus about 1 s per snapshot and report set for the predictions.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

from nnunetv2_tevia.demo.budget import DEMO_EPOCHS, DEMO_ITERATIONS
from nnunetv2_tevia.io_utils import atomic_write_bytes, atomic_write_json

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers"))
import bench_trainers  # noqa: E402  (the snapshot variants of the demo's trainers, benchmarks/trainers)

TRAINERS = ("nnUNetTrainerTeViA", "nnUNetTrainerTeViA_reference", "nnUNetTrainer")


def snapshots(model_folder: str) -> List[tuple]:
    """(steps, checkpoint file name) of a trained fold, in order of steps."""
    found = []
    for path in glob.glob(os.path.join(model_folder, "fold_0", "checkpoint_step*.pth")):
        found.append((int(re.search(r"step(\d+)", os.path.basename(path)).group(1)), os.path.basename(path)))
    return sorted(found)


def predict_and_score(demo, trainer: str, model_folder: str, checkpoint: str, prompts: str, labels: str,
                      out: str) -> float:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunetv2_tevia.demo.report import dice_table
    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor
    from nnunetv2_tevia.prompts.prompt_file import load_prompts

    common = dict(tile_step_size=0.5, use_gaussian=True, use_mirroring=True, device=torch.device(demo.device),
                  verbose=False, allow_tqdm=False)
    if "TeViA" in trainer:
        predictor = nnUNetTeViAPredictor(**common, prompts=load_prompts(prompts),
                                         text_cache_folder=os.path.join(demo.workdir, "learning_curves", "text_cache"))
    else:
        predictor = nnUNetPredictor(**common)
    predictor.initialize_from_trained_model_folder(model_folder, (0,), checkpoint_name=checkpoint)
    os.makedirs(out, exist_ok=True)
    predictor.predict_from_files_sequential(os.path.join(demo.raw, "imagesTs"), out, save_probabilities=False,
                                            overwrite=True)
    return dice_table(out, os.path.join(demo.raw, labels), ".nii.gz" if demo.three_d else ".png")["mean"]


def write_report(results: Dict, folder: str, budget: str) -> None:
    atomic_write_json(os.path.join(folder, "curves.json"), results)
    rows = ["| trainer | seed | steps | Dice, right reports | Dice, swapped reports vs swapped truth |",
            "| --- | --- | --- | --- | --- |"]
    for key in sorted(results["runs"]):
        run = results["runs"][key]
        for steps in sorted(run["points"], key=int):
            p = run["points"][steps]
            rows.append(f"| `{run['trainer']}` | {run['seed']} | {steps} | {p['right']:.4f} | {p['swapped']:.4f} |")
    text = f"# Demo learning curves\n\n{budget}\n\n" + "\n".join(rows) + "\n"
    atomic_write_bytes(os.path.join(folder, "curves.md"), text.encode())

    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = dict(zip(TRAINERS, ("tab:red", "tab:blue", "tab:gray")))
    others = sorted({run["trainer"] for run in results["runs"].values()} - set(colours))
    colours.update(zip(others, ("tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")))
    for run in results["runs"].values():
        steps = sorted(run["points"], key=int)
        x = [int(s) for s in steps]
        for ax, what in zip(axes, ("right", "swapped")):
            ax.plot(x, [run["points"][s][what] for s in steps], marker="o", ms=3,
                    color=colours.get(run["trainer"], "black"), alpha=0.85,
                    linestyle="-" if run["seed"] == 0 else "--", label=f"{run['trainer']} seed {run['seed']}")
    axes[0].set_title("right reports, vs the targets' masks")
    axes[1].set_title("swapped reports, vs the distractors' masks")
    for ax in axes:
        ax.set_xlabel("training steps")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("mean Dice per test case")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(budget, fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "curves.png"), dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description="Learning curves (test Dice with right and with swapped reports "
                                                 "against training steps) on the demo dataset.")
    parser.add_argument("-o", "--workdir", default="tevia_demo", help="[OPTIONAL] The demo's work folder.")
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS),
                        help=f"[OPTIONAL] Trainers (each trained as <trainer>_demoBudget[<E>x<I>]_seed<S>_snapshots). "
                             f"Default: {' '.join(TRAINERS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="[OPTIONAL] Default: 0 1")
    parser.add_argument("--snapshot-every", type=int, default=5, help="[OPTIONAL] Epochs between snapshots.")
    parser.add_argument("--epochs", type=int, default=None, help=f"[OPTIONAL] Default: {DEMO_EPOCHS}")
    parser.add_argument("--iterations", type=int, default=None, help=f"[OPTIONAL] Default: {DEMO_ITERATIONS}")
    parser.add_argument("-device", default="cpu", choices=["cpu", "cuda"], help="[OPTIONAL] Default: cpu")
    args = parser.parse_args()

    from nnunetv2_tevia.cli.demo import Demo

    demo = Demo(args.workdir, False, 2000, 100, 0, args.device, 990, args.epochs, args.iterations)
    # the snapshot trainers, for the trainings and for this process's own predictions
    demo.env = bench_trainers.registered_env({**demo.env, bench_trainers.SNAPSHOT_ENV: str(args.snapshot_every)})
    os.environ.update({k: demo.env[k] for k in ("PYTHONPATH", "nnUNet_extTrainer")})
    demo.create_dataset()
    demo.preprocess()
    folder = os.path.join(demo.workdir, "learning_curves")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "curves.json")
    budget = (f"Demo (2000 training, 100 test cases, 64 x 64), {demo.epochs} x {demo.iterations} steps of the demo "
              f"budget, snapshot every {args.snapshot_every} epochs; device {args.device}")
    results = json.load(open(path)) if os.path.isfile(path) else {"runs": {}}
    if results.get("budget") != budget:  # the points of another budget are not this one's curve
        results = {"runs": {}}
    results["budget"] = budget
    for seed in args.seeds:
        for trainer in args.trainers:
            budget_of_run = demo.budget(trainer, seed)
            name = budget_of_run.trainer + bench_trainers.SNAPSHOTS
            key = f"{trainer} seed {seed}"
            results_root = os.path.join(folder, f"seed_{seed}")
            demo.env.update(nnUNet_results=results_root)
            os.environ["nnUNet_results"] = results_root
            model = os.path.join(results_root, demo.dataset_name, f"{name}__nnUNetPlans__{demo.config}")
            start = time.time()
            demo.train(name, budget_of_run)  # skipped when finished; continues with --c when interrupted
            run = results["runs"].get(key, {})
            if run.get("model") != name:  # the points of another model (an older file's) are not this one's
                run = results["runs"][key] = {"trainer": trainer, "seed": seed, "model": name, "points": {}}
            run.setdefault("train_seconds", round(time.time() - start, 1))
            for steps, checkpoint in snapshots(model):
                if str(steps) in run["points"]:
                    continue
                pred = os.path.join(folder, "predictions", f"seed_{seed}", name, str(steps))
                right = predict_and_score(demo, trainer, model, checkpoint, os.path.join(demo.raw, "tevia_prompts.json"),
                                          "labelsTs", os.path.join(pred, "right"))
                if "TeViA" in trainer:
                    swapped = predict_and_score(demo, trainer, model, checkpoint,
                                                os.path.join(demo.raw, "tevia_prompts_swapped.json"),
                                                "labelsTs_swapped", os.path.join(pred, "swapped"))
                else:  # text-blind: the same prediction, scored against the distractors
                    from nnunetv2_tevia.demo.report import dice_table
                    swapped = dice_table(os.path.join(pred, "right"), os.path.join(demo.raw, "labelsTs_swapped"),
                                         ".png")["mean"]
                run["points"][str(steps)] = {"right": right, "swapped": swapped}
                demo.say(f"{key}, {steps} steps: Dice {right:.4f} with the reports, {swapped:.4f} with swapped ones")
                write_report(results, folder, budget)
    write_report(results, folder, budget)
    print(os.path.join(folder, "curves.md"))


if __name__ == "__main__":
    sys.exit(main())
