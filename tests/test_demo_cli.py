"""The README's main job, ``nnUNetv2_tevia_demo``, end to end at a tiny budget: every step runs, the summary
has the numbers the docs promise, and a second call resumes instead of redoing the work."""
import json
import os
import shutil
import subprocess
import sys

import pytest



def _demo_command() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "nnUNetv2_tevia_demo")
    return beside if os.path.isfile(beside) else shutil.which("nnUNetv2_tevia_demo")


def unactivated_env() -> dict:
    """os.environ as CI has it: this virtual environment's scripts folder is not on PATH (not activated)."""
    from nnunetv2_tevia.cli.tool_path import scripts_dir
    here = os.path.abspath(scripts_dir())
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != here]
    return dict(os.environ, PATH=os.pathsep.join(path))


@pytest.mark.parametrize("activated", [False, True])
def test_tool_env_puts_this_environments_scripts_first(activated):
    from nnunetv2_tevia.cli.tool_path import scripts_dir, tool_env
    base = dict(os.environ) if activated else unactivated_env()
    env = tool_env(base, nnUNet_raw="/x")
    parts = env["PATH"].split(os.pathsep)
    assert parts[0] == scripts_dir() and parts.count(scripts_dir()) == 1 and env["nnUNet_raw"] == "/x"
    assert shutil.which("nnUNetv2_train", path=env["PATH"]).startswith(scripts_dir())


@pytest.mark.slow
def test_demo_runs_every_step_and_resumes(tmp_path):
    env = {k: v for k, v in unactivated_env().items() if not k.startswith("nnUNet_")}
    env.update(HF_HUB_OFFLINE="1", MPLBACKEND="agg", OMP_NUM_THREADS="1")
    cmd = [_demo_command(), "-o", str(tmp_path / "demo"), "--num-train", "10", "--num-test", "2", "--epochs", "1",
           "--iterations", "2", "-device", "cpu"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    summary_path = first.stdout.strip().splitlines()[-1]
    assert summary_path == str(tmp_path / "demo" / "demo_summary.json")
    summary = json.load(open(summary_path))
    tevia = summary["nnUNetTrainerTeViA_demoBudget"]
    for key in ("dice", "dice_with_swapped_reports_vs_swapped_truth", "dice_with_swapped_reports_vs_original_truth"):
        assert 0.0 <= tevia[key] <= 1.0, key
    assert 0.0 <= summary["nnUNetTrainer_demoBudget"]["dice"] <= 1.0
    assert summary["budget"]["epochs"] == 1 and summary["budget"]["iterations_per_epoch"] == 2
    assert summary["budget"]["num_train"] == 10 and summary["budget"]["batch_size"] > 0
    for folder in ("tevia", "nnunet", "tevia_swapped"):
        assert len(list((tmp_path / "demo" / "overlays" / folder).glob("*.png"))) == 2
    assert "reports swapped to the distractors" in first.stdout

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for step in ("dataset", "preprocessed data and text cache exist", "nnUNetTrainerTeViA_demoBudget is trained",
                 "nnUNetTrainer_demoBudget is trained"):
        assert step in second.stdout, step
    assert "$ nnUNetv2_train" not in second.stdout
