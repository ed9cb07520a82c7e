"""benchmarks/run_benchmark.py end to end on tiny synthetic data: split, train, predict, score, no-report rows,
a second call that finds everything done, and --report-only writing only what is scored.

Two trainers of 2 steps each on the demo generator's 32 x 32 images; slow (about 2-3 min on a 2-core CPU).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_tevia.demo.generator import generate_demo_dataset

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "run_benchmark.py"
DATASET = 931
TIMEOUT = 900


def _env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NNUNETV2_TEVIA_ALLOW_NO_REPORT"}
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"), nnUNet_results=str(root / "res"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", nnUNet_compile="false", nnUNet_def_n_proc="1",
               OMP_NUM_THREADS="1", MPLBACKEND="agg", TEVIA_BENCH_EPOCHS="1", TEVIA_BENCH_ITERS="2",
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
    args = [sys.executable, SCRIPT, "-d", DATASET, "-o", out, "--trainers", "nnUNetTrainer", "nnUNetTrainerTeViA",
            "--val-cases", "2", "--no-report", "-device", "cpu"]
    first = _run(args, env)
    return root, env, out, args, first


def test_trains_predicts_and_scores_every_run(bench):
    root, env, out, args, first = bench
    results = json.loads((out / "results.json").read_text())
    rows = {r["base_trainer"]: r for r in results["runs"]}
    assert set(rows) == {"nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA (no report)"}
    for name, row in rows.items():
        scores = row["scores"]["mean_over_labels"]
        assert 0.0 <= scores["per_case_dice"] <= 1.0 and 0.0 <= scores["pooled_dice"] <= 1.0, name
    for name in ("nnUNetTrainer", "nnUNetTrainerTeViA"):
        assert rows[name]["timing"]["epochs"] == 1 and rows[name]["timing"]["iterations_per_epoch"] == 2
        preds = list((out / "runs" / "seed_0" / f"{name}_cpuBudget" / "predictions").glob("*.png"))
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
    report_only = [sys.executable, SCRIPT, "-d", DATASET, "-o", out, "--trainers", "all", "--seeds", "0", "1",
                   "--val-cases", "2", "--no-report", "-device", "cpu", "--report-only"]
    p = _run(report_only, env)
    assert not _started(p.stdout, "training") and not _started(p.stdout, "predicting")
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert sorted((r["base_trainer"], r["seed"]) for r in rows) == [
        ("nnUNetTrainer", 0), ("nnUNetTrainerTeViA", 0), ("nnUNetTrainerTeViA (no report)", 0)]
    assert not (out / "models" / "seed_1").exists()
