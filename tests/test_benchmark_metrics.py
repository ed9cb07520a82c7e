"""Per-case and pooled Dice / IoU against values worked out by hand on small masks."""
import math
import os

import numpy as np
import pytest

from nnunetv2_tevia.evaluation.metrics import (Counts, confusion_counts, dice_from_counts, iou_from_counts, pooled,
                                               summarise)


def _mask(rows):
    return np.array(rows, dtype=bool)


# case A: gt has 4 pixels, prediction 2 of them plus 1 wrong -> tp 2, fp 1, fn 2
GT_A = _mask([[1, 1, 0], [1, 1, 0], [0, 0, 0]])
PRED_A = _mask([[1, 1, 1], [0, 0, 0], [0, 0, 0]])
# case B: small lesion of 1 pixel, missed entirely, one false pixel elsewhere -> tp 0, fp 1, fn 1
GT_B = _mask([[0, 0, 0], [0, 1, 0], [0, 0, 0]])
PRED_B = _mask([[1, 0, 0], [0, 0, 0], [0, 0, 0]])
# case C: both empty
EMPTY = np.zeros((3, 3), dtype=bool)


def test_counts_of_one_case():
    assert confusion_counts(PRED_A, GT_A) == Counts(tp=2, fp=1, fn=2)
    assert confusion_counts(PRED_B, GT_B) == Counts(tp=0, fp=1, fn=1)
    assert confusion_counts(EMPTY, EMPTY) == Counts(0, 0, 0)
    # label maps are compared as given: the caller selects the label
    assert confusion_counts(np.array([0, 2, 2]) == 2, np.array([2, 2, 0]) == 2) == Counts(tp=1, fp=1, fn=1)


def test_per_case_dice_and_iou():
    a = confusion_counts(PRED_A, GT_A)
    assert dice_from_counts(a) == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # 4/7
    assert iou_from_counts(a) == pytest.approx(2 / 5)
    b = confusion_counts(PRED_B, GT_B)
    assert dice_from_counts(b) == 0.0 and iou_from_counts(b) == 0.0


def test_empty_prediction_of_empty_ground_truth_scores_one():
    c = confusion_counts(EMPTY, EMPTY)
    assert dice_from_counts(c) == 1.0
    assert iou_from_counts(c) == 1.0
    # a false positive on an empty ground truth is a miss, not an empty case
    assert dice_from_counts(confusion_counts(PRED_B, EMPTY)) == 0.0


def test_pooled_differs_from_per_case_mean():
    counts = [confusion_counts(PRED_A, GT_A), confusion_counts(PRED_B, GT_B)]
    assert pooled(counts) == Counts(tp=2, fp=2, fn=3)
    s = summarise(counts)
    assert s["n_cases"] == 2
    assert s["per_case_dice"] == pytest.approx((4 / 7 + 0.0) / 2)
    assert s["per_case_iou"] == pytest.approx((2 / 5 + 0.0) / 2)
    assert s["pooled_dice"] == pytest.approx(4 / 9)
    assert s["pooled_iou"] == pytest.approx(2 / 7)


def test_empty_case_counts_as_one_per_case_and_leaves_pooled_unchanged():
    counts = [confusion_counts(PRED_A, GT_A), confusion_counts(EMPTY, EMPTY)]
    s = summarise(counts)
    assert s["per_case_dice"] == pytest.approx((4 / 7 + 1.0) / 2)
    assert s["pooled_dice"] == pytest.approx(4 / 7)
    assert summarise([Counts(0, 0, 0)])["pooled_dice"] == 1.0


def test_no_cases_gives_nan():
    s = summarise([])
    assert s["n_cases"] == 0
    assert all(math.isnan(s[k]) for k in ("per_case_dice", "per_case_iou", "pooled_dice", "pooled_iou"))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        confusion_counts(np.zeros((2, 2), bool), np.zeros((3, 3), bool))


def test_3d_masks():
    gt = np.zeros((2, 2, 2), bool)
    gt[0] = True
    pred = np.zeros((2, 2, 2), bool)
    pred[:, 0] = True
    assert confusion_counts(pred, gt) == Counts(tp=2, fp=2, fn=2)
    assert dice_from_counts(confusion_counts(pred, gt)) == pytest.approx(0.5)


# ------------------------------------------------------------------ the benchmark script's split and summary
def _benchmark_modules():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_report
    import run_benchmark

    return run_benchmark, bench_report


def test_benchmark_split_keeps_existing_folds(tmp_path):
    import json

    run_benchmark, _ = _benchmark_modules()
    ids = [f"case_{i:02d}" for i in range(20)]
    split = run_benchmark.benchmark_split(ids, 2)
    assert len(split["val"]) == 2 and sorted(split["train"] + split["val"]) == ids
    assert run_benchmark.benchmark_split(list(reversed(ids)), 2) == split  # independent of the listing order

    splits_file = tmp_path / "splits_final.json"
    # dry run: nothing written, and the fold it would get is after nnU-Net's five default folds
    assert run_benchmark.find_or_add_split(str(splits_file), split, ids, write=False) == 5
    assert not splits_file.exists()
    assert run_benchmark.find_or_add_split(str(splits_file), split, ids, write=True) == 5
    folds = json.loads(splits_file.read_text())
    assert len(folds) == 6 and all(len(f["val"]) == 4 for f in folds[:5])  # nnU-Net's 5-fold split, untouched
    # a second call finds the fold instead of appending it again
    assert run_benchmark.find_or_add_split(str(splits_file), split, ids, write=True) == 5
    assert len(json.loads(splits_file.read_text())) == 6

    # a user's own split file stays as it was, the benchmark fold goes after it
    user = [{"train": ids[:10], "val": ids[10:]}]
    splits_file.write_text(json.dumps(user))
    assert run_benchmark.find_or_add_split(str(splits_file), split, ids, write=True) == 1
    assert json.loads(splits_file.read_text())[0] == user[0]

    from nnunetv2_tevia.errors import TeViAError

    with pytest.raises(TeViAError, match="val-cases") as caught:  # library code: the project's error, no exit
        run_benchmark.benchmark_split(ids, 20)
    assert not isinstance(caught.value, SystemExit)


def test_every_seed_pairs_the_ablations(tmp_path):
    """By default the ablations train with the first seed only; --every-seed gives every trainer every seed (issue
    21's paired table: nnUNetTrainer, TeViA, _noText and _reference over the same seeds)."""
    run_benchmark, _ = _benchmark_modules()
    trainers = ["nnUNetTrainer", "nnUNetTrainerTeViA_noText", "nnUNetTrainerTeViA_reference"]
    base = ["-d", "1", "-o", str(tmp_path), "--trainers", *trainers, "--seeds", "0", "1", "-device", "cpu"]

    def planned(argv):
        args = run_benchmark.build_parser().parse_args(argv)
        args.fold = 5
        return [(r.base_trainer, r.seed) for r in run_benchmark.plan_runs(args, "Dataset001_X")]

    assert planned(base) == [("nnUNetTrainer", 0), ("nnUNetTrainer", 1), ("nnUNetTrainerTeViA_noText", 0),
                             ("nnUNetTrainerTeViA_reference", 0)]
    runs = planned(base + ["--every-seed"])
    assert runs == [(t, s) for t in trainers for s in (0, 1)]
    # each seed's models in a folder of their own, so the seeds of one trainer do not overwrite each other
    args = run_benchmark.build_parser().parse_args(base + ["--every-seed"])
    args.fold = 5
    folders = [r.model_folder for r in run_benchmark.plan_runs(args, "Dataset001_X")]
    assert len(set(folders)) == len(folders)


def test_summary_over_seeds_and_markdown():
    _, bench_report = _benchmark_modules()

    def run(trainer, seed, dice, spi):
        return {"base_trainer": trainer, "trainer": trainer + "_cpuBudget", "seed": seed,
                "scores": {"mean_over_labels": {"per_case_dice": dice, "per_case_iou": dice / 2,
                                                "pooled_dice": dice + 0.1, "pooled_iou": dice / 2}},
                "timing": {"seconds_per_iteration": spi},
                "train_measure": {"peak_rss_mib": 1000.0, "wall_seconds": 600.0, "load_average_start": [3.0, 2, 1]}}

    runs = [run("nnUNetTrainer", 0, 0.70, 1.0), run("nnUNetTrainer", 1, 0.74, 1.2),
            run("nnUNetTrainerTeViA", 0, 0.8, 1.1),
            {"base_trainer": "nnUNetTrainerTeViA_noText", "trainer": "nnUNetTrainerTeViA_noText_cpuBudget", "seed": 0}]
    summary = bench_report.summarise_runs(runs[:3])
    plain = summary["nnUNetTrainer"]["per_case_dice"]
    assert plain["n"] == 2 and plain["mean"] == pytest.approx(0.72)
    assert plain["sd"] == pytest.approx(np.std([0.70, 0.74], ddof=1))
    assert summary["nnUNetTrainerTeViA"]["per_case_dice"]["n"] == 1
    assert math.isnan(summary["nnUNetTrainerTeViA"]["per_case_dice"]["sd"])

    results = {"config": {"dataset": "Dataset501_QaTa", "configuration": "2d", "budget": "cpu",
                          "budget_description": "batch 8", "fold": 5, "n_train": 19, "n_val": 1, "n_test": 20},
               "machine": {"cpu": "AMD EPYC", "logical_cpus": 2, "device": "cpu", "torch": "2", "gpu": None},
               "runs": runs}
    text = bench_report.markdown(results)
    assert "| nnUNetTrainer | 0 1 | 0.7200 ± 0.0283 |" in text
    assert "| nnUNetTrainerTeViA | 0 | 0.8000 |" in text
    assert "Not finished yet: nnUNetTrainerTeViA_noText_cpuBudget (seed 0)" in text
    assert "Pooled" in text and "Per-case" in text


def _scored(run, variant, scores):
    """The files of a scored row: the model's record, its prediction's (finished) and scores naming that prediction."""
    import json

    from nnunetv2_tevia.evaluation import provenance as pv

    model = pv.read_record(run.model_folder)
    if model is None:
        pv.start_record(run.model_folder, {})
        model = pv.finish_record(run.model_folder)
    pv.start_record(variant.folder(run), {}, {"model": model["id"]})
    prediction = pv.finish_record(variant.folder(run))
    os.makedirs(run.run_folder, exist_ok=True)
    with open(variant.scores_file(run), "w") as f:
        json.dump(dict(scores, made_by={"prediction": prediction["id"]}), f)


def test_no_report_prediction_command_and_row(tmp_path):
    """--no-report: the TeViA model predicts every case on its no-report text, scored as a row of its own."""
    import json
    from argparse import Namespace

    from nnunetv2_tevia.prompts.prompt_file import load_prompts

    run_benchmark, bench_report = _benchmark_modules()
    run = run_benchmark.Run("nnUNetTrainerTeViA_textDropout", 0, "nnUNetTrainerTeViA_textDropout_cpuBudget", True,
                            str(tmp_path / "models"), str(tmp_path / "model"), str(tmp_path / "run"))
    args = Namespace(c="2d", p="nnUNetPlans", device="cpu", disable_tta=False)
    prompts = run_benchmark.no_report_prompts(str(tmp_path))
    assert load_prompts(prompts).cases == {}  # a valid prompt file that names no case
    cmd = run_benchmark.predict_command(run, args, "Dataset501_QaTa", 5, "imgs", prompts, "cache", no_report=True)
    assert cmd[cmd.index("-o") + 1] == run.no_report_folder != run.pred_folder
    assert cmd[cmd.index("--prompts") + 1] == prompts and "--allow-missing-text" in cmd
    assert "--allow-missing-text" not in run_benchmark.predict_command(run, args, "D", 5, "imgs", "p.json", "cache")

    scores = {"mean_over_labels": {"per_case_dice": 0.61, "per_case_iou": 0.5, "pooled_dice": 0.7,
                                   "pooled_iou": 0.55}, "labels": {"1": {"summary": {}}}}
    _scored(run, run_benchmark.report_variants(no_report=True)[1], scores)
    row = run_benchmark.collect_no_report(run)
    assert row["base_trainer"] == "nnUNetTrainerTeViA_textDropout (no report)"
    assert row["scores"]["mean_over_labels"]["per_case_dice"] == 0.61
    summary = bench_report.summarise_runs([row])
    assert summary["nnUNetTrainerTeViA_textDropout (no report)"]["per_case_dice"]["mean"] == pytest.approx(0.61)


def test_report_only_lists_scored_runs_alone(tmp_path):
    """--report-only: rows for the scored runs (and their no-report scores), none for runs still training."""
    import json

    run_benchmark, bench_report = _benchmark_modules()

    def make(base, seed, tevia):
        return run_benchmark.Run(base, seed, base + "_cpuBudget", tevia, str(tmp_path / "models"),
                                 str(tmp_path / "models" / base / str(seed)), str(tmp_path / "runs" / base / str(seed)))

    scores = {"mean_over_labels": {"per_case_dice": 0.6, "per_case_iou": 0.5, "pooled_dice": 0.7, "pooled_iou": 0.55},
              "labels": {"1": {"summary": {}}}}
    done, no_report_done, training = (make("nnUNetTrainer", 0, False), make("nnUNetTrainerTeViA", 0, True),
                                      make("nnUNetTrainerTeViA", 1, True))
    variants = run_benchmark.report_variants(no_report=True)
    for r, scored in ((done, variants[:1]), (no_report_done, variants), (training, [])):
        for v in scored:
            _scored(r, v, scores)
    # scores left by an earlier model of a folder that is training again: no prediction record, not a row
    os.makedirs(training.run_folder)
    with open(os.path.join(training.run_folder, "scores.json"), "w") as fh:
        json.dump(scores, fh)
    rows = run_benchmark.scored_entries([done, no_report_done, training], variants)
    assert [(r["base_trainer"], r["seed"]) for r in rows] == [
        ("nnUNetTrainer", 0), ("nnUNetTrainerTeViA", 0), ("nnUNetTrainerTeViA (no report)", 0)]
    assert len(run_benchmark.scored_entries([done, no_report_done, training], variants[:1])) == 2
    assert "Not finished yet" not in bench_report.markdown(
        {"config": {"dataset": "D", "configuration": "2d", "budget": "cpu", "budget_description": "b", "fold": 5,
                    "n_train": 1, "n_val": 1, "n_test": 1},
         "machine": {"cpu": "x", "logical_cpus": 2, "device": "cpu", "torch": "2", "gpu": None}, "runs": rows})


def test_every_benchmark_trainer_has_each_budget_variant_nnunet_can_find(monkeypatch):
    """run_benchmark wraps each trainer it offers in <name>_cpuBudget / _gpuShortBudget / _gpuBudget (another length
    <name>_cpuBudget<E>x<I>, another seed ..._seed<S>); nnUNetv2_train must find them once the benchmark registers
    benchmarks/trainers, and finds the same class for the same name every time."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    run_benchmark, _ = _benchmark_modules()
    import bench_trainers as bt

    for k, v in bt.registered_env({k: os.environ.get(k, "") for k in ("PYTHONPATH", "nnUNet_extTrainer")}).items():
        monkeypatch.setenv(k, v)
    assert set(run_benchmark.TRAINERS + run_benchmark.OPTIONAL_TRAINERS) == set(bt.BASES)
    for base in bt.BASES:
        base_cls = recursive_find_trainer_class_by_name(base)
        for kind, mixin in bt.MIXINS.items():
            name = bt.make_budget(base, kind).trainer
            assert name == f"{base}_{kind}Budget" and name in bt.__all__
            cls = recursive_find_trainer_class_by_name(name)
            assert cls is getattr(bt, name) is recursive_find_trainer_class_by_name(name)
            # the budget comes first in the MRO, so its epochs / batch size win over the trainer's own
            assert issubclass(cls, base_cls) and cls.__mro__[1] is mixin and cls.__name__ == name
    assert bt.CPU_EPOCHS * bt.CPU_ITERATIONS == 1000  # the documented default (docs/benchmarks.md)
    assert bt.GPU_SHORT_EPOCHS * bt.GPU_SHORT_ITERATIONS >= 10000  # issue: at least 10 000 steps


@pytest.mark.parametrize("name,budget", [
    ("nnUNetTrainerTeViA_cpuBudget", ("nnUNetTrainerTeViA", "cpu", 25, 40, 0)),
    ("nnUNetTrainerTeViA_noText_cpuBudget30x40", ("nnUNetTrainerTeViA_noText", "cpu", 30, 40, 0)),
    ("nnUNetTrainer_gpuShortBudget80x50", ("nnUNetTrainer", "gpuShort", 80, 50, 0)),  # gpu_long_schedule's CPU run
    ("nnUNetTrainerTeViA_cpuBudget_seed1", ("nnUNetTrainerTeViA", "cpu", 25, 40, 1)),
    ("nnUNetTrainer_locationSafe_cpuBudget1x2_seed3", ("nnUNetTrainer_locationSafe", "cpu", 1, 2, 3)),
    ("nnUNetTrainerTeViA_gpuBudget_seed2", ("nnUNetTrainerTeViA", "gpu", None, None, 2)),
])
def test_a_budget_is_part_of_the_trainer_name(name, budget):
    """The documented name pattern <Base>_<kind>Budget[<E>x<I>][_seed<S>], read back into the budget it stands for;
    the class carries it, so two budgets never share a results folder."""
    _benchmark_modules()
    import bench_trainers as bt

    b = bt.budget_of(name)
    assert tuple(b) == budget and b.trainer == name and bt.make_budget(*budget[:4], seed=budget[4]) == b
    cls = getattr(bt, name)
    assert cls.bench_budget == b and cls.__name__ == name
    if b.kind != "gpu":
        assert f"{b.epochs} epochs x {b.iterations} iterations" in b.description()


@pytest.mark.parametrize("name", [
    "nnUNetTrainerTeViA_cpuBudget25x40",  # the default length has one name: _cpuBudget
    "nnUNetTrainerTeViA_cpuBudget_seed0",  # so has the default seed
    "nnUNetTrainerTeViA_gpuBudget10x10",  # gpu is nnU-Net's own schedule
    "nnUNetTrainerTeViA_cpuBudget0x40", "nnUNetTrainerTeViA_5epochs_cpuBudget", "nnUNetTrainerTeViA_demoBudget",
    "nnUNetTrainerTeViA_cpuBudget_snapshots"])
def test_other_names_are_no_benchmark_trainer(name):
    _benchmark_modules()
    import bench_trainers as bt

    assert bt.budget_of(name) is None and not hasattr(bt, name)


def test_the_learning_curves_train_the_demo_budget_with_snapshots():
    """demo_learning_curves.py trains <demo trainer>_snapshots: the demo's budget (name and all) plus the benchmarks'
    snapshot mixin, a benchmark trainer the demo itself never registers."""
    _benchmark_modules()
    import bench_trainers as bt
    from nnunetv2_tevia.demo.budget import DemoBudget
    from nnunetv2_tevia.demo.trainers import DemoBudgetMixin

    cls = getattr(bt, "nnUNetTrainerTeViA_demoBudget10x25_seed1_snapshots")
    assert cls.__mro__[1] is bt.SnapshotMixin and cls.__mro__[2].__mro__[1] is DemoBudgetMixin
    assert cls.demo_budget == DemoBudget("nnUNetTrainerTeViA", 10, 25, 1)
    assert not hasattr(bt, "nnUNetTrainerTeViA_demoBudget20x25_snapshots")  # the default length has one name


def test_the_budget_options_choose_the_trainer_name(monkeypatch, tmp_path):
    """--epochs / --iterations (or the TEVIA_BENCH_EPOCHS / TEVIA_BENCH_ITERS of earlier versions) and the seed go
    into the names of the trainers, their model folders and their run folders."""
    from nnunetv2_tevia.errors import TeViAError

    run_benchmark, _ = _benchmark_modules()
    base = ["-d", "1", "-o", str(tmp_path), "--trainers", "nnUNetTrainerTeViA", "--seeds", "0", "1"]

    def planned(argv):
        args = run_benchmark.parse_args(argv)
        args.fold = 5
        return [(r.trainer, os.path.basename(os.path.dirname(r.model_folder)), os.path.basename(r.run_folder))
                for r in run_benchmark.plan_runs(args, "Dataset001_X")]

    monkeypatch.delenv("TEVIA_BENCH_EPOCHS", raising=False)
    monkeypatch.delenv("TEVIA_BENCH_ITERS", raising=False)
    assert planned(base) == [
        ("nnUNetTrainerTeViA_cpuBudget", "nnUNetTrainerTeViA_cpuBudget__nnUNetPlans__2d",
         "nnUNetTrainerTeViA_cpuBudget"),
        ("nnUNetTrainerTeViA_cpuBudget_seed1", "nnUNetTrainerTeViA_cpuBudget_seed1__nnUNetPlans__2d",
         "nnUNetTrainerTeViA_cpuBudget_seed1")]
    assert [t for t, _, _ in planned(base + ["--epochs", "30"])] == [
        "nnUNetTrainerTeViA_cpuBudget30x40", "nnUNetTrainerTeViA_cpuBudget30x40_seed1"]
    assert [t for t, _, _ in planned(base + ["--budget", "gpuShort", "--epochs", "80", "--iterations", "50"])][0] \
        == "nnUNetTrainerTeViA_gpuShortBudget80x50"
    monkeypatch.setenv("TEVIA_BENCH_EPOCHS", "30")
    assert planned(base)[0][0] == "nnUNetTrainerTeViA_cpuBudget30x40"
    assert planned(base + ["--epochs", "2"])[0][0] == "nnUNetTrainerTeViA_cpuBudget2x40"  # the option wins
    assert planned(base + ["--budget", "gpu"])[0][0] == "nnUNetTrainerTeViA_gpuBudget"  # as before: gpu ignores it
    with pytest.raises(TeViAError, match="gpu budget"):
        run_benchmark.parse_args(base + ["--budget", "gpu", "--epochs", "3"])


# ------------------------------------------------------------------ one rule for a missing prediction
def _two_cases(tmp_path):
    from PIL import Image

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 1] = 1
    for case in ("case_a", "case_b"):
        Image.fromarray(mask).save(gt / f"{case}.png")
    Image.fromarray(mask).save(pred / "case_a.png")  # case_b was never predicted
    return pred, gt


def test_a_missing_prediction_is_an_error_naming_the_case_in_the_demo_and_the_benchmark(tmp_path):
    """Never silently dropped from the mean: the demo's table and the benchmark's scores share the rule."""
    from nnunetv2_tevia.demo.report import dice_table
    from nnunetv2_tevia.errors import MissingPredictionError

    pred, gt = _two_cases(tmp_path)
    with pytest.raises(MissingPredictionError, match="case_b"):
        dice_table(str(pred), str(gt), ".png")
    _benchmark_modules()  # puts benchmarks/ on sys.path
    import bench_scoring

    dataset_json = {"labels": {"background": 0, "lesion": 1}, "file_ending": ".png"}
    with pytest.raises(MissingPredictionError, match="case_b"):
        bench_scoring.score_folder(str(pred), str(gt), ["case_a", "case_b"], dataset_json)


def test_other_case_reports_are_a_deterministic_derangement(tmp_path):
    from nnunetv2_tevia.prompts.prompt_file import PromptFile, load_prompts, save_prompts

    run_benchmark, _ = _benchmark_modules()
    ids = [f"case_{i}" for i in range(7)]
    own = save_prompts(PromptFile(path=str(tmp_path / "own.json"), cases={k: f"report of {k}" for k in ids + ["tr"]}))
    first = load_prompts(run_benchmark.other_case_prompts(str(tmp_path / "a"), own, ids)).cases
    assert sorted(first) == ids and sorted(first.values()) == sorted(f"report of {k}" for k in ids)
    assert all(first[k] != f"report of {k}" for k in ids)
    assert load_prompts(run_benchmark.other_case_prompts(str(tmp_path / "b"), own, list(reversed(ids)))).cases == first
    from nnunetv2_tevia.errors import TeViAError

    with pytest.raises(TeViAError, match="two test cases"):
        run_benchmark.other_case_prompts(str(tmp_path / "c"), own, ids[:1])


def test_extra_reports_argument(tmp_path):
    from nnunetv2_tevia.errors import TeViAError

    run_benchmark, _ = _benchmark_modules()
    f = tmp_path / "radiology.json"
    f.write_text("{}")
    (v,) = run_benchmark.extra_report_variants([f"radiology style={f}"])
    assert v.row == " (radiology style)" and v.key == "extra_radiology_style" and v.prompts == str(f)
    for bad in ("no-equals-sign", f"={f}", "x=" + str(tmp_path / "missing.json")):
        with pytest.raises(TeViAError):
            run_benchmark.extra_report_variants([bad])
    with pytest.raises(TeViAError, match="twice"):
        run_benchmark.extra_report_variants([f"a b={f}", f"a-b={f}"])
