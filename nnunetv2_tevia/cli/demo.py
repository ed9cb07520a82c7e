"""``nnUNetv2_tevia_demo``: the whole TeViA path on built-in synthetic data, in one command.

Creates the demo dataset (several look-alike lesions per image; the report names the targets), embeds
the reports, plans and preprocesses with nnU-Net, trains TeViA and plain nnU-Net on the same budget,
predicts the held-out cases, predicts them again with reports that name the distractors instead, and
prints a Dice table. Each step is skipped when its result is already there, so an interrupted demo
resumes where it stopped.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.cli.tool_path import tool_env
from nnunetv2_tevia.errors import TeViAError
from nnunetv2_tevia.demo.budget import DEMO_BATCH_SIZE, DEMO_EPOCHS, DEMO_ITERATIONS, EPOCHS_ENV, ITERATIONS_ENV

TEVIA_TRAINER = "nnUNetTrainerTeViA_demoBudget"
LOCATION_SAFE_TRAINER = "nnUNetTrainerTeViA_locationSafe_demoBudget"
PLAIN_TRAINER = "nnUNetTrainer_demoBudget"
# lines of nnU-Net's output worth showing while the demo runs; the rest goes to the step's log
SHOWN = ("Epoch ", "Pseudo dice", "Epoch time", "alignment_loss", "Mean Validation Dice", "text cache", "Error",
         "error", "Traceback")


class Demo:
    def __init__(self, workdir: str, three_d: bool, num_train: int, num_test: int, seed: int, device: str,
                 dataset_id: int, epochs: Optional[int], iterations: Optional[int], location_safe: bool = False):
        self.workdir = os.path.abspath(workdir)
        self.tevia = LOCATION_SAFE_TRAINER if location_safe else TEVIA_TRAINER
        self.suffix = "_locationSafe" if location_safe else ""  # of the TeViA prediction folders and the summary
        self.three_d = three_d
        self.num_train, self.num_test, self.seed = num_train, num_test, seed
        self.dataset_id = dataset_id
        self.config = "3d_fullres" if three_d else "2d"
        self.device = device
        self.t0 = time.time()
        self.logs = os.path.join(self.workdir, "logs")
        os.makedirs(self.logs, exist_ok=True)
        cpus = str(max(1, min(os.cpu_count() or 1, 4)))
        self.env = tool_env(nnUNet_raw=os.path.join(self.workdir, "nnUNet_raw"),
                        nnUNet_preprocessed=os.path.join(self.workdir, "nnUNet_preprocessed"),
                        nnUNet_results=os.path.join(self.workdir, "nnUNet_results"),
                        nnUNet_def_n_proc=cpus, nnUNet_n_proc_DA=cpus, nnUNet_compile="false",
                        HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        if epochs is not None:
            self.env[EPOCHS_ENV] = str(epochs)
        if iterations is not None:
            self.env[ITERATIONS_ENV] = str(iterations)
        os.environ.update({k: self.env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
        self.dataset_name = f"Dataset{dataset_id:03d}_TeViADemo{'3D' if three_d else ''}"
        self.raw = os.path.join(self.env["nnUNet_raw"], self.dataset_name)
        self.timings: Dict[str, float] = {}

    def say(self, msg: str) -> None:
        print(f"[{time.time() - self.t0:7.1f} s] {msg}", flush=True)

    def run(self, name: str, cmd: List[str]) -> None:
        """Run one command; its full output goes to logs/<name>.log, the interesting lines to the screen."""
        log = os.path.join(self.logs, f"{name}.log")
        self.say(f"$ {' '.join(cmd)}   (log: {log})")
        start = time.time()
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                f.write(line)
                if any(s in line for s in SHOWN):
                    print("    " + line.rstrip()[-160:], flush=True)
            rc = proc.wait()
        self.timings[name] = round(time.time() - start, 1)
        if rc != 0:
            raise SystemExit(f"error: step '{name}' failed (exit {rc}); see {log}")

    # ------------------------------------------------------------------ steps
    def create_dataset(self) -> None:
        from nnunetv2_tevia.demo.generator import generate_demo_dataset, write_swapped_variant

        if os.path.isfile(os.path.join(self.raw, "tevia_prompts_swapped.json")):
            self.say(f"dataset {self.raw} exists; reusing it")
            return
        self.say(f"creating the demo dataset: {self.num_train} training and {self.num_test} test cases")
        try:
            folder = generate_demo_dataset(self.env["nnUNet_raw"], dataset_id=self.dataset_id,
                                           name=self.dataset_name.split("_", 1)[1], num_train=self.num_train,
                                           num_test=self.num_test, three_d=self.three_d, seed=self.seed,
                                           overwrite=True)
        except FileExistsError as e:  # another dataset of the workdir has this id (e.g. the 2D demo, then --3d)
            raise TeViAError(f"{str(e).rstrip('.')} with -d ID, or another workdir with -o") from None
        write_swapped_variant(folder, seed=self.seed)

    def preprocess(self) -> None:
        pre = os.path.join(self.env["nnUNet_preprocessed"], self.dataset_name)
        if os.path.isfile(os.path.join(pre, "tevia_text_cache", "active.json")) and \
                os.path.isdir(os.path.join(pre, f"nnUNetPlans_{self.config}")):
            self.say("preprocessed data and text cache exist; reusing them")
            return
        self.say("validating prompts, planning, preprocessing and embedding the reports")
        self.run("plan_and_preprocess", ["nnUNetv2_tevia_plan_and_preprocess", "-d", str(self.dataset_id),
                                         "-c", self.config, "-np", self.env["nnUNet_def_n_proc"]])

    def model_folder(self, trainer: str) -> str:
        return os.path.join(self.env["nnUNet_results"], self.dataset_name,
                            f"{trainer}__nnUNetPlans__{self.config}")

    def train(self, trainer: str) -> None:
        fold = os.path.join(self.model_folder(trainer), "fold_0")
        if os.path.isfile(os.path.join(fold, "checkpoint_final.pth")):
            self.say(f"{trainer} is trained; reusing it")
            return
        cmd = ["nnUNetv2_train", str(self.dataset_id), self.config, "0", "-tr", trainer, "-device", self.device]
        if os.path.isfile(os.path.join(fold, "checkpoint_latest.pth")):
            cmd.append("--c")
        self.say(f"training {trainer}")
        self.run(f"train_{trainer}", cmd)

    def predict(self, trainer: str, out: str, prompts: Optional[str] = None) -> None:
        if os.path.isdir(out) and len([f for f in os.listdir(out) if f.startswith("test_")]) >= self.num_test:
            return
        shutil.rmtree(out, ignore_errors=True)
        tevia = "TeViA" in trainer
        cmd = ["nnUNetv2_tevia_predict" if tevia else "nnUNetv2_predict", "-i", os.path.join(self.raw, "imagesTs"),
               "-o", out, "-d", str(self.dataset_id), "-c", self.config, "-f", "0", "-tr", trainer,
               "-device", self.device, "-npp", "1", "-nps", "1", "--disable_progress_bar"]
        if prompts:
            cmd += ["--prompts", prompts]
        self.run(f"predict_{os.path.basename(out)}", cmd)

    def report(self) -> str:
        from nnunetv2_tevia.demo.report import dice_table, write_overlays
        from nnunetv2_tevia.prompts.prompt_file import load_prompts

        ending = ".nii.gz" if self.three_d else ".png"
        preds = os.path.join(self.workdir, "predictions")
        tevia, sfx = self.tevia, self.suffix
        swapped_row = f"{tevia} (reports swapped to the distractors)"
        rows = {
            tevia: (os.path.join(preds, f"tevia{sfx}"), "labelsTs"),
            PLAIN_TRAINER: (os.path.join(preds, "nnunet"), "labelsTs"),
            swapped_row: (os.path.join(preds, f"tevia{sfx}_swapped"), "labelsTs_swapped"),
            f"{tevia} (swapped reports, vs the original targets)": (os.path.join(preds, f"tevia{sfx}_swapped"),
                                                                     "labelsTs"),
        }
        results = {}
        for name, (folder, labels) in rows.items():
            results[name] = dice_table(folder, os.path.join(self.raw, labels), ending)
        print()
        width = max(len(name) for name in results)
        print(f"{'model':{width}s} {'mean Dice per case':>18s}  {'cases':>5s}")
        for name, r in results.items():
            print(f"{name:{width}s} {r['mean']:18.4f}  {r['n']:5d}")
        overlays = os.path.join(self.workdir, "overlays")
        prompts = load_prompts(os.path.join(self.raw, "tevia_prompts.json"))
        write_overlays(os.path.join(self.raw, "imagesTs"), os.path.join(self.raw, "labelsTs"), rows[tevia][0],
                       prompts, os.path.join(overlays, f"tevia{sfx}"), max_cases=8, file_ending=ending)
        write_overlays(os.path.join(self.raw, "imagesTs"), os.path.join(self.raw, "labelsTs"), rows[PLAIN_TRAINER][0],
                       prompts, os.path.join(overlays, "nnunet"), max_cases=8, file_ending=ending)
        swapped = load_prompts(os.path.join(self.raw, "tevia_prompts_swapped.json"))
        write_overlays(os.path.join(self.raw, "imagesTs"), os.path.join(self.raw, "labelsTs_swapped"),
                       rows[swapped_row][0], swapped,
                       os.path.join(overlays, f"tevia{sfx}_swapped"), max_cases=8, file_ending=ending)
        self.say(f"overlay PNGs (image, ground truth, prediction, report): {overlays}")
        summary = {
            tevia: {"dice": results[tevia]["mean"],
                    "dice_with_swapped_reports_vs_swapped_truth": results[swapped_row]["mean"],
                    "dice_with_swapped_reports_vs_original_truth":
                        results[f"{tevia} (swapped reports, vs the original targets)"]["mean"],
                    "per_case": results[tevia]["per_case"]},
            PLAIN_TRAINER: {"dice": results[PLAIN_TRAINER]["mean"], "per_case": results[PLAIN_TRAINER]["per_case"]},
            "dice_convention": "mean over test cases of the per-case foreground Dice",
            "budget": {"epochs": int(self.env.get(EPOCHS_ENV, DEMO_EPOCHS)),
                       "iterations_per_epoch": int(self.env.get(ITERATIONS_ENV, DEMO_ITERATIONS)),
                       "batch_size": DEMO_BATCH_SIZE,
                       "configuration": self.config, "num_train": self.num_train, "num_test": self.num_test,
                       "seed": self.seed},
            "seconds": {**self.timings, "total": round(time.time() - self.t0, 1)},
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "device": self.device},
        }
        path = os.path.join(self.workdir, f"demo_summary{self.suffix}.json")
        with open(path, "w") as f:
            json.dump(summary, f, indent=2)
        return path


@exit_on_user_error
def demo_entry():
    parser = argparse.ArgumentParser(
        description="Run TeViA end to end on a built-in synthetic dataset in which only the report says which "
                    "lesions to segment: create data and prompts, embed, plan and preprocess, train TeViA and "
                    "plain nnU-Net on the same budget, predict the test cases (also with reports swapped to the "
                    "distractor lesions), print a Dice table and write overlay PNGs. Re-running resumes.")
    parser.add_argument("-o", "--workdir", default="tevia_demo",
                        help="[OPTIONAL] Folder for everything the demo writes (its own nnUNet_raw, "
                             "nnUNet_preprocessed and nnUNet_results). Default: ./tevia_demo")
    parser.add_argument("--3d", dest="three_d", action="store_true",
                        help="[OPTIONAL] 3D demo (32^3 volumes, 3d_fullres) instead of 2D (64x64, 2d).")
    parser.add_argument("--num-train", type=int, default=2000,
                        help="[OPTIONAL] Training cases. Default: 2000 (so many that a network cannot learn the "
                             "targets of each training image by heart and must read the report)")
    parser.add_argument("--num-test", type=int, default=100, help="[OPTIONAL] Held-out test cases. Default: 100")
    parser.add_argument("--seed", type=int, default=0, help="[OPTIONAL] Seed of the data generator. Default: 0")
    parser.add_argument("-d", "--dataset-id", type=int, default=990, help="[OPTIONAL] Dataset id. Default: 990")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"[OPTIONAL] Epochs of both trainings (demo budget default: {DEMO_EPOCHS}).")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"[OPTIONAL] Iterations per epoch of both trainings (default: {DEMO_ITERATIONS}).")
    parser.add_argument("-device", default=None, choices=["cpu", "cuda", "mps"],
                        help="[OPTIONAL] Training and inference device. Default: cuda if available, else cpu.")
    parser.add_argument("--location-safe", action="store_true",
                        help=f"[OPTIONAL] Train {LOCATION_SAFE_TRAINER} instead of {TEVIA_TRAINER}: no mirroring "
                             f"(the default mirrors each image with its report's zone words swapped, in training "
                             f"and at test time; docs/demo.md). Its predictions go to "
                             f"predictions/tevia_locationSafe*, its table to demo_summary_locationSafe.json; plain "
                             f"nnU-Net is trained once per workdir.")
    args = parser.parse_args()
    if args.num_train < 5 or args.num_test < 1:
        # nnU-Net's 5-fold split needs 5 training cases; the Dice table needs a test case
        parser.error("--num-train must be at least 5 and --num-test at least 1")
    if not 0 < args.dataset_id < 1000:
        parser.error(f"-d {args.dataset_id}: nnU-Net dataset ids are 1 to 999")
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    demo = Demo(args.workdir, args.three_d, args.num_train, args.num_test, args.seed, device, args.dataset_id,
                args.epochs, args.iterations, args.location_safe)
    demo.create_dataset()
    demo.preprocess()
    demo.train(demo.tevia)
    demo.train(PLAIN_TRAINER)
    preds = os.path.join(demo.workdir, "predictions")
    demo.predict(demo.tevia, os.path.join(preds, f"tevia{demo.suffix}"))
    demo.predict(PLAIN_TRAINER, os.path.join(preds, "nnunet"))
    demo.predict(demo.tevia, os.path.join(preds, f"tevia{demo.suffix}_swapped"),
                 prompts=os.path.join(demo.raw, "tevia_prompts_swapped.json"))
    path = demo.report()
    print(path)


if __name__ == "__main__":
    sys.exit(demo_entry())
