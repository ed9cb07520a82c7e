"""``nnUNetv2_tevia_demo``: the whole TeViA path on built-in synthetic data, in one command.

Creates the demo dataset (several look-alike lesions per image; the report names the targets), embeds
the reports, plans and preprocesses with nnU-Net, trains TeViA and plain nnU-Net on the same budget,
predicts the held-out cases, predicts them again with reports that name the distractors instead, with no
report, and with every other wording of the reports that the dataset folder offers, and prints a Dice table.
Each step records the arguments that made its result (``made_by.json``, evaluation/provenance.py) and is skipped
when that result is there, finished and made with the same arguments from the same inputs; otherwise it is
done again, and so is everything made from it. An interrupted training continues; an interrupted prediction
is predicted again.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.cli.tool_path import tool_env
from nnunetv2_tevia.errors import StepFailedError, TeViAError
from nnunetv2_tevia.evaluation.provenance import (file_sha256, finish_record, mismatch, read_record, reuse_or_clear,
                                                  start_record)
from nnunetv2_tevia.demo.budget import (DEMO_BATCH_SIZE, DEMO_EPOCHS, DEMO_ITERATIONS, DemoBudget, demo_budget_of,
                                         registered_env)

# the base trainers; each is trained as <base>_demoBudget[<E>x<I>] (demo/budget.py)
TEVIA_BASE, LOCATION_SAFE_BASE, PLAIN_BASE = "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_locationSafe", "nnUNetTrainer"
CHECKPOINT = "checkpoint_final.pth"
# lines of nnU-Net's output worth showing while the demo runs; the rest goes to the step's log
SHOWN = ("Epoch ", "Pseudo dice", "Epoch time", "alignment_loss", "Mean Validation Dice", "text cache", "Error",
         "error", "Traceback")


class Demo:
    def __init__(self, workdir: str, three_d: bool, num_train: int, num_test: int, seed: int, device: str,
                 dataset_id: int, epochs: Optional[int], iterations: Optional[int], location_safe: bool = False):
        self.workdir = os.path.abspath(workdir)
        self.epochs = DEMO_EPOCHS if epochs is None else epochs
        self.iterations = DEMO_ITERATIONS if iterations is None else iterations
        # the budget is in the trainer's name: another --epochs trains another model folder
        self.tevia = self.budget(LOCATION_SAFE_BASE if location_safe else TEVIA_BASE).trainer
        self.plain = self.budget(PLAIN_BASE).trainer
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
        # the demo's budget trainers are registered for the commands the demo runs, never for a user's own
        self.env = registered_env(tool_env(nnUNet_raw=os.path.join(self.workdir, "nnUNet_raw"),
                                           nnUNet_preprocessed=os.path.join(self.workdir, "nnUNet_preprocessed"),
                                           nnUNet_results=os.path.join(self.workdir, "nnUNet_results"),
                                           nnUNet_def_n_proc=cpus, nnUNet_n_proc_DA=cpus, nnUNet_compile="false",
                                           HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1"))
        os.environ.update({k: self.env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
        self.dataset_name = f"Dataset{dataset_id:03d}_TeViADemo{'3D' if three_d else ''}"
        self.raw = os.path.join(self.env["nnUNet_raw"], self.dataset_name)
        self.timings: Dict[str, float] = {}
        self.extra_prompts: Dict[str, str] = {}  # row name -> prompt file: other wordings of the test reports

    def budget(self, base: str, seed: Optional[int] = None) -> DemoBudget:
        """``base`` on this demo's budget (``seed``: None trains unseeded, as nnU-Net does)."""
        return DemoBudget(base, self.epochs, self.iterations, seed)

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
            raise StepFailedError(f"step '{name}' failed (exit {rc}); see {log}")

    # ------------------------------------------------------------------ steps
    @property
    def preprocessed(self) -> str:
        return os.path.join(self.env["nnUNet_preprocessed"], self.dataset_name)

    def create_dataset(self) -> None:
        from nnunetv2_tevia.demo import generator, report_variants

        arguments = {"dataset_id": self.dataset_id, "num_train": self.num_train, "num_test": self.num_test,
                     "seed": self.seed, "three_d": self.three_d}
        existed = os.path.isdir(self.raw)
        why = reuse_or_clear(self.raw, arguments)
        if why is None:
            self.say(f"dataset {self.raw} exists; reusing it")
        else:
            self.say((f"dataset {self.raw}: {why}; " if existed else "") + f"creating the demo dataset: "
                     f"{self.num_train} training and {self.num_test} test cases")
            try:
                folder = generator.generate_demo_dataset(
                    self.env["nnUNet_raw"], dataset_id=self.dataset_id, name=self.dataset_name.split("_", 1)[1],
                    num_train=self.num_train, num_test=self.num_test, three_d=self.three_d, seed=self.seed,
                    overwrite=True)
            except FileExistsError as e:  # another dataset of the workdir has this id (e.g. the 2D demo, then --3d)
                raise TeViAError(f"{str(e).rstrip('.')} with -d ID, or another workdir with -o") from None
            report_variants.write_swapped_variant(folder, seed=self.seed)
            start_record(self.raw, arguments)
            finish_record(self.raw)
        # other wordings of the test reports, each a row of its own (held out from training; report_templates.py)
        self.extra_prompts = dict(report_variants.write_reworded_variants(self.raw))

    def preprocess(self) -> None:
        pre = self.preprocessed
        arguments, inputs = {"configuration": self.config}, {"dataset": (read_record(self.raw) or {}).get("id")}
        existed = os.path.isdir(pre)
        why = reuse_or_clear(pre, arguments, inputs, [os.path.join(pre, "tevia_text_cache", "active.json"),
                                                      os.path.join(pre, f"nnUNetPlans_{self.config}")])
        if why is None:
            self.say("preprocessed data and text cache exist; reusing them")
            return
        self.say((f"{pre}: {why}; " if existed else "") +
                 "validating prompts, planning, preprocessing and embedding the reports")
        start_record(pre, arguments, inputs)
        self.run("plan_and_preprocess", ["nnUNetv2_tevia_plan_and_preprocess", "-d", str(self.dataset_id),
                                         "-c", self.config, "-np", self.env["nnUNet_def_n_proc"]])
        finish_record(pre)

    def model_folder(self, trainer: str) -> str:
        return os.path.join(self.env["nnUNet_results"], self.dataset_name,
                            f"{trainer}__nnUNetPlans__{self.config}")

    def train(self, trainer: str, budget: Optional[DemoBudget] = None) -> None:
        """Train ``trainer``, a demo budget trainer (demo/budget.py), or one built on ``budget``."""
        budget = budget or demo_budget_of(trainer)
        if budget is None:
            raise TeViAError(f"{trainer} is not a demo budget trainer (<base>_demoBudget[<E>x<I>][_seed<S>])")
        folder = self.model_folder(trainer)
        fold = os.path.join(folder, "fold_0")
        arguments = {"trainer": trainer, "configuration": self.config, "fold": 0, "epochs": budget.epochs,
                     "iterations": budget.iterations, "batch_size": DEMO_BATCH_SIZE, "training_seed": budget.seed}
        inputs = {"preprocessed": (read_record(self.preprocessed) or {}).get("id")}
        why = mismatch(read_record(folder), arguments, inputs)
        if why is None and os.path.isfile(os.path.join(fold, CHECKPOINT)):
            self.say(f"{trainer} is trained; reusing it")
            return
        cmd = ["nnUNetv2_train", str(self.dataset_id), self.config, "0", "-tr", trainer, "-device", self.device]
        if why is None and os.path.isfile(os.path.join(fold, "checkpoint_latest.pth")):
            cmd.append("--c")  # the same arguments: an interrupted training continues
        elif os.path.isdir(folder):
            self.say(f"{folder}: {why or 'interrupted before its first checkpoint'}; training it from the start")
            shutil.rmtree(folder)
        # a new id even when continuing: nothing predicted by an earlier model of this folder is reused
        start_record(folder, arguments, inputs)
        self.say(f"training {trainer}")
        self.run(f"train_{trainer}", cmd)
        finish_record(folder)

    def prediction_folder(self, variant: str = "", tevia: bool = True) -> str:
        """predictions/tevia[_locationSafe][_<variant>], or predictions/nnunet for plain nnU-Net."""
        name = f"tevia{self.suffix}" + (f"_{variant}" if variant else "") if tevia else "nnunet"
        return os.path.join(self.workdir, "predictions", name)

    def predict(self, trainer: str, out: str, prompts: Optional[str] = None, no_report: bool = False) -> None:
        """Predict the test images into ``out`` unless it holds the finished prediction of these arguments by the
        model now in the model folder; TeViA with ``prompts`` (default: the dataset's prompt file) or, with
        ``no_report``, with the model's no-report text for every case."""
        from nnunetv2_tevia.prompts.dataset_cases import test_case_ids

        tevia = "TeViA" in trainer
        if no_report:
            prompts = os.path.join(self.workdir, "no_report_prompts.json")
            if not os.path.isfile(prompts):
                from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts

                save_prompts(PromptFile(path=prompts, cases={}))  # names no case: every case gets the no-report text
        elif tevia and prompts is None:
            prompts = os.path.join(self.raw, "tevia_prompts.json")  # what nnUNetv2_tevia_predict reads by default
        arguments = {"trainer": trainer, "configuration": self.config, "fold": 0, "checkpoint": CHECKPOINT,
                     "prompts": prompts, "prompts_sha256": file_sha256(prompts), "no_report": no_report}
        inputs = {"model": (read_record(self.model_folder(trainer)) or {}).get("id")}
        ending = ".nii.gz" if self.three_d else ".png"
        if reuse_or_clear(out, arguments, inputs,
                          [os.path.join(out, c + ending) for c in test_case_ids(self.raw)]) is None:
            return
        cmd = ["nnUNetv2_tevia_predict" if tevia else "nnUNetv2_predict", "-i", os.path.join(self.raw, "imagesTs"),
               "-o", out, "-d", str(self.dataset_id), "-c", self.config, "-f", "0", "-tr", trainer,
               "-chk", CHECKPOINT, "-device", self.device, "-npp", "1", "-nps", "1", "--disable_progress_bar"]
        if prompts:
            cmd += ["--prompts", prompts]
        if no_report:  # every case on the no-report text on purpose (docs/prediction.md)
            cmd.append("--allow-missing-text")
        start_record(out, arguments, inputs)
        self.run(f"predict_{os.path.basename(out)}", cmd)
        finish_record(out)

    def rows(self) -> List[tuple]:
        """(row name, trainer, prediction folder, label folder) of every row of the Dice table."""
        tevia = self.tevia
        rows = [(tevia, tevia, self.prediction_folder(), "labelsTs"),
                (self.plain, self.plain, self.prediction_folder(tevia=False), "labelsTs"),
                (f"{tevia} (reports swapped to the distractors)", tevia, self.prediction_folder("swapped"),
                 "labelsTs_swapped"),
                (f"{tevia} (swapped reports, vs the original targets)", tevia, self.prediction_folder("swapped"),
                 "labelsTs"),
                (f"{tevia} (no report)", tevia, self.prediction_folder("no_report"), "labelsTs")]
        return rows + [(f"{tevia} ({name})", tevia, self.prediction_folder(self.reworded_variant(name)), "labelsTs")
                       for name in self.extra_prompts]

    @staticmethod
    def reworded_variant(name: str) -> str:
        return "reworded_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")

    def predict_all(self) -> None:
        self.predict(self.tevia, self.prediction_folder())
        self.predict(self.plain, self.prediction_folder(tevia=False))
        self.predict(self.tevia, self.prediction_folder("swapped"),
                     prompts=os.path.join(self.raw, "tevia_prompts_swapped.json"))
        self.predict(self.tevia, self.prediction_folder("no_report"), no_report=True)
        for name, prompts in self.extra_prompts.items():
            self.predict(self.tevia, self.prediction_folder(self.reworded_variant(name)), prompts=prompts)

    def report(self) -> str:
        """Score every row, print the table, write the overlays and demo_summary.json; returns its path."""
        from nnunetv2_tevia.demo.summary import write_report

        return write_report(self)


@exit_on_user_error
def demo_entry():
    parser = argparse.ArgumentParser(
        description="Run TeViA end to end on a built-in synthetic dataset in which only the report says which "
                    "lesions to segment: create data and prompts, embed, plan and preprocess, train TeViA and "
                    "plain nnU-Net on the same budget, predict the test cases (also with reports swapped to the "
                    "distractor lesions, with no report, and with every other wording of the reports the dataset "
                    "offers), print a Dice table and write overlay PNGs. Re-running reuses what was made with the "
                    "same arguments and makes again what other arguments change (each step's made_by.json).")
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
                        help=f"[OPTIONAL] Epochs of both trainings (demo budget default: {DEMO_EPOCHS}). Another "
                             f"length trains <trainer>_demoBudget<E>x<I>, in a model folder of its own.")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"[OPTIONAL] Iterations per epoch of both trainings (default: {DEMO_ITERATIONS}).")
    parser.add_argument("-device", default=None, choices=["cpu", "cuda", "mps"],
                        help="[OPTIONAL] Training and inference device. Default: cuda if available, else cpu.")
    parser.add_argument("--location-safe", action="store_true",
                        help=f"[OPTIONAL] Train {DemoBudget(LOCATION_SAFE_BASE).trainer} instead of "
                             f"{DemoBudget(TEVIA_BASE).trainer}: no mirroring "
                             f"(the default mirrors each image with its report's zone words swapped, in training "
                             f"and at test time; docs/demo.md). Its predictions go to "
                             f"predictions/tevia_locationSafe*, its table to demo_summary_locationSafe.json; plain "
                             f"nnU-Net is trained once per workdir.")
    args = parser.parse_args()
    if args.num_train < 5 or args.num_test < 1:
        # nnU-Net's 5-fold split needs 5 training cases; the Dice table needs a test case
        parser.error("--num-train must be at least 5 and --num-test at least 1")
    if (args.epochs is not None and args.epochs < 1) or (args.iterations is not None and args.iterations < 1):
        parser.error("--epochs and --iterations must be at least 1")
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
    demo.train(demo.plain)
    demo.predict_all()
    path = demo.report()
    print(path)


if __name__ == "__main__":
    sys.exit(demo_entry())
