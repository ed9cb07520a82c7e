"""``nnUNetv2_tevia_predict`` run as a user runs it, on a tiny untrained model (tiny_tevia_model.py), in-process:
prediction never writes into a training cache, --continue_prediction re-predicts a case whose report changed, a
prompt file of another dataset is refused, and broken input is one ``error:`` line (docs/troubleshooting.md).
"""
import json
import os
import shutil
import sys

import numpy as np
import pytest
from tiny_text_models import make_tiny_bert
from tiny_tevia_model import TOKENS, make_workspace, write_png_cases

from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts

TRAIN = {"tr_a": "one infected area, lower left lung.", "tr_b": "two infected areas, upper right lung.",
         "tr_c": "no finding."}
TEST = {"ts_a": "bilateral pulmonary infection, lower left and lower right lung.",
        "ts_b": "unilateral pulmonary infection, upper left lung.",
        "ts_c": "one infected area, middle right lung."}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    bert = make_tiny_bert(root / "tiny-bert")
    ws = make_workspace(root, bert, train=TRAIN, test=TEST)
    save_prompts(PromptFile(path=None, cases=dict(TRAIN)), ws["raw"] / "tevia_prompts.json")
    return ws


@pytest.fixture
def run_predict(ws, monkeypatch, capsys):
    """nnUNetv2_tevia_predict in this process: (exit status, stdout, stderr)."""
    from nnunetv2_tevia.cli.predict import predict_entry

    for k, v in ws["env"].items():
        monkeypatch.setenv(k, v)

    def run(*args, inputs=None):
        argv = ["nnUNetv2_tevia_predict", "-i", str(inputs or ws["raw"] / "imagesTs"), "-d", ws["dataset"], "-c",
                "2d", "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0", "--disable_progress_bar",
                *map(str, args)]
        monkeypatch.setattr(sys, "argv", argv)
        capsys.readouterr()
        try:
            predict_entry()
            rc = 0
        except SystemExit as e:
            rc = e.code
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def reports(tmp_path, cases, name="reports.json", **extra) -> str:
    path = tmp_path / name
    save_prompts(PromptFile(path=None, cases=dict(cases), **extra), path)
    return str(path)


def tree(folder) -> dict:
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files}


def one_error(rc, err, *needles) -> str:
    assert rc == 2 and "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    for needle in needles:
        assert str(needle) in line, f"{needle!r} not in {line!r}"
    return line


# ------------------------------------------------------------------------------------------- the text cache
def test_prediction_never_writes_into_a_training_cache(ws, run_predict, tmp_path, monkeypatch):
    from nnunetv2_tevia.cli.prompts_cli import prompts_entry
    from nnunetv2_tevia.text.cache import load_active_cache

    for k, v in ws["env"].items():
        monkeypatch.setenv(k, v)
    prompts_entry(["embed", "-d", ws["dataset"], "-e", ws["encoder"], "--max-tokens", str(TOKENS), "--no-progress"])
    root = ws["pre"] / "tevia_text_cache"
    before = tree(root)
    # the test reports are not in the training cache: they must be embedded somewhere else
    rc, out, err = run_predict("-o", tmp_path / "pred", "--prompts", reports(tmp_path, TEST), "--text-cache", root)
    assert rc == 0, err
    assert sorted(f for f in os.listdir(tmp_path / "pred") if f.endswith(".png")) == [f"{k}.png" for k in TEST]
    assert tree(root) == before, "prediction changed the training cache"
    assert str(root) in out and "read-only" in out
    cache = load_active_cache(ws["dataset"])
    assert cache.case_ids == sorted(TRAIN) and cache.manifest["prompt_file"] == str(ws["raw"] / "tevia_prompts.json")

    # a cache that holds every text is read as it is, and still not written
    rc, out, err = run_predict("-o", tmp_path / "pred_tr", "--prompts", ws["raw"] / "tevia_prompts.json",
                               "--text-cache", root, inputs=ws["raw"] / "imagesTr")
    assert rc == 0, err
    assert tree(root) == before


def test_continue_prediction_repredicts_a_case_whose_report_changed(ws, run_predict, tmp_path):
    out_dir = tmp_path / "pred"
    first = dict(TEST)
    rc, _, err = run_predict("-o", out_dir, "--prompts", reports(tmp_path, first), "--save_probabilities")
    assert rc == 0, err
    probabilities = {k: np.load(out_dir / f"{k}.npz")["probabilities"] for k in TEST}
    old = 10 ** 9  # an mtime in 2001: whatever is written again gets a new one
    for f in out_dir.iterdir():
        if f.is_file():
            os.utime(f, ns=(old, old))

    changed = dict(first, ts_b="no finding.")
    rc, out, err = run_predict("-o", out_dir, "--prompts", reports(tmp_path, changed, "changed.json"),
                               "--save_probabilities", "--continue_prediction")
    assert rc == 0, err
    rewritten = {k for k in TEST if (out_dir / f"{k}.png").stat().st_mtime_ns != old}
    assert rewritten == {"ts_b"}, out
    assert np.abs(np.load(out_dir / "ts_b.npz")["probabilities"] - probabilities["ts_b"]).max() > 1e-4

    # nothing changed: nothing is predicted again
    rc, out, err = run_predict("-o", out_dir, "--prompts", reports(tmp_path, changed, "changed.json"),
                               "--save_probabilities", "--continue_prediction")
    assert rc == 0, err
    assert {k for k in TEST if (out_dir / f"{k}.png").stat().st_mtime_ns != old} == {"ts_b"}


def test_prompt_file_of_another_dataset_is_refused(ws, run_predict, tmp_path):
    other = reports(tmp_path, {"covid_1": "one infected area.", "covid_2": "no finding."}, "other.json",
                    default="chest x-ray without a report.")
    rc, out, err = run_predict("-o", tmp_path / "pred", "--prompts", other)
    one_error(rc, err, other, ws["raw"] / "imagesTs", "--allow-missing-text")
    assert not list((tmp_path / "pred").glob("*.png"))
    # asked for on purpose: every case on the no-report text
    rc, out, err = run_predict("-o", tmp_path / "pred", "--prompts", other, "--allow-missing-text")
    assert rc == 0, err
    assert len(list((tmp_path / "pred").glob("*.png"))) == len(TEST)


# ------------------------------------------------------------------------------------------- one error line
def test_output_that_is_a_file(ws, run_predict, tmp_path):
    target = tmp_path / "pred.png"
    target.write_bytes(b"not a folder")
    one_error(*run_predict("-o", target, "--prompts", reports(tmp_path, TEST))[::2], target, "folder")


def test_truncated_checkpoint(ws, run_predict, tmp_path):
    model = ws["model"].parent / "nnUNetTrainerTeViA_cut__nnUNetPlans__2d"
    if not model.exists():
        shutil.copytree(ws["model"], model)
        ckpt = model / "fold_0" / "checkpoint_final.pth"
        ckpt.write_bytes(ckpt.read_bytes()[:5000])
    rc, _, err = run_predict("-o", tmp_path / "pred", "-tr", "nnUNetTrainerTeViA_cut", "--prompts",
                             reports(tmp_path, TEST))
    one_error(rc, err, model / "fold_0" / "checkpoint_final.pth", "truncated")


def test_input_without_channel_suffix(ws, run_predict, tmp_path):
    inputs = tmp_path / "in"
    write_png_cases(inputs, ["ts_a"])
    shutil.move(inputs / "ts_a_0000.png", inputs / "ts_a.png")
    rc, _, err = run_predict("-o", tmp_path / "pred", "--prompts", reports(tmp_path, TEST), inputs=inputs)
    one_error(rc, err, inputs / "ts_a.png", "_0000")


def test_empty_input_folder(ws, run_predict, tmp_path):
    (tmp_path / "in").mkdir()
    rc, _, err = run_predict("-o", tmp_path / "pred", "--prompts", reports(tmp_path, TEST), inputs=tmp_path / "in")
    one_error(rc, err, tmp_path / "in", ".png")


def test_prompt_path_that_is_a_directory(ws, run_predict, tmp_path):
    rc, _, err = run_predict("-o", tmp_path / "pred", "--prompts", tmp_path, "--allow-missing-text")
    line = one_error(rc, err, tmp_path, "is a directory")
    assert "does not exist" not in line
