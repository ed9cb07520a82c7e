"""A model trained without reports (``nnUNetTrainerTeViA_noText``: TeViAConfig.case_text False) is predicted on the one
text it was trained on, its no-report text, whatever reports the prompt file holds, and needs no prompt file at all.

Before this rule the predictor handed such a model each case's report, which it had never learned to read: the
benchmarks' text-blind baseline was then not text-blind at test time. The tiny model's gates are opened
(tiny_tevia_model.py), so any text that reaches it moves its output.
"""
import sys

import numpy as np
import pytest
from tiny_text_models import make_tiny_bert
from tiny_tevia_model import make_workspace

from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts

TRAINER = "nnUNetTrainerTeViA_noText"
NO_REPORT = "No report. Possible findings: lesion."
TEST = {"ts_a": "bilateral pulmonary infection, lower left and lower right lung.",
        "ts_b": "unilateral pulmonary infection, upper left lung."}
OTHER = {"ts_a": "no finding.", "ts_b": "one infected area, middle right lung."}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("notext")
    bert = make_tiny_bert(root / "tiny-bert")
    return make_workspace(root, bert, dataset="Dataset994_NoText", test=TEST, trainer=TRAINER, case_text=False,
                          no_report_text=NO_REPORT)


def predict(ws, monkeypatch, capsys, out, *args):
    from nnunetv2_tevia.cli.predict import predict_entry

    for k, v in ws["env"].items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "argv", ["nnUNetv2_tevia_predict", "-i", str(ws["raw"] / "imagesTs"), "-o", str(out),
                                      "-d", ws["dataset"], "-c", "2d", "-f", "0", "-tr", TRAINER, "-device", "cpu",
                                      "-npp", "0", "-nps", "0", "--disable_progress_bar", "--save_probabilities",
                                      *map(str, args)])
    capsys.readouterr()
    try:
        predict_entry()
    except SystemExit as e:
        pytest.fail(f"nnUNetv2_tevia_predict exited with {e.code}: {capsys.readouterr().err}")
    said = capsys.readouterr().out
    return {k: np.load(out / f"{k}.npz")["probabilities"] for k in TEST}, said


def prompt_file(tmp_path, name, cases) -> str:
    path = tmp_path / name
    save_prompts(PromptFile(path=None, cases=dict(cases)), path)
    return str(path)


def test_no_text_model_reads_no_report_and_needs_no_prompt_file(ws, monkeypatch, capsys, tmp_path):
    own, said = predict(ws, monkeypatch, capsys, tmp_path / "own", "--prompts", prompt_file(tmp_path, "own.json", TEST))
    other, _ = predict(ws, monkeypatch, capsys, tmp_path / "other", "--prompts",
                       prompt_file(tmp_path, "other.json", OTHER))
    # no --prompts and no tevia_prompts.json in the raw dataset: a TeViA model that reads reports refuses this
    assert not (ws["raw"] / "tevia_prompts.json").exists()
    for k in TEST:
        np.testing.assert_array_equal(own[k], other[k])
    none, _ = predict(ws, monkeypatch, capsys, tmp_path / "none")
    for k in TEST:
        np.testing.assert_array_equal(own[k], none[k])
    assert "trained without reports" in said and f"all {len(TEST)} case(s)" in said


def test_no_text_model_in_memory_ignores_the_given_text(ws, monkeypatch):
    import torch
    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor

    for k, v in ws["env"].items():
        monkeypatch.setenv(k, v)
    predictor = nnUNetTeViAPredictor(use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False,
                                     text_encoder=ws["encoder"])
    predictor.initialize_from_trained_model_folder(str(ws["model"]), (0,))
    image = np.random.default_rng(0).random((1, 1, 40, 48)).astype(np.float32)
    props = {"spacing": [999.0, 1.0, 1.0]}
    outs = [predictor.predict_single_npy_array(image, props, None, None, True, text=t)[1]
            for t in (TEST["ts_a"], OTHER["ts_a"], "")]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
