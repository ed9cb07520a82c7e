"""benchmarks/gpu_long_schedule.py on the CPU at a tiny budget: the parallel trainings, a snapshot every epoch, every
snapshot scored with both Dice conventions, the curve files, and a second call that trains and predicts nothing.
The script is meant for a GPU (docs/benchmarks.md); this is the check that it runs before a GPU is spent on it."""
import json
import shutil
import sys

import pytest

from nnunetv2_tevia.demo.generator import generate_demo_dataset
from test_benchmark_e2e import SCRIPT, _env, _run  # tests/ is on sys.path (pytest rootdir import mode)

LONG = SCRIPT.parent / "gpu_long_schedule.py"
DATASET = 932


@pytest.mark.slow
def test_long_schedule_trains_snapshots_and_scores_the_curve(tmp_path):
    env = _env(tmp_path)
    for k in ("raw", "pre", "res"):
        (tmp_path / k).mkdir()
    generate_demo_dataset(str(tmp_path / "raw"), DATASET, num_train=8, num_test=3, size=32)
    _run([shutil.which("nnUNetv2_tevia_plan_and_preprocess", path=env["PATH"]), "-d", DATASET, "-c", "2d", "-np", "1"],
         env)
    out = tmp_path / "out"
    args = [sys.executable, LONG, "-d", DATASET, "-o", out, "--trainers", "nnUNetTrainer", "nnUNetTrainerTeViA",
            "--epochs", "2", "--iterations", "2", "--snapshot-every", "1", "-device", "cpu"]
    _run(args, env)

    curve = json.loads((out / "curve.json").read_text())
    assert set(curve["curves"]) == {"nnUNetTrainer", "nnUNetTrainerTeViA"}
    for trainer, points in curve["curves"].items():
        assert sorted(points, key=int) == ["2", "4"], trainer  # a snapshot after each epoch of 2 steps
        for p in points.values():
            assert 0 <= p["per_case_dice"] <= 1 and 0 <= p["pooled_dice"] <= 1 and p["n_cases"] == 3
    assert "| 4 |" in (out / "curve.md").read_text() and (out / "curve.png").is_file()
    rows = {r["base_trainer"] for r in json.loads((out / "results.json").read_text())["runs"]}
    assert rows == {"nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA (no report)"}

    again = _run(args, env)
    logs = "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    # trained as <trainer>_gpuShortBudget2x2: the budget is in the name; the second call trained nothing
    assert logs.count("training nnUNetTrainerTeViA_gpuShortBudget2x2 ") == 1
    snapshots = (out / "models" / "seed_0").glob("*/nnUNetTrainer_gpuShortBudget2x2__*/fold_*/checkpoint_step4.pth")
    assert len(list(snapshots)) == 1
    assert " steps: per-case Dice" not in again.stdout  # and scored no snapshot again


@pytest.mark.parametrize("device,parallel,expected_max", [("cpu", None, 1), ("cuda", None, 3), ("cpu", 2, 2)])
def test_trainings_run_parallel_on_cuda_and_one_at_a_time_on_cpu(tmp_path, monkeypatch, device, parallel,
                                                                   expected_max):
    import argparse

    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_long_schedule

    state = {"running": 0, "max": 0, "order": []}

    class FakeProcess:
        def __init__(self, cmd, env, stdout, stderr):
            state["running"] += 1
            state["max"] = max(state["max"], state["running"])
            state["order"].append(cmd[cmd.index("--trainers") + 1])
            state["budget"] = cmd[cmd.index("--budget"):cmd.index("--iterations") + 2]
            self.n_proc_da = env["nnUNet_n_proc_DA"]

        def wait(self):
            state["running"] -= 1
            return 0

    monkeypatch.setattr(gpu_long_schedule.subprocess, "Popen", FakeProcess)
    trainers = ["nnUNetTrainer", "nnUNetTrainerTeViA", "nnUNetTrainerTeViA_noText"]
    args = argparse.Namespace(d="1", o=str(tmp_path), c="2d", p="nnUNetPlans", device=device, trainers=trainers,
                              epochs=2, iterations=3,
                              parallel=parallel if parallel is not None else
                              gpu_long_schedule.default_parallel(device, len(trainers)))
    gpu_long_schedule.train_all(args, {})
    assert state["max"] == expected_max and state["order"] == trainers and state["running"] == 0
    assert state["budget"] == ["--budget", "gpuShort", "--epochs", "2", "--iterations", "3"]
