"""benchmarks/run_benchmark.py end to end on tiny synthetic data: split, train, predict, score, the no-report, other
case's report, --extra-reports and --held-out rows, a second call that finds everything done, --report-only writing only what is
scored, another budget planned as other trainers (never reusing these models), a model folder recorded with other
arguments that stops the call, a kill -9 during prediction, and a retrain that drops old results.

Two trainers of 2 steps each (``<Trainer>_cpuBudget1x2``) on the demo generator's 32 x 32 images; slow (about 2-3 min
on a 2-core CPU).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnunetv2_tevia.demo.generator import generate_demo_dataset
from nnunetv2_tevia.prompts.prompt_file import PromptFile, load_prompts, save_prompts

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "run_benchmark.py"
DATASET = 931
TIMEOUT = 900
BUDGET = ["--epochs", "1", "--iterations", "2"]
TEVIA = "nnUNetTrainerTeViA_cpuBudget1x2"


def _env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NNUNETV2_TEVIA_ALLOW_NO_REPORT", "TEVIA_BENCH_EPOCHS", "TEVIA_BENCH_ITERS")}
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"), nnUNet_results=str(root / "res"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", nnUNet_compile="false", nnUNet_def_n_proc="1",
               OMP_NUM_THREADS="1", MPLBACKEND="agg",
               # the commands the script runs live beside this interpreter
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return env


def _started(stdout: str, what: str) -> bool:
    """The script announces each training / prediction it starts on a line of its own."""
    return any(line.startswith(what + " ") for line in stdout.splitlines())


def _run(cmd, env, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited with {p.returncode}\n--- stdout\n{p.stdout[-4000:]}"
                             f"\n--- stderr\n{p.stderr[-4000:]}")
    return p


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_e2e")
    env = _env(root)
    for k in ("raw", "pre", "res"):
        (root / k).mkdir()
    generate_demo_dataset(str(root / "raw"), DATASET, num_train=8, num_test=3, size=32)
    tool = shutil.which("nnUNetv2_tevia_plan_and_preprocess", path=env["PATH"])
    _run([tool, "-d", DATASET, "-c", "2d", "-np", "1"], env)
    out = root / "out"
    # an alternative report file in the project's prompt format: each test report in another wording
    pf = load_prompts(str(root / "raw" / f"Dataset{DATASET}_TeViADemo" / "tevia_prompts.json"))
    stub = save_prompts(PromptFile(path=str(root / "stub_prompts.json"), classes=pf.classes, mirror=pf.mirror,
                                   cases={k: "Findings: " + v for k, v in pf.cases.items() if k.startswith("test_")}))
    args = [sys.executable, SCRIPT, "-d", DATASET, "-o", out, *BUDGET, "--trainers", "nnUNetTrainer",
            "nnUNetTrainerTeViA", "--val-cases", "2", "--no-report", "--other-case-report",
            "--extra-reports", f"stub wording={stub}", "--held-out", "-device", "cpu"]
    first = _run(args, env)
    return root, env, out, args, first


def test_trains_predicts_and_scores_every_run(bench):
    root, env, out, args, first = bench
    results = json.loads((out / "results.json").read_text())
    rows = {r["base_trainer"]: r for r in results["runs"]}
    assert set(rows) == {"nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA (no report)",
                         "nnUNetTrainerTeViA (another case's report)", "nnUNetTrainerTeViA (stub wording)",
                         "nnUNetTrainer (held-out training cases)", "nnUNetTrainerTeViA (held-out training cases)"}
    for name, row in rows.items():
        scores = row["scores"]["mean_over_labels"]
        assert 0.0 <= scores["per_case_dice"] <= 1.0 and 0.0 <= scores["pooled_dice"] <= 1.0, name
        # every row names its model folder, the arguments that trained it and the prediction it scores
        assert row["model_folder"] == rows[name.split(" (")[0]]["model_folder"]
        assert row["made_by"]["model"]["arguments"]["seed"] == 0 and row["made_by"]["model"]["code"], name
        assert row["made_by"]["prediction"]["inputs"]["model"] == row["made_by"]["model"]["id"], name
    stub_row = rows["nnUNetTrainerTeViA (stub wording)"]["made_by"]["prediction"]["arguments"]
    assert stub_row["prompts"].endswith("stub_prompts.json")
    other = json.loads(Path(rows["nnUNetTrainerTeViA (another case's report)"]["made_by"]["prediction"]["arguments"]
                            ["prompts"]).read_text())["cases"]
    own = json.loads((root / "raw" / f"Dataset{DATASET}_TeViADemo" / "tevia_prompts.json").read_text())["cases"]
    test_ids = sorted(k for k in own if k.startswith("test_"))
    assert sorted(other) == test_ids and sorted(other.values()) == sorted(own[k] for k in test_ids)
    for k in test_ids:  # each case predicted with another test case's report
        assert other[k] in [own[j] for j in test_ids if j != k]
    assert "| nnUNetTrainerTeViA (stub wording) |" in (out / "results.md").read_text()
    # --held-out: every model (plain nnU-Net too) predicts the fold's held-out training cases, scored on labelsTr
    splits = json.loads((root / "pre" / f"Dataset{DATASET}_TeViADemo" / "splits_final.json").read_text())
    held_out = sorted(splits[results["config"]["fold"]]["val"])
    for name in ("nnUNetTrainer", "nnUNetTrainerTeViA"):
        row = rows[f"{name} (held-out training cases)"]
        assert row["scores"]["mean_over_labels"]["n_cases"] == 2
        folder = out / "runs" / "seed_0" / f"{name}_cpuBudget1x2" / "predictions_held_out"
        assert sorted(p.name[:-len(".png")] for p in folder.glob("*.png")) == held_out
        scores = json.loads((folder.parent / "scores_held_out.json").read_text())
        assert sorted(next(iter(scores["labels"].values()))["cases"]) == held_out
    assert rows["nnUNetTrainer (held-out training cases)"]["made_by"]["prediction"]["arguments"]["prompts"] is None
    assert rows["nnUNetTrainerTeViA (held-out training cases)"]["made_by"]["prediction"]["arguments"][
        "prompts"].endswith("tevia_prompts.json")  # each training case's own report
    assert "Made by: " in (out / "results.md").read_text()  # the code version(s) that trained the models
    for name in ("nnUNetTrainer", "nnUNetTrainerTeViA"):
        assert rows[name]["timing"]["epochs"] == 1 and rows[name]["timing"]["iterations_per_epoch"] == 2
        preds = list((out / "runs" / "seed_0" / f"{name}_cpuBudget1x2" / "predictions").glob("*.png"))
        assert len(preds) == 3
    assert results["config"]["n_val"] == 2 and results["config"]["n_test"] == 3
    splits = json.loads((root / "pre" / f"Dataset{DATASET}_TeViADemo" / "splits_final.json").read_text())
    assert len(splits[results["config"]["fold"]]["val"]) == 2  # the benchmark fold, after nnU-Net's five
    assert "| nnUNetTrainerTeViA |" in (out / "results.md").read_text() and (out / "results.png").is_file()


def test_second_call_finds_everything_done(bench):
    root, env, out, args, first = bench
    again = _run(args, env)
    assert _started(first.stdout, "training") and _started(first.stdout, "predicting")
    assert not _started(again.stdout, "training") and not _started(again.stdout, "predicting")


def test_report_only_lists_the_scored_runs_and_trains_nothing(bench):
    root, env, out, args, first = bench
    report_only = [sys.executable, SCRIPT, "-d", DATASET, "-o", out, *BUDGET, "--trainers", "all", "--seeds", "0",
                   "1",
                   "--val-cases", "2", "--no-report", "-device", "cpu", "--report-only"]
    p = _run(report_only, env)
    assert not _started(p.stdout, "training") and not _started(p.stdout, "predicting")
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert sorted((r["base_trainer"], r["seed"]) for r in rows) == [
        ("nnUNetTrainer", 0), ("nnUNetTrainerTeViA", 0), ("nnUNetTrainerTeViA (no report)", 0)]
    assert not (out / "models" / "seed_1").exists()


def test_another_budget_is_another_trainer(bench):
    """The budget is part of the trainer's name: another --epochs plans other trainers in other model folders, never
    these models; TEVIA_BENCH_EPOCHS / TEVIA_BENCH_ITERS, the older spelling of the options, name the same ones."""
    root, env, out, args, first = bench
    other = _run(args + ["--epochs", "2", "--dry-run"], env)
    assert "-tr nnUNetTrainerTeViA_cpuBudget2x2 " in other.stdout and "# done:" not in other.stdout
    assert "# stops:" not in other.stdout and "2 epochs x 2 iterations" in other.stdout
    at = args.index("--epochs")
    plain_args = args[:at] + args[at + len(BUDGET):]
    same = _run(plain_args + ["--dry-run"], dict(env, TEVIA_BENCH_EPOCHS="1", TEVIA_BENCH_ITERS="2"))
    assert f"# done: nnUNet_results={out / 'models' / 'seed_0'} nnUNetv2_train" in same.stdout, same.stdout
    assert f"-tr {TEVIA} " in same.stdout and "# stops:" not in same.stdout


def test_a_model_recorded_with_other_arguments_stops_the_call(bench):
    """A model folder whose record names other arguments (e.g. written by an earlier version, when an environment
    variable set the budget) stops the call with the argument named; nothing is trained, predicted or scored."""
    root, env, out, args, first = bench
    (record,) = (out / "models" / "seed_0").glob(f"*/{TEVIA}__*/fold_*/made_by.json")
    original = record.read_text()
    made_by = json.loads(original)
    made_by["arguments"]["budget"] = made_by["arguments"]["budget"].replace("1 epochs", "7 epochs")
    record.write_text(json.dumps(made_by))
    try:
        p = _run(args, env, check=False)
    finally:
        record.write_text(original)
    assert p.returncode == 2 and "error:" in p.stderr and "budget" in p.stderr, p.stderr[-2000:]
    assert "7 epochs" in p.stderr and "1 epochs" in p.stderr  # the recorded value next to this call's
    assert not _started(p.stdout, "training") and not _started(p.stdout, "predicting")


def _tevia_run(out) -> Path:
    return out / "runs" / "seed_0" / TEVIA


def test_killed_during_prediction_resumes_to_the_same_scores(bench):
    """kill -9 of the benchmark's process group while nnU-Net writes a TeViA model's predictions; the file it was
    writing is left half written. The rerun must not score it: its scores equal the uninterrupted run's."""
    root, env, out, args, first = bench
    run = _tevia_run(out)
    before = json.loads((run / "scores.json").read_text())
    shutil.rmtree(run / "predictions")
    (run / "scores.json").unlink()
    log = open(root / "killed.log", "w")
    proc = subprocess.Popen([str(c) for c in args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    folder, deadline = run / "predictions", time.time() + TIMEOUT
    while proc.poll() is None and time.time() < deadline:
        if folder.is_dir() and len(list(folder.glob("test_*.png"))) >= 3:  # the last case's file has appeared
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    assert proc.wait() == -signal.SIGKILL, (root / "killed.log").read_text()[-3000:]
    record = folder / "made_by.json"
    if not (record.is_file() and json.loads(record.read_text()).get("complete")):
        newest = max(folder.glob("test_*.png"), key=os.path.getmtime)
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    again = _run(args, env)
    assert not _started(again.stdout, "training")
    after = json.loads((run / "scores.json").read_text())
    assert after["labels"] == before["labels"] and after["mean_over_labels"] == before["mean_over_labels"]


def test_a_retrain_removes_the_old_predictions_and_scores(bench):
    root, env, out, args, first = bench
    run = _tevia_run(out)
    model = out / "models" / "seed_0" / f"Dataset{DATASET}_TeViADemo"
    (final,) = model.glob(f"{TEVIA}__*/fold_*/checkpoint_final.pth")
    old_scores = json.loads((run / "scores.json").read_text())
    (run / "predictions" / "stale_marker.png").write_bytes(b"")  # would survive if the folder were kept
    shutil.rmtree(final.parent)  # the user removes the model to train it again
    again = _run(args, env)
    assert _started(again.stdout, "training") and _started(again.stdout, "predicting")
    assert not (run / "predictions" / "stale_marker.png").exists()
    scores = json.loads((run / "scores.json").read_text())
    record = json.loads((run / "predictions" / "made_by.json").read_text())
    assert scores["made_by"]["prediction"] == record["id"] != old_scores.get("made_by", {}).get("prediction")
    for key in ("predictions_no_report", "predictions_other_case_report", "predictions_extra_stub_wording"):
        assert json.loads((run / key / "made_by.json").read_text())["inputs"]["model"] == record["inputs"]["model"]
