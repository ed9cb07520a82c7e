"""Train several trainers on one split at one budget, score them on a labelled test folder, report.

    python benchmarks/run_benchmark.py -d 501 --budget cpu --trainers all --seeds 0 1 -o benchmark_results/qata

Every trainer is wrapped in the same budget variant (``<Trainer>_cpuBudget`` / ``_gpuBudget``,
nnunetv2_tevia/training/variants/benchmark_budget.py) and trained on the same fold of splits_final.json: all of
imagesTr except a few cases held out for nnU-Net's per-epoch pseudo Dice. Each model then predicts imagesTs
with checkpoint_final.pth and is scored against labelsTs. Models live in OUT/models/seed_<s> (used as
nnUNet_results), so the seeds of one trainer do not overwrite each other. A second call skips what is done:
finished trainings (checkpoint_final.pth), complete prediction folders and computed scores; an interrupted
training continues with ``--c``. OUT/results.json, results.md and results.png are rewritten after every run.
How to run it, the budgets and the metric conventions: docs/benchmarks.md.
"""
import argparse
import json
import os
import shlex
import shutil
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json

from nnunetv2_tevia.cli.tool_path import tool_env
from nnunetv2_tevia.io_utils import atomic_write_bytes, atomic_write_json
from nnunetv2_tevia.training.variants import benchmark_budget as budget

import bench_measure  # noqa: E402  (sibling modules of this script)
import bench_report  # noqa: E402
import bench_scoring  # noqa: E402

TRAINERS = ("nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_noText", "nnUNetTrainerTeViA_noAlign",
            "nnUNetTrainerTeViA_noProto")
# not part of 'all': text dropout is for measuring one model with and without reports (--no-report); full DA is
# TeViA with nnU-Net's mirroring and rotations, for reports whose locations survive mirroring (or name none);
# reference is the reference code's arrangement (docs/architecture.md), for comparing designs; mirrorText requires
# the prompt file's "mirror" word map (docs/prompt_format.md), locationSafe never mirrors
OPTIONAL_TRAINERS = ("nnUNetTrainerTeViA_textDropout", "nnUNetTrainerTeViA_fullDA", "nnUNetTrainerTeViA_reference",
                     "nnUNetTrainerTeViA_mirrorText", "nnUNetTrainerTeViA_locationSafe")
SEEDED_TRAINERS = ("nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_mirrorText",
                   "nnUNetTrainerTeViA_locationSafe")
NO_REPORT = " (no report)"
NO_REPORT_ENV = {"NNUNETV2_TEVIA_ALLOW_NO_REPORT": "1"}  # models trained without text dropout may run on it too
SPLIT_SEED = 12345  # nnU-Net's own split seed; the held-out cases do not depend on the training seed
CHECKPOINT = "checkpoint_final.pth"


@dataclass
class Run:
    base_trainer: str
    seed: int
    trainer: str
    is_tevia: bool
    results_root: str   # nnUNet_results of this seed
    model_folder: str
    run_folder: str     # logs, measurements, predictions, scores

    @property
    def pred_folder(self) -> str:
        return join(self.run_folder, "predictions")

    @property
    def no_report_folder(self) -> str:
        return join(self.run_folder, "predictions_no_report")


# ---------------------------------------------------------------------------------------------------- split
def benchmark_split(identifiers: List[str], n_val: int) -> Dict[str, List[str]]:
    ids = sorted(identifiers)
    if not 0 < n_val < len(ids):
        raise SystemExit(f"error: --val-cases {n_val} must be between 1 and {len(ids) - 1} ({len(ids)} training "
                         f"cases)")
    val = sorted(np.random.RandomState(SPLIT_SEED).choice(ids, n_val, replace=False).tolist())
    return {"train": [i for i in ids if i not in set(val)], "val": val}


def find_or_add_split(splits_file: str, split: Dict[str, List[str]], identifiers: List[str], write: bool) -> int:
    """The fold of splits_final.json that is this split, appending it if absent.

    Existing folds are kept, so a user's cross-validation is untouched; without a file, nnU-Net's default
    5-fold split is written first (what nnU-Net itself would write), so folds 0-4 keep their meaning.
    """
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    if isfile(splits_file):
        splits = load_json(splits_file)
    else:
        splits = generate_crossval_split(sorted(identifiers), seed=SPLIT_SEED, n_splits=5)
    for fold, s in enumerate(splits):
        if set(s["train"]) == set(split["train"]) and set(s["val"]) == set(split["val"]):
            if write and not isfile(splits_file):
                atomic_write_json(splits_file, splits)
            return fold
    splits.append(split)
    if write:
        atomic_write_json(splits_file, splits)
        print(f"added the benchmark split as fold {len(splits) - 1} of {splits_file}")
    return len(splits) - 1


# ---------------------------------------------------------------------------------------------------- commands
def train_command(run: Run, args, dataset: str, fold: int) -> List[str]:
    cmd = ["nnUNetv2_train", dataset, args.c, str(fold), "-tr", run.trainer, "-p", args.p, "-device", args.device]
    if any(isfile(join(run.model_folder, f)) for f in ("checkpoint_latest.pth", "checkpoint_best.pth")):
        cmd.append("--c")
    return cmd


def predict_command(run: Run, args, dataset: str, fold: int, images: str, prompts: str, text_cache: str,
                    no_report: bool = False) -> List[str]:
    """no_report: every case on the model's no-report text (a prompt file without cases, --allow-missing-text)."""
    tool = "nnUNetv2_tevia_predict" if run.is_tevia else "nnUNetv2_predict"
    out = run.no_report_folder if no_report else run.pred_folder
    cmd = [tool, "-i", images, "-o", out, "-d", dataset, "-c", args.c, "-p", args.p, "-tr", run.trainer,
           "-f", str(fold), "-chk", CHECKPOINT, "-npp", "1", "-nps", "1", "-device", args.device,
           "--continue_prediction", "--disable_progress_bar"]
    if args.disable_tta:
        cmd.append("--disable_tta")
    if run.is_tevia:
        cmd += ["--prompts", prompts, "--text-cache", text_cache]
    if no_report:
        cmd.append("--allow-missing-text")
    return cmd


def no_report_prompts(out: str) -> str:
    """A prompt file without cases: with --allow-missing-text every case is predicted on the no-report text."""
    from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts

    path = os.path.abspath(join(out, "no_report_prompts.json"))
    if not isfile(path):
        save_prompts(PromptFile(path=path, cases={}))
    return path


def run_env(run: Run) -> Dict[str, str]:
    return tool_env(nnUNet_results=run.results_root, TEVIA_BENCH_SEED=str(run.seed))


def shown(cmd: List[str], run: Run) -> str:
    return f"nnUNet_results={shlex.quote(run.results_root)} TEVIA_BENCH_SEED={run.seed} " + shlex.join(cmd)


# ---------------------------------------------------------------------------------------------------- runs
def plan_runs(args, dataset: str) -> List[Run]:
    from nnunetv2_tevia.training import all_trainers
    from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

    bases = list(TRAINERS) if args.trainers == ["all"] else args.trainers
    runs = []
    for base in bases:
        trainer = f"{base}_{args.budget}Budget"
        cls = getattr(all_trainers, trainer, None)
        if cls is None:
            raise SystemExit(f"error: no trainer {trainer}; --trainers takes 'all' or names of "
                             f"{', '.join(TRAINERS + OPTIONAL_TRAINERS)}")
        for seed in (args.seeds if base in SEEDED_TRAINERS else args.seeds[:1]):
            root = os.path.abspath(join(args.o, "models", f"seed_{seed}"))
            model = join(root, dataset, f"{trainer}__{args.p}__{args.c}", f"fold_{args.fold}")
            runs.append(Run(base, seed, trainer, issubclass(cls, nnUNetTrainerTeViA), root, model,
                            os.path.abspath(join(args.o, "runs", f"seed_{seed}", trainer))))
    return runs


def predictions_complete(run: Run, test_ids: List[str], ending: str, no_report: bool = False) -> bool:
    folder = run.no_report_folder if no_report else run.pred_folder
    return all(isfile(join(folder, c + ending)) for c in test_ids)


def _read_json(path: str) -> Optional[dict]:
    return load_json(path) if isfile(path) else None


def _merge_sessions(path: str, session: Dict) -> Dict:
    """A resumed training adds a session: wall times add up, peaks are the larger one."""
    old = _read_json(path)
    if old is None:
        merged = dict(session, sessions=1)
    else:
        merged = dict(old, wall_seconds=round(old["wall_seconds"] + session["wall_seconds"], 1),
                      sessions=old.get("sessions", 1) + 1, load_average_end=session["load_average_end"])
        for k in ("peak_rss_mib", "peak_tree_pss_mib"):
            merged[k] = max(old.get(k, 0), session[k])
    atomic_write_json(path, merged)
    return merged


def _check(result: Dict, what: str, log: str) -> None:
    if result["returncode"] != 0:
        with open(log) as f:
            tail = f.readlines()[-20:]
        raise SystemExit(f"error: {what} failed (exit status {result['returncode']}); log {log}. Last lines:\n"
                         + "".join(tail))


def execute(run: Run, args, dataset: str, raw: str, test_ids: List[str], dataset_json: Dict,
            prompts: str, text_cache: str) -> Dict:
    os.makedirs(run.run_folder, exist_ok=True)
    ending = dataset_json["file_ending"]
    env = run_env(run)
    if not isfile(join(run.model_folder, CHECKPOINT)):
        cmd = train_command(run, args, dataset, args.fold)
        print(f"training {run.trainer} (seed {run.seed}): {shown(cmd, run)}", flush=True)
        log = join(run.run_folder, "train.log")
        result = bench_measure.run_watched(cmd, env, log)
        _check(result, f"training {run.trainer} seed {run.seed}", log)
        result["machine"] = bench_measure.machine_info(args.device)
        _merge_sessions(join(run.run_folder, "train_measure.json"), result)
        if isfile(join(run.run_folder, "timing.json")):
            os.remove(join(run.run_folder, "timing.json"))
    if not predictions_complete(run, test_ids, ending):
        cmd = predict_command(run, args, dataset, args.fold, join(raw, "imagesTs"), prompts, text_cache)
        print(f"predicting {run.trainer} (seed {run.seed}): {shown(cmd, run)}", flush=True)
        log = join(run.run_folder, "predict.log")
        result = bench_measure.run_watched(cmd, env, log)
        _check(result, f"prediction of {run.trainer} seed {run.seed}", log)
        _merge_sessions(join(run.run_folder, "predict_measure.json"), result)
        if isfile(join(run.run_folder, "scores.json")):
            os.remove(join(run.run_folder, "scores.json"))
    scores_file = join(run.run_folder, "scores.json")
    if not isfile(scores_file):
        atomic_write_json(scores_file, bench_scoring.score_folder(run.pred_folder, join(raw, "labelsTs"), test_ids,
                                                                  dataset_json))
    if args.no_report and run.is_tevia:
        predict_without_reports(run, args, dataset, raw, test_ids, dataset_json, text_cache)
    return collect(run)


def predict_without_reports(run: Run, args, dataset: str, raw: str, test_ids: List[str], dataset_json: Dict,
                            text_cache: str) -> None:
    if not predictions_complete(run, test_ids, dataset_json["file_ending"], no_report=True):
        cmd = predict_command(run, args, dataset, args.fold, join(raw, "imagesTs"), no_report_prompts(args.o),
                              text_cache, no_report=True)
        print(f"predicting {run.trainer} (seed {run.seed}) without reports: {shown(cmd, run)}", flush=True)
        log = join(run.run_folder, "predict_no_report.log")
        result = bench_measure.run_watched(cmd, {**run_env(run), **NO_REPORT_ENV}, log)
        _check(result, f"prediction of {run.trainer} seed {run.seed} without reports", log)
        if isfile(join(run.run_folder, "scores_no_report.json")):
            os.remove(join(run.run_folder, "scores_no_report.json"))
    scores_file = join(run.run_folder, "scores_no_report.json")
    if not isfile(scores_file):
        atomic_write_json(scores_file, bench_scoring.score_folder(run.no_report_folder, join(raw, "labelsTs"),
                                                                  test_ids, dataset_json))


def collect(run: Run) -> Dict:
    """Everything known about a run, from its files (also for runs finished in an earlier call)."""
    entry = {"base_trainer": run.base_trainer, "trainer": run.trainer, "seed": run.seed,
             "model_folder": run.model_folder}
    train = _read_json(join(run.run_folder, "train_measure.json"))
    if train:
        entry["train_measure"] = train
    if isfile(join(run.model_folder, CHECKPOINT)):
        timing_file = join(run.run_folder, "timing.json")
        if _read_json(timing_file) is None:  # the final checkpoint never changes; read it once
            atomic_write_json(timing_file, bench_measure.seconds_per_iteration(run.model_folder, CHECKPOINT))
        entry["timing"] = _read_json(timing_file)
        entry["peak_gpu_mib"] = bench_measure.peak_gpu_memory_mib(run.model_folder, budget.PEAK_GPU_MEMORY_LOG)
    predict = _read_json(join(run.run_folder, "predict_measure.json"))
    if predict:
        entry["predict_measure"] = predict
    scores = _read_json(join(run.run_folder, "scores.json"))
    if scores:
        entry["scores"] = _score_summary(scores)
    return entry


def _score_summary(scores: Dict) -> Dict:
    return {"mean_over_labels": scores["mean_over_labels"],
            "labels": {k: v["summary"] for k, v in scores["labels"].items()}}


def collect_no_report(run: Run) -> Dict:
    """The same model predicted without reports, as a row of its own (no training numbers)."""
    entry = {"base_trainer": run.base_trainer + NO_REPORT, "trainer": run.trainer + NO_REPORT, "seed": run.seed,
             "model_folder": run.model_folder}
    scores = _read_json(join(run.run_folder, "scores_no_report.json"))
    if scores:
        entry["scores"] = _score_summary(scores)
    return entry


def scored_entries(runs: List[Run], no_report: bool) -> List[Dict]:
    """--report-only: the rows of the runs already scored, nothing else (unfinished runs are left out, not listed
    as unfinished, because another call may be training them right now)."""
    entries = [collect(r) for r in runs if isfile(join(r.run_folder, "scores.json"))]
    if no_report:
        entries += [collect_no_report(r) for r in runs
                    if r.is_tevia and isfile(join(r.run_folder, "scores_no_report.json"))]
    return entries


def budget_description(args) -> str:
    if args.budget == "gpu":
        return ("nnU-Net's schedule and the plans' batch size (1000 epochs x 250 iterations; "
                "nnUNetTrainer defaults), final validation skipped")
    short = args.budget == "gpuShort"
    epochs = int(os.environ.get(budget.EPOCHS_ENV, budget.GPU_SHORT_EPOCHS if short else budget.CPU_EPOCHS))
    iters = int(os.environ.get(budget.ITERS_ENV, budget.GPU_SHORT_ITERATIONS if short else budget.CPU_ITERATIONS))
    return (f"batch {budget.CPU_BATCH_SIZE}, {epochs} epochs x {iters} iterations = {epochs * iters} training steps "
            f"({budget.CPU_VAL_ITERATIONS} validation iterations per epoch), final validation skipped")


def write_report(out: str, config: Dict, machine: Dict, entries: List[Dict]) -> None:
    results = {"config": config, "machine": machine, "runs": entries}
    atomic_write_json(join(out, "results.json"), results)
    atomic_write_bytes(join(out, "results.md"), bench_report.markdown(results).encode("utf-8"))
    bench_report.plot(results, join(out, "results.png"))


# ---------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", required=True, help="[REQUIRED] dataset id or name (planned and preprocessed, with a "
                                             "labelled imagesTs / labelsTs)")
    p.add_argument("-o", required=True, help="[REQUIRED] output folder (models, predictions, results)")
    p.add_argument("-c", default="2d", help="[OPTIONAL] configuration. Default: 2d")
    p.add_argument("-p", default="nnUNetPlans", help="[OPTIONAL] plans identifier. Default: nnUNetPlans")
    p.add_argument("--budget", choices=("cpu", "gpuShort", "gpu"), default="cpu",
                   help="[OPTIONAL] cpu: batch 8 and TEVIA_BENCH_EPOCHS x TEVIA_BENCH_ITERS steps (default 25 x 40); "
                        "gpuShort: the same with default 48 x 250; gpu: nnU-Net's full schedule. Default: cpu")
    p.add_argument("--trainers", nargs="+", default=["all"],
                   help=f"[OPTIONAL] 'all' (the first five) or some of {' '.join(TRAINERS + OPTIONAL_TRAINERS)}. "
                        f"Default: all")
    p.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help=f"[OPTIONAL] seeds of {', '.join(SEEDED_TRAINERS)}; the ablations run with the first "
                        f"only. Default: 0")
    p.add_argument("--val-cases", type=int, default=None,
                   help="[OPTIONAL] imagesTr cases held out for nnU-Net's per-epoch pseudo Dice. Default: 5%% of "
                        "them, at least 1 and at most 50")
    p.add_argument("-device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"),
                   help="[OPTIONAL] cpu or cuda. Default: cuda when available")
    p.add_argument("--disable-tta", action="store_true",
                   help="[OPTIONAL] predict every model without mirroring. Default: each trainer's own choice "
                        "(nnU-Net mirrors; TeViA mirrors with flipped reports when trained with a word map)")
    p.add_argument("--no-report", action="store_true",
                   help="[OPTIONAL] also predict every TeViA model with no report for any test case (the model's "
                        "no-report text) and score it as '<trainer> (no report)': what a missing report costs")
    p.add_argument("--report-only", action="store_true",
                   help="[OPTIONAL] train and predict nothing: write results.md/json/png from the runs of this "
                        "selection that are already scored (e.g. while other calls of this script, one per trainer, "
                        "are still running into the same -o)")
    p.add_argument("--dry-run", action="store_true",
                   help="[OPTIONAL] print the commands that would run (nothing is written)")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    for tool in ("nnUNetv2_train", "nnUNetv2_predict", "nnUNetv2_tevia_predict"):
        if shutil.which(tool, path=tool_env()["PATH"]) is None:
            raise SystemExit(f"error: {tool} is not on PATH: install the package (pip install -e .) and activate "
                             f"its environment")
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_tevia.prompts.dataset_cases import dataset_folder, load_dataset_json, test_case_ids
    from nnunetv2_tevia.prompts.prompt_file import resolve_prompt_path

    dataset = maybe_convert_to_dataset_name(args.d)
    raw = dataset_folder(dataset)
    plans_file = join(nnUNet_preprocessed, dataset, args.p + ".json")
    if not isfile(plans_file):
        raise SystemExit(f"error: {plans_file} does not exist. Plan and preprocess first: "
                         f"nnUNetv2_tevia_plan_and_preprocess -d {args.d} -c {args.c} -np 2")
    dataset_json = load_dataset_json(raw)
    test_ids = test_case_ids(raw)
    missing = [c for c in test_ids if not isfile(join(raw, "labelsTs", c + dataset_json["file_ending"]))]
    if not test_ids or missing:
        raise SystemExit(f"error: the benchmark scores imagesTs against labelsTs in {raw}, but "
                         + (f"imagesTs is empty" if not test_ids else f"labelsTs lacks {len(missing)} case(s), "
                            f"e.g. {missing[0]}") + ". nnUNetv2_tevia_convert puts a labelled val split there.")
    data_folder = join(nnUNet_preprocessed, dataset, PlansManager(plans_file).get_configuration(args.c).data_identifier)
    identifiers = infer_dataset_class(data_folder).get_identifiers(data_folder)
    n_val = args.val_cases if args.val_cases is not None else min(50, max(1, round(0.05 * len(identifiers))))
    split = benchmark_split(identifiers, n_val)
    args.fold = find_or_add_split(join(nnUNet_preprocessed, dataset, "splits_final.json"), split, identifiers,
                                  write=not args.dry_run)

    runs = plan_runs(args, dataset)
    prompts = resolve_prompt_path(dataset, None)
    text_cache = os.path.abspath(join(args.o, "text_cache"))
    if any(r.is_tevia for r in runs):
        from nnunetv2_tevia.text.cache import load_active_cache

        load_active_cache(dataset)  # raises with the command to run when the training texts were not embedded
        if not isfile(prompts):
            raise SystemExit(f"error: no prompt file {prompts}; the TeViA models need the test cases' reports")

    config = {"dataset": dataset, "configuration": args.c, "plans": args.p, "budget": args.budget,
              "budget_description": budget_description(args), "fold": args.fold, "n_train": len(split["train"]),
              "n_val": len(split["val"]), "n_test": len(test_ids), "seeds": args.seeds,
              "trainers": sorted({r.base_trainer for r in runs}, key=list(TRAINERS + OPTIONAL_TRAINERS).index),
              "device": args.device, "disable_tta": args.disable_tta}
    print(f"{dataset}: fold {args.fold} ({len(split['train'])} train, {len(split['val'])} held out), "
          f"{len(test_ids)} test cases; {config['budget_description']}")
    if args.dry_run:
        for r in runs:
            done = isfile(join(r.model_folder, CHECKPOINT))
            print(("# done: " if done else "") + shown(train_command(r, args, dataset, args.fold), r))
            done = predictions_complete(r, test_ids, dataset_json["file_ending"])
            print(("# done: " if done else "") + shown(predict_command(
                r, args, dataset, args.fold, join(raw, "imagesTs"), prompts, text_cache), r))
            if args.no_report and r.is_tevia:
                done = predictions_complete(r, test_ids, dataset_json["file_ending"], no_report=True)
                print(("# done: " if done else "") + "NNUNETV2_TEVIA_ALLOW_NO_REPORT=1 " + shown(predict_command(
                    r, args, dataset, args.fold, join(raw, "imagesTs"), join(args.o, "no_report_prompts.json"),
                    text_cache, no_report=True), r))
        return

    os.makedirs(args.o, exist_ok=True)
    machine = bench_measure.machine_info(args.device)
    def with_no_report(done: List[Dict], todo: List[Run]) -> List[Dict]:
        entries = done + [collect(x) for x in todo]
        if args.no_report:
            entries += [collect_no_report(x) for x in runs if x.is_tevia]
        return entries

    if args.report_only:
        entries = scored_entries(runs, args.no_report)
        write_report(args.o, config, machine, entries)
        print(f"wrote {join(args.o, 'results.md')} from the {len(entries)} scored row(s) of {len(runs)} run(s) "
              f"(--report-only)")
        return

    done = []
    for i, r in enumerate(runs):
        done.append(execute(r, args, dataset, raw, test_ids, dataset_json, prompts, text_cache))
        write_report(args.o, config, machine, with_no_report(done, runs[i + 1:]))
    print(f"wrote {join(args.o, 'results.md')}, results.json and results.png")


if __name__ == "__main__":
    main()
