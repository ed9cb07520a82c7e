"""benchmarks/overhead.py: the ratio bookkeeping on made-up runs, the token counts, and (slow) one real run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_tevia.model.token_counts import guided_stage_shapes, guided_stage_token_counts

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import overhead  # noqa: E402
from test_demo_cli import unactivated_env  # noqa: E402  (tests/ is on sys.path)


def test_token_counts_of_a_default_3d_plan():
    # nnU-Net's 3d_fullres for a 128^3 patch: six stages, strides 1 then 2 x5 -> bottleneck 4^3
    strides = [[1, 1, 1]] + [[2, 2, 2]] * 5
    # default design: outputs of decoder stages 0-2; reference: their inputs, one level coarser
    assert guided_stage_shapes([128, 128, 128], strides, 3) == [[8, 8, 8], [16, 16, 16], [32, 32, 32]]
    assert guided_stage_token_counts([128, 128, 128], strides, 3) == [512, 4096, 32768]
    assert guided_stage_shapes([128, 128, 128], strides, 3, on_outputs=False) == [[4, 4, 4], [8, 8, 8], [16, 16, 16]]
    assert guided_stage_token_counts([128, 128, 128], strides, 3, on_outputs=False) == [64, 512, 4096]


def test_token_counts_anisotropic_and_capped():
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    # 3 decoder stages exist, so asking for 5 guided stages gives 3
    assert guided_stage_shapes([20, 160, 160], strides, 5, on_outputs=False) == [[5, 20, 20], [10, 40, 40],
                                                                                 [20, 80, 80]]
    assert guided_stage_shapes([20, 160, 160], strides, 5) == [[10, 40, 40], [20, 80, 80], [20, 160, 160]]
    # non-divisible sizes round up, as the convolutions' padding does
    assert guided_stage_token_counts([10, 10], [1, 2, 2], 1, on_outputs=False) == [9]
    assert guided_stage_token_counts([10, 10], [1, 2, 2], 1) == [25]


def _run(setup, trainer, rnd, step, rss, inference):
    return {"setup": setup, "trainer": trainer, "round": rnd, "seconds_per_step": step, "peak_rss_mib": rss,
            "rss_after_init_mib": rss - 10, "forward_share_of_step": 0.3, "guidance_share_of_forward": 0.05,
            "peak_gpu_allocated_mib": None, "inference_seconds_per_case": inference, "batch_size": 2,
            "patch_size": [64, 64]}


def test_ratios_are_taken_within_rounds():
    # round 1 ran on a machine twice as slow: per-round ratios stay 1.1 and 1.3 whatever the load
    runs = [_run("2d", "nnUNetTrainer", 0, 1.0, 1000, 0.5), _run("2d", "nnUNetTrainerTeViA", 0, 1.1, 1100, 0.6),
            _run("2d", "nnUNetTrainer", 1, 2.0, 1000, 1.0), _run("2d", "nnUNetTrainerTeViA", 1, 2.6, 1200, 1.1)]
    s = overhead.summarise(runs, ["nnUNetTrainer", "nnUNetTrainerTeViA"])["2d"]
    assert s["rounds"] == 2
    tevia = s["trainers"]["nnUNetTrainerTeViA"]
    assert tevia["seconds_per_step"] == pytest.approx(1.85)
    assert tevia["ratios"]["seconds_per_step"] == pytest.approx({"median": 1.2, "min": 1.1, "max": 1.3})
    assert tevia["ratios"]["peak_rss_mib"] == pytest.approx({"median": 1.15, "min": 1.1, "max": 1.2})
    assert tevia["ratios"]["inference_seconds_per_case"]["max"] == pytest.approx(1.2)
    assert "peak_gpu_allocated_mib" not in tevia["ratios"]  # CPU runs have no GPU memory
    assert "ratios" not in s["trainers"]["nnUNetTrainer"]
    table = overhead.markdown(overhead.summarise(runs, ["nnUNetTrainer", "nnUNetTrainerTeViA"]), {"cpu": "x"}, "cpu")
    assert "| 2d | `nnUNetTrainerTeViA` | 2 x 64x64 | 1.850 | 1.20 (1.10-1.30) |" in table


def test_a_round_missing_its_baseline_gives_no_ratio():
    runs = [_run("2d", "nnUNetTrainerTeViA", 0, 1.1, 1100, 0.6)]
    s = overhead.summarise(runs, ["nnUNetTrainer", "nnUNetTrainerTeViA"])["2d"]
    assert s["trainers"]["nnUNetTrainerTeViA"]["ratios"] == {}


@pytest.mark.slow
def test_overhead_script_end_to_end(tmp_path):
    """A real, tiny run: synthetic data, planning, saved batches, one round per trainer in subprocesses."""
    out = tmp_path / "ovh"
    cmd = [sys.executable, str(BENCHMARKS / "overhead.py"), "-o", str(out), "--setups", "2d", "--size-2d", "64",
           "--cases-2d", "12", "--rounds", "1", "--warmup-rounds", "0", "--steps", "1", "--warmup-steps", "1",
           "--cases-inference", "1", "--batches", "2"]
    env = dict(unactivated_env(), nnUNet_def_n_proc="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "overhead.json").read_text())
    row = report["summary"]["2d"]["trainers"]["nnUNetTrainerTeViA"]
    assert row["seconds_per_step"] > 0 and row["inference_seconds_per_case"] > 0
    assert row["ratios"]["seconds_per_step"]["median"] > 0
    assert row["guided_stage_tokens"] and 0 < row["guidance_share_of_forward"] < 1
    # the guided network does strictly more arithmetic than the plain one, but not several times more
    assert 1 < row["forward_flops"]["flop_ratio"] < 2
    # both trainers trained on the very same saved batches
    assert {r["trainer"] for r in report["runs"]} == {"nnUNetTrainer", "nnUNetTrainerTeViA"}
    assert "nnUNetTrainerTeViA" in (out / "overhead.md").read_text()

    # --flops-only on the same folder: nothing is planned again, one row per setup
    proc = subprocess.run(cmd[:4] + ["--setups", "2d", "--size-2d", "64", "--cases-2d", "12", "--flops-only"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "plan_and_preprocess" not in proc.stdout
    rows = [l for l in (out / "flops.md").read_text().splitlines() if l.startswith("| 2d |")]
    assert len(rows) == 1 and "64x64" in rows[0]
