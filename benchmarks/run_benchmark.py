"""Train several trainers on one split at one budget, score them on a labelled test folder, report.

    python benchmarks/run_benchmark.py -d 501 --budget cpu --trainers all --seeds 0 1 -o benchmark_results/qata

Every trainer is wrapped in the same budget variant (``<Trainer>_cpuBudget`` / ``_gpuShortBudget`` / ``_gpuBudget``;
another length ``<Trainer>_cpuBudget<E>x<I>``, a seed other than 0 ``..._seed<S>``; benchmarks/trainers/, registered
for the nnU-Net commands this script starts) and trained on the same fold of splits_final.json: all of
imagesTr except a few cases held out for nnU-Net's per-epoch pseudo Dice. Each model then predicts imagesTs
with checkpoint_final.pth and is scored against labelsTs; TeViA models also with no report (--no-report), another
test case's report (--other-case-report) and other report files (--extra-reports NAME=FILE), each a row; with
--held-out every model also predicts the fold's held-out training cases (validation data for design choices). Models
live in OUT/models/seed_<s> (used as nnUNet_results), so the seeds of one trainer do not overwrite each other.
Every model and prediction folder records the arguments and the code version that made it (made_by.json); every
scores file names the prediction it scores. A second call skips what is done with the same arguments: finished
trainings, finished prediction folders of the model now in the model folder, and their scores. An interrupted
training continues with ``--c``; an interrupted prediction is predicted again; a model trained with other
arguments stops the call with the argument named. OUT/results.json, results.md and results.png are rewritten
after every run. How to run it, the budgets and the metric conventions: docs/benchmarks.md.
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.cli.tool_path import tool_env
from nnunetv2_tevia.errors import StaleResultError, StepFailedError, TeViAError
from nnunetv2_tevia.evaluation.provenance import (file_sha256, finish_record, mismatch, read_record, stale_reason,
                                                  start_record)
from nnunetv2_tevia.io_utils import atomic_write_bytes, atomic_write_json

import bench_measure  # noqa: E402  (sibling modules of this script)
import bench_report  # noqa: E402
import bench_scoring  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers"))
import bench_trainers  # noqa: E402  (the budget trainers, benchmarks/trainers)

TRAINERS = ("nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_noText", "nnUNetTrainerTeViA_noAlign",
            "nnUNetTrainerTeViA_noProto")
# not part of 'all' (bench_trainers.BASES says what each is for)
OPTIONAL_TRAINERS = tuple(b for b in bench_trainers.BASES if b not in TRAINERS)
EPOCHS_ENV, ITERS_ENV = "TEVIA_BENCH_EPOCHS", "TEVIA_BENCH_ITERS"  # the older spelling of --epochs / --iterations
SEEDED_TRAINERS = ("nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_mirrorText",
                   "nnUNetTrainerTeViA_locationSafe")
NO_REPORT = " (no report)"
OTHER_CASE_REPORT = " (another case's report)"
HELD_OUT = " (held-out training cases)"
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


@dataclass(frozen=True)
class Variant:
    """One way of predicting a model's test cases, scored as a row of its own (the trainer's name + ``row``).

    ``key`` names its prediction folder and scores file ("" for each case's own report, in ``predictions`` and
    ``scores.json``); ``prompts`` is its prompt file (None: the dataset's, or with ``no_report`` a file without
    cases, so that every case gets the model's no-report text). ``held_out``: the fold's held-out training cases
    instead of the test cases, for every model (plain nnU-Net too), scored against labelsTr.
    """
    key: str
    row: str
    prompts: Optional[str] = None
    no_report: bool = False
    held_out: bool = False

    def applies_to(self, run: "Run") -> bool:
        return run.is_tevia or not self.key or self.held_out

    def folder(self, run: Run) -> str:
        return join(run.run_folder, "predictions" + (f"_{self.key}" if self.key else ""))

    def scores_file(self, run: Run) -> str:
        return join(run.run_folder, "scores" + (f"_{self.key}" if self.key else "") + ".json")


OWN_REPORTS = Variant("", "")
HELD_OUT_CASES = Variant("held_out", HELD_OUT, held_out=True)


def report_variants(no_report: bool, other_case_prompts: Optional[str] = None,
                    extra: List[Variant] = (), held_out: bool = False) -> List[Variant]:
    """The rows of a TeViA model: its own reports first, then the optional ones (plain nnU-Net has the first and
    the held-out training cases)."""
    variants = [OWN_REPORTS] + ([HELD_OUT_CASES] if held_out else [])
    if no_report:
        variants.append(Variant("no_report", NO_REPORT, no_report=True))
    if other_case_prompts:
        variants.append(Variant("other_case_report", OTHER_CASE_REPORT, other_case_prompts))
    return variants + list(extra)


def extra_report_variants(specs: List[str]) -> List[Variant]:
    """--extra-reports NAME=FILE: one row per alternative report file."""
    variants, names = [], {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        key = "extra_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        if not sep or not path or key == "extra_":
            raise TeViAError(f"--extra-reports {spec!r}: give NAME=FILE, a row name with letters or digits and a "
                             f"prompt file, e.g. 'radiology style=reports_radiology.json'")
        if f" ({name})" in (NO_REPORT, OTHER_CASE_REPORT) or key in names:
            raise TeViAError(f"--extra-reports: {name!r} names the row of "
                             f"{names.get(key, 'a built-in option')!r} twice; give each file its own name")
        if not os.path.isfile(path):
            raise TeViAError(f"--extra-reports {name}: {path} is not a file")
        names[key] = name
        variants.append(Variant(key, f" ({name})", os.path.abspath(path)))
    return variants


# ---------------------------------------------------------------------------------------------------- split
def benchmark_split(identifiers: List[str], n_val: int) -> Dict[str, List[str]]:
    ids = sorted(identifiers)
    if not 0 < n_val < len(ids):
        raise TeViAError(f"--val-cases {n_val} must be between 1 and {len(ids) - 1} ({len(ids)} training cases)")
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


def held_out_images(out: str, raw: str, case_ids: List[str], ending: str) -> str:
    """OUT/held_out_images: links to the imagesTr files (every channel) of the held-out training cases, the input
    folder of their predictions. Rewritten on every call, so it always holds this split's cases."""
    folder = os.path.abspath(join(out, "held_out_images"))
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    names = set(os.listdir(join(raw, "imagesTr")))
    for c in case_ids:
        channels = sorted(n for n in names if re.fullmatch(re.escape(c) + r"_\d{4}" + re.escape(ending), n))
        if not channels:
            raise TeViAError(f"held-out training case {c} has no image in {join(raw, 'imagesTr')} (expected "
                             f"{c}_0000{ending}); the split was made from the preprocessed cases: preprocess again")
        for n in channels:
            os.symlink(os.path.abspath(join(raw, "imagesTr", n)), join(folder, n))
    return folder


def case_set(v: Variant, args, raw: str, test_ids: List[str]):
    """(images folder, labels folder, case ids) a variant predicts and scores."""
    if v.held_out:
        return join(args.o, "held_out_images"), join(raw, "labelsTr"), args.held_out_ids
    return join(raw, "imagesTs"), join(raw, "labelsTs"), test_ids


# ---------------------------------------------------------------------------------------------------- commands
def train_command(run: Run, args, dataset: str, fold: int) -> List[str]:
    cmd = ["nnUNetv2_train", dataset, args.c, str(fold), "-tr", run.trainer, "-p", args.p, "-device", args.device]
    if any(isfile(join(run.model_folder, f)) for f in ("checkpoint_latest.pth", "checkpoint_best.pth")):
        cmd.append("--c")
    return cmd


def predict_command(run: Run, args, dataset: str, fold: int, images: str, prompts: str, text_cache: str,
                    no_report: bool = False, out: Optional[str] = None) -> List[str]:
    """no_report: every case on the model's no-report text (a prompt file without cases, --allow-missing-text).
    The output folder is always new (an interrupted prediction is not continued: see execute)."""
    tool = "nnUNetv2_tevia_predict" if run.is_tevia else "nnUNetv2_predict"
    out = out or (run.no_report_folder if no_report else run.pred_folder)
    cmd = [tool, "-i", images, "-o", out, "-d", dataset, "-c", args.c, "-p", args.p, "-tr", run.trainer,
           "-f", str(fold), "-chk", CHECKPOINT, "-npp", "1", "-nps", "1", "-device", args.device,
           "--disable_progress_bar"]
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


def other_case_prompts(out: str, prompts: str, test_ids: List[str]) -> str:
    """A prompt file in which every test case has the report of another test case (OUT/other_case_prompts.json).

    A derangement, the same on every call: the test cases in an order drawn with nnU-Net's split seed, each given
    the report of the next, the last the first's. Two cases may have the same text (reports repeat in real data).
    """
    from nnunetv2_tevia.prompts.prompt_file import PromptFile, load_prompts, save_prompts

    ids = sorted(test_ids)
    if len(ids) < 2:
        raise TeViAError(f"--other-case-report needs at least two test cases, imagesTs has {len(ids)}")
    pf = load_prompts(prompts)
    missing = [c for c in ids if not (pf.cases.get(c) or "").strip()]
    if missing:
        raise TeViAError(f"--other-case-report: {prompts} has no report for {len(missing)} test case(s), e.g. "
                         f"{missing[0]}; every test case's report goes to another case")
    order = [ids[i] for i in np.random.RandomState(SPLIT_SEED).permutation(len(ids))]
    cases = {case: pf.cases[order[(i + 1) % len(order)]] for i, case in enumerate(order)}
    return save_prompts(PromptFile(path=os.path.abspath(join(out, "other_case_prompts.json")), cases=cases,
                                   classes=pf.classes, mirror=pf.mirror))


def run_env(run: Run) -> Dict[str, str]:
    """The commands' environment: this seed's nnUNet_results, and the budget trainers registered."""
    return bench_trainers.registered_env(tool_env(nnUNet_results=run.results_root))


def shown(cmd: List[str], run: Run) -> str:
    return f"nnUNet_results={shlex.quote(run.results_root)} " + shlex.join(cmd)


# ---------------------------------------------------------------------------------------------------- runs
def plan_runs(args, dataset: str) -> List[Run]:
    from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

    bases = list(TRAINERS) if args.trainers == ["all"] else args.trainers
    runs = []
    for base in bases:
        if base not in TRAINERS + OPTIONAL_TRAINERS:
            raise TeViAError(f"no trainer {base}; --trainers takes 'all' or names of "
                             f"{', '.join(TRAINERS + OPTIONAL_TRAINERS)}")
        for seed in (args.seeds if base in SEEDED_TRAINERS or args.every_seed else args.seeds[:1]):
            budget = run_budget(args, base, seed)
            trainer, cls = budget.trainer, bench_trainers.trainer_class(budget)
            root = os.path.abspath(join(args.o, "models", f"seed_{seed}"))
            model = join(root, dataset, f"{trainer}__{args.p}__{args.c}", f"fold_{args.fold}")
            runs.append(Run(base, seed, trainer, issubclass(cls, nnUNetTrainerTeViA), root, model,
                            os.path.abspath(join(args.o, "runs", f"seed_{seed}", trainer))))
    return runs


def run_budget(args, base: str = TRAINERS[0], seed: int = 0) -> "bench_trainers.Budget":
    """The budget of ``base`` with ``seed`` under this call's --budget, --epochs and --iterations."""
    try:
        return bench_trainers.make_budget(base, args.budget, args.epochs, args.iterations, seed)
    except ValueError as e:
        raise TeViAError(f"--budget {args.budget}: {e}") from None


def model_arguments(run: Run, args, dataset: str) -> Dict:
    """What makes a model: recorded in its fold folder when its training starts, compared on every later call."""
    return {"dataset": dataset, "configuration": args.c, "plans": args.p, "trainer": run.trainer, "seed": run.seed,
            "fold": args.fold, "split_sha256": args.split_sha256, "budget": budget_description(args)}


def model_conflict(run: Run, arguments: Dict) -> Optional[str]:
    """Why the model folder of ``run`` holds a model of other arguments (None: the same ones, or nothing yet)."""
    if not os.path.isdir(run.model_folder) or not os.listdir(run.model_folder):
        return None
    why = mismatch(read_record(run.model_folder), arguments)
    return f"{run.model_folder}: {why}" if why else None


def prediction_arguments(run: Run, v: Variant, args, prompts: str, test_ids: List[str]) -> Dict:
    no_report = os.path.abspath(join(args.o, "no_report_prompts.json"))  # written by main (not in a --dry-run)
    tevia_prompts = (v.prompts or (no_report if v.no_report else prompts)) if run.is_tevia else None
    sha = file_sha256(tevia_prompts) if tevia_prompts and isfile(tevia_prompts) else None
    return {"prompts": tevia_prompts, "prompts_sha256": sha, "no_report": v.no_report,
            "checkpoint": CHECKPOINT, "disable_tta": args.disable_tta,
            "test_cases_sha256": hashlib.sha256("\n".join(sorted(test_ids)).encode()).hexdigest()}


def prediction_state(run: Run, v: Variant, args, prompts: str, test_ids: List[str], ending: str):
    """(arguments, inputs, why the folder cannot be reused or None) of one variant's prediction folder."""
    arguments = prediction_arguments(run, v, args, prompts, test_ids)
    inputs = {"model": (read_record(run.model_folder) or {}).get("id")}
    folder = v.folder(run)
    return arguments, inputs, stale_reason(folder, arguments, inputs, [join(folder, c + ending) for c in test_ids])


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
        raise StepFailedError(f"{what} failed (exit status {result['returncode']}); log {log}. Last lines:\n"
                              + "".join(tail))


def remove_model_results(run: Run, new_model: bool) -> None:
    """Before a model is (re)trained: nothing predicted, scored or timed from an earlier model of its folder stays;
    with ``new_model`` (no training to continue) nor the measurements of an earlier training."""
    if not os.path.isdir(run.run_folder):
        return
    for name in os.listdir(run.run_folder):
        path = join(run.run_folder, name)
        if name.startswith("predictions") and os.path.isdir(path):
            shutil.rmtree(path)
        elif name.startswith(("scores", "predict_measure", "timing")) or (new_model and name == "train_measure.json"):
            os.remove(path)


def execute(run: Run, args, dataset: str, raw: str, test_ids: List[str], dataset_json: Dict,
            prompts: str, text_cache: str, variants: List[Variant] = (OWN_REPORTS,)) -> Dict:
    os.makedirs(run.run_folder, exist_ok=True)
    env = run_env(run)
    if not isfile(join(run.model_folder, CHECKPOINT)):
        cmd = train_command(run, args, dataset, args.fold)
        remove_model_results(run, new_model=read_record(run.model_folder) is None)
        # main checked that the folder holds nothing of other arguments; a new id even when continuing
        start_record(run.model_folder, model_arguments(run, args, dataset))
        print(f"training {run.trainer} (seed {run.seed}): {shown(cmd, run)}", flush=True)
        log = join(run.run_folder, "train.log")
        result = bench_measure.run_watched(cmd, env, log)
        _check(result, f"training {run.trainer} seed {run.seed}", log)
        finish_record(run.model_folder)
        result["machine"] = bench_measure.machine_info(args.device)
        _merge_sessions(join(run.run_folder, "train_measure.json"), result)
    for v in variants:
        if v.applies_to(run):
            predict_and_score(run, v, args, dataset, raw, test_ids, dataset_json, prompts, text_cache)
    return collect(run)


def predict_and_score(run: Run, v: Variant, args, dataset: str, raw: str, test_ids: List[str], dataset_json: Dict,
                      prompts: str, text_cache: str) -> None:
    """Predict into a new folder unless it holds the finished prediction of these arguments by the model now in the
    model folder (a half-written file of an interrupted prediction can still be readable), then score it unless
    the scores file names that prediction."""
    folder, ending = v.folder(run), dataset_json["file_ending"]
    images, labels, case_ids = case_set(v, args, raw, test_ids)
    arguments, inputs, why = prediction_state(run, v, args, prompts, case_ids, ending)
    if why is not None:
        shutil.rmtree(folder, ignore_errors=True)
        cmd = predict_command(run, args, dataset, args.fold, images, arguments["prompts"], text_cache,
                              no_report=v.no_report, out=folder)
        print(f"predicting {run.trainer} (seed {run.seed}){v.row}: {shown(cmd, run)}", flush=True)
        log = join(run.run_folder, f"predict{'_' + v.key if v.key else ''}.log")
        start_record(folder, arguments, inputs)
        result = bench_measure.run_watched(cmd, run_env(run), log)
        _check(result, f"prediction of {run.trainer} seed {run.seed}{v.row}", log)
        finish_record(folder)
        if not v.key:
            atomic_write_json(join(run.run_folder, "predict_measure.json"), result)
    prediction = read_record(folder)
    scores = _read_json(v.scores_file(run))
    if scores is None or scores.get("made_by", {}).get("prediction") != prediction["id"]:
        scores = bench_scoring.score_folder(folder, labels, case_ids, dataset_json)
        scores["made_by"] = {"prediction": prediction["id"], "predictions": folder}
        atomic_write_json(v.scores_file(run), scores)


def current_scores(run: Run, v: Variant) -> Optional[Dict]:
    """The scores of a variant if they score the finished prediction of the model now in the model folder."""
    model, prediction = read_record(run.model_folder), read_record(v.folder(run))
    scores = _read_json(v.scores_file(run))
    if model and prediction and scores and prediction.get("complete") \
            and prediction["inputs"].get("model") == model["id"] \
            and scores.get("made_by", {}).get("prediction") == prediction["id"]:
        return scores
    return None


def collect(run: Run, v: Variant = OWN_REPORTS) -> Dict:
    """Everything known about a run's row, from its files (also for runs finished in an earlier call): the model
    folder, the records of the model and the prediction, the scores; for its own reports also the measurements."""
    entry = {"base_trainer": run.base_trainer + v.row, "trainer": run.trainer + v.row, "seed": run.seed,
             "model_folder": run.model_folder,
             "made_by": {"model": read_record(run.model_folder), "prediction": read_record(v.folder(run))}}
    if not v.key:
        train = _read_json(join(run.run_folder, "train_measure.json"))
        if train:
            entry["train_measure"] = train
        if isfile(join(run.model_folder, CHECKPOINT)):
            timing_file = join(run.run_folder, "timing.json")
            if _read_json(timing_file) is None:  # the final checkpoint never changes; read it once
                atomic_write_json(timing_file, bench_measure.seconds_per_iteration(run.model_folder, CHECKPOINT))
            entry["timing"] = _read_json(timing_file)
            entry["peak_gpu_mib"] = bench_measure.peak_gpu_memory_mib(run.model_folder,
                                                                      bench_trainers.PEAK_GPU_MEMORY_LOG)
        predict = _read_json(join(run.run_folder, "predict_measure.json"))
        if predict:
            entry["predict_measure"] = predict
    scores = current_scores(run, v)
    if scores:
        entry["scores"] = _score_summary(scores)
    return entry


def _score_summary(scores: Dict) -> Dict:
    return {"mean_over_labels": scores["mean_over_labels"],
            "labels": {k: v["summary"] for k, v in scores["labels"].items()}}


def collect_no_report(run: Run) -> Dict:
    """The same model predicted without reports, as a row of its own (no training numbers)."""
    return collect(run, report_variants(no_report=True)[1])


def all_entries(runs: List[Run], variants: List[Variant], scored_only: bool = False) -> List[Dict]:
    """A row per run and its own reports, then a row per TeViA run and other variant. --report-only
    (``scored_only``): the rows already scored, nothing else (unfinished runs are left out, not listed as
    unfinished, because another call may be training them right now)."""
    pairs = [(r, OWN_REPORTS) for r in runs] + [(r, v) for v in variants if v.key
                                                for r in runs if v.applies_to(r)]
    return [collect(r, v) for r, v in pairs if not scored_only or current_scores(r, v) is not None]


def scored_entries(runs: List[Run], variants: List[Variant]) -> List[Dict]:
    return all_entries(runs, variants, scored_only=True)


def budget_description(args) -> str:
    return run_budget(args).description()


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
    p.add_argument("--budget", choices=tuple(bench_trainers.MIXINS), default="cpu",
                   help="[OPTIONAL] cpu: batch 8 and --epochs x --iterations steps (default 25 x 40); gpuShort: the "
                        "same with default 48 x 250; gpu: nnU-Net's full schedule. Each trainer is trained as "
                        "<trainer>_<budget>Budget[<E>x<I>][_seed<S>]. Default: cpu")
    p.add_argument("--epochs", type=int, default=None,
                   help="[OPTIONAL] epochs of the cpu or gpuShort budget (also read from TEVIA_BENCH_EPOCHS, the "
                        "older spelling); another length is another trainer name and model folder. Default: the "
                        "budget's")
    p.add_argument("--iterations", type=int, default=None,
                   help="[OPTIONAL] iterations per epoch of the cpu or gpuShort budget (also read from "
                        "TEVIA_BENCH_ITERS). Default: the budget's")
    p.add_argument("--trainers", nargs="+", default=["all"],
                   help=f"[OPTIONAL] 'all' (the first five) or some of {' '.join(TRAINERS + OPTIONAL_TRAINERS)}. "
                        f"Default: all")
    p.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help=f"[OPTIONAL] seeds of {', '.join(SEEDED_TRAINERS)}; the ablations run with the first "
                        f"only (unless --every-seed). Default: 0")
    p.add_argument("--every-seed", action="store_true",
                   help="[OPTIONAL] train every trainer of --trainers with every seed of --seeds, the ablations too "
                        "(a paired table: each row over the same seeds)")
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
    p.add_argument("--other-case-report", action="store_true",
                   help="[OPTIONAL] also predict every TeViA model with each test case given another test case's "
                        "report (a fixed derangement, OUT/other_case_prompts.json), scored as "
                        "\"<trainer> (another case's report)\": what a wrong but plausible report does")
    p.add_argument("--extra-reports", action="append", default=[], metavar="NAME=FILE",
                   help="[OPTIONAL, repeatable] also predict every TeViA model with the reports of FILE (a prompt "
                        "file, docs/prompt_format.md, with a report for every test case) and score it as "
                        "'<trainer> (NAME)', e.g. --extra-reports 'radiology style=reports_radiology.json'")
    p.add_argument("--held-out", action="store_true",
                   help="[OPTIONAL] also predict every model (plain nnU-Net too) on the fold's held-out training "
                        "cases (those of nnU-Net's pseudo Dice, never trained on), with each case's own report and "
                        "the model's own test-time behaviour, scored against labelsTr as '<trainer> (held-out "
                        "training cases)': validation data on which to choose between designs, so that the test "
                        "cases choose nothing")
    p.add_argument("--report-only", action="store_true",
                   help="[OPTIONAL] train and predict nothing: write results.md/json/png from the runs of this "
                        "selection that are already scored, with models trained with these arguments (e.g. while "
                        "other calls of this script, one per trainer, are still running into the same -o)")
    p.add_argument("--dry-run", action="store_true",
                   help="[OPTIONAL] print the commands that would run (nothing is written)")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; for cpu and gpuShort, --epochs / --iterations fall back on the environment variables that
    set them in earlier versions (read here only: the trainer name carries the length)."""
    args = build_parser().parse_args(argv)
    for option, var in (("epochs", EPOCHS_ENV), ("iterations", ITERS_ENV)):
        if args.budget != "gpu" and getattr(args, option) is None and os.environ.get(var):
            print(f"{var}={os.environ[var]}: read as --{option} {os.environ[var]}")
            setattr(args, option, int(os.environ[var]))
    run_budget(args)  # an impossible budget stops here, before the data are read
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    for tool in ("nnUNetv2_train", "nnUNetv2_predict", "nnUNetv2_tevia_predict"):
        if shutil.which(tool, path=tool_env()["PATH"]) is None:
            raise TeViAError(f"{tool} is not on PATH: install the package (pip install -e .) and activate its "
                             f"environment")
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_tevia.prompts.dataset_cases import dataset_folder, load_dataset_json, test_case_ids
    from nnunetv2_tevia.prompts.prompt_file import load_prompts, resolve_prompt_path

    dataset = maybe_convert_to_dataset_name(args.d)
    raw = dataset_folder(dataset)
    plans_file = join(nnUNet_preprocessed, dataset, args.p + ".json")
    if not isfile(plans_file):
        raise TeViAError(f"{plans_file} does not exist. Plan and preprocess first: "
                         f"nnUNetv2_tevia_plan_and_preprocess -d {args.d} -c {args.c} -np 2")
    dataset_json = load_dataset_json(raw)
    test_ids = test_case_ids(raw)
    missing = [c for c in test_ids if not isfile(join(raw, "labelsTs", c + dataset_json["file_ending"]))]
    if not test_ids or missing:
        raise TeViAError(f"the benchmark scores imagesTs against labelsTs in {raw}, but "
                         + ("imagesTs is empty" if not test_ids else f"labelsTs lacks {len(missing)} case(s), "
                            f"e.g. {missing[0]}") + ". nnUNetv2_tevia_convert puts a labelled val split there.")
    data_folder = join(nnUNet_preprocessed, dataset, PlansManager(plans_file).get_configuration(args.c).data_identifier)
    identifiers = infer_dataset_class(data_folder).get_identifiers(data_folder)
    n_val = args.val_cases if args.val_cases is not None else min(50, max(1, round(0.05 * len(identifiers))))
    split = benchmark_split(identifiers, n_val)
    args.fold = find_or_add_split(join(nnUNet_preprocessed, dataset, "splits_final.json"), split, identifiers,
                                  write=not args.dry_run)
    args.split_sha256 = hashlib.sha256(json.dumps(split, sort_keys=True).encode()).hexdigest()

    runs = plan_runs(args, dataset)
    prompts = resolve_prompt_path(dataset, None)
    text_cache = os.path.abspath(join(args.o, "text_cache"))
    if any(r.is_tevia for r in runs):
        from nnunetv2_tevia.text.cache import load_active_cache

        load_active_cache(dataset)  # raises with the command to run when the training texts were not embedded
        if not isfile(prompts):
            raise TeViAError(f"no prompt file {prompts}; the TeViA models need the test cases' reports")
    extra = extra_report_variants(args.extra_reports)
    for v in extra:  # checked before any training, not after hours of it
        pf = load_prompts(v.prompts)
        missing = [c for c in test_ids if not (pf.cases.get(c) or "").strip()]
        if missing and not pf.default:
            raise TeViAError(f"--extra-reports{v.row}: {v.prompts} has no report for {len(missing)} of the "
                             f"{len(test_ids)} test cases, e.g. {missing[0]}; give every test case a report")
    if args.other_case_report and len(test_ids) < 2:
        raise TeViAError(f"--other-case-report needs at least two test cases, imagesTs has {len(test_ids)}")
    other = os.path.abspath(join(args.o, "other_case_prompts.json")) if args.other_case_report else None
    variants = report_variants(args.no_report, other, extra, held_out=args.held_out)
    args.held_out_ids = split["val"]
    conflicts = [why for why in (model_conflict(r, model_arguments(r, args, dataset)) for r in runs) if why]

    config = {"dataset": dataset, "configuration": args.c, "plans": args.p, "budget": args.budget,
              "budget_description": budget_description(args), "fold": args.fold, "n_train": len(split["train"]),
              "n_val": len(split["val"]), "n_test": len(test_ids), "seeds": args.seeds,
              "trainers": sorted({r.base_trainer for r in runs}, key=list(TRAINERS + OPTIONAL_TRAINERS).index),
              "device": args.device, "disable_tta": args.disable_tta}
    print(f"{dataset}: fold {args.fold} ({len(split['train'])} train, {len(split['val'])} held out), "
          f"{len(test_ids)} test cases; {config['budget_description']}")
    if args.dry_run:
        registered = bench_trainers.registered_env({})
        print(f"# each command runs with the budget trainers registered: PYTHONPATH+={registered['PYTHONPATH']} "
              f"nnUNet_extTrainer+={registered['nnUNet_extTrainer']}")
        for why in conflicts:
            print(f"# stops: {why}")
        for r in runs:
            done = isfile(join(r.model_folder, CHECKPOINT))
            print(("# done: " if done else "") + shown(train_command(r, args, dataset, args.fold), r))
            for v in (v for v in variants if v.applies_to(r)):
                images, _, case_ids = case_set(v, args, raw, test_ids)
                arguments, _, why = prediction_state(r, v, args, prompts, case_ids, dataset_json["file_ending"])
                print(("# done: " if done and why is None else "") + shown(predict_command(
                    r, args, dataset, args.fold, images, arguments["prompts"], text_cache,
                    no_report=v.no_report, out=v.folder(r)), r))
        return

    machine = bench_measure.machine_info(args.device)
    if args.report_only:
        for why in conflicts:
            print(f"left out, trained with other arguments: {why}")
        ok = [r for r in runs if not model_conflict(r, model_arguments(r, args, dataset))]
        entries = scored_entries(ok, variants)
        write_report(args.o, config, machine, entries)
        print(f"wrote {join(args.o, 'results.md')} from the {len(entries)} scored row(s) of {len(runs)} run(s) "
              f"(--report-only)")
        return
    if conflicts:  # before anything is trained or predicted: a parallel call may be using these folders
        raise StaleResultError(
            "the output folder holds models trained with other arguments than this call's:\n  " + "\n  ".join(
                conflicts) + "\nUse another -o, or the arguments they were trained with (each model folder's "
            "made_by.json), or delete such a model folder and its OUT/runs/seed_<s>/<trainer> folder to train it again")
    os.makedirs(args.o, exist_ok=True)
    if args.no_report:
        no_report_prompts(args.o)
    if other:
        other_case_prompts(args.o, prompts, test_ids)
    if args.held_out:
        held_out_images(args.o, raw, split["val"], dataset_json["file_ending"])
    for r in runs:
        execute(r, args, dataset, raw, test_ids, dataset_json, prompts, text_cache, variants)
        write_report(args.o, config, machine, all_entries(runs, variants))
    print(f"wrote {join(args.o, 'results.md')}, results.json and results.png")


if __name__ == "__main__":
    exit_on_user_error(main)()
