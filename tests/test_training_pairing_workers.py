"""Each training sample's text stays its own case's report when nnU-Net's data-augmentation workers build the
batches in other processes (``nnUNet_n_proc_DA=2``), and the final validation predicts each case with its own report.

The test trainer ``nnUNetTrainerTeViA_pairingCheck`` (tests/tevia_test_trainers.py) checks every sample and every
forward against the text cache; this test runs it on the tiny 2D demo (6 training cases, its "2d" word map, so
flipped samples read their flipped reports), with reports made distinct so that a swap of two cases would show.
"""
import json
import os
import subprocess

import pytest

from test_mirror_text_training import _script
from tiny_text_models import make_tiny_bert

pytestmark = pytest.mark.slow  # planning, preprocessing and a training with worker processes: about a minute

DS, NAME = 908, "Dataset908_TeViADemo"
TRAINER = "nnUNetTrainerTeViA_pairingCheck"
NUMBERS = ("one", "two", "three", "four", "five", "six")  # words of the tiny encoder's vocabulary


def _run(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_every_sample_keeps_its_own_report_with_augmentation_workers(tmp_path):
    from nnunetv2_tevia.demo.generator import generate_demo_dataset
    from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, load_prompts, save_prompts

    env = dict(os.environ)
    env.update(nnUNet_raw=str(tmp_path / "raw"), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "res"), nnUNet_compile="false", nnUNet_def_n_proc="1",
               OMP_NUM_THREADS="1", MPLBACKEND="agg")
    for k in ("raw", "pre", "res"):
        (tmp_path / k).mkdir()
    folder = generate_demo_dataset(str(tmp_path / "raw"), DS, num_train=6, num_test=1)
    pf = load_prompts(os.path.join(folder, PROMPTS_FILENAME))
    assert pf.mirror is not None  # the demo's word map: training flips reports with their images
    train = sorted(k for k in pf.cases if k.startswith("train"))
    pf.cases.update({k: f"{word} {pf.cases[k]}" for k, word in zip(train, NUMBERS)})  # no two cases alike
    save_prompts(pf)
    bert = make_tiny_bert(tmp_path / "bert", seed=0)
    _run([_script("nnUNetv2_tevia_plan_and_preprocess"), "-d", str(DS), "-c", "2d", "-np", "1", "-npfp", "1",
          "-e", f"hf:{bert}"], env)
    _run([_script("nnUNetv2_train"), str(DS), "2d", "0", "-tr", TRAINER, "-device", "cpu"],
         dict(env, nnUNet_n_proc_DA="2"))

    model = tmp_path / "res" / NAME / f"{TRAINER}__nnUNetPlans__2d"
    checks = json.loads((model / "fold_0" / "pairing_checks.json").read_text())
    assert checks["train_samples"] >= 3 and checks["flipped_train_samples"] > 0
    assert checks["validation_samples"] >= 2
    val = json.loads((tmp_path / "pre" / NAME / "splits_final.json").read_text())[0]["val"]
    assert sorted(checks["final_validation"]) == sorted(val)  # every validation case, each with its own report
    assert all(n >= 4 for n in checks["final_validation"].values())  # the case, then its 3 mirrored copies
