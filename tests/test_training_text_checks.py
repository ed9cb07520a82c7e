"""The real trainer's start-up checks of the text, on a tiny preprocessed demo dataset.

Training must refuse to start when a training case has no text and nothing stands in for it, or when
the prompt file changed after embedding; the message names the case and the command that fixes it.
A no-report text ("default"/classes) or text dropout (the default trainer's) lets such cases train on the no-report
row; the trainer records its rate and the count in the plans, and its network still refuses a forward without text.

nnU-Net reads its folders from the environment when it is imported, so everything runs in one child
process with its own nnUNet_raw/preprocessed/results (about 15 s of CPU, most of it imports).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATASET_ID = 977
NAME = "TextChecks"
DATASET = f"Dataset{DATASET_ID:03d}_{NAME}"
NO_TEXT_CASE, EDITED_CASE = "train_002", "train_004"

pytestmark = pytest.mark.slow  # one nnU-Net planning and preprocessing run, ~40 s of CPU


def _trainer_outcome(trainer_name: str, cache) -> dict:
    """Find, construct and initialise the trainer as nnUNetv2_train does; what it decided, or how it refused."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunetv2_tevia.model.tevia_network import unwrap

    trainer = get_trainer_from_args(DATASET, "2d", 0, trainer_name, device=torch.device("cpu"))
    try:
        trainer.initialize()
    except SystemExit as e:
        return {"exit": str(e.code)}
    net = unwrap(trainer.network)
    no_report = torch.from_numpy(cache.no_report_features()[0]).float()
    with torch.no_grad():
        x = torch.zeros(1, 1, *trainer.configuration_manager.patch_size)
        try:
            net.eval()(x)
            forward_without_text = "ok"
        except Exception as e:  # recorded, the test decides what is expected
            forward_without_text = type(e).__name__
    return {"tevia": trainer.plans_manager.plans["tevia"], "allow_no_report": bool(net.allow_no_report),
            "rows": dict(trainer.text_table.rows), "forward_without_text": forward_without_text,
            "no_report_buffer_is_cached_row": bool(torch.equal(net.no_report_text_features, no_report))}


def run_scenarios(out_file: str) -> None:
    """Runs in the child process."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                      preprocess)

    from nnunetv2_tevia.demo.generator import generate_demo_dataset
    from nnunetv2_tevia.prompts.prompt_file import PromptFile, load_prompts, save_prompts
    from nnunetv2_tevia.text.cache import dataset_cache_root
    from nnunetv2_tevia.text.embed import embed_prompts
    from nnunetv2_tevia.text.encoders import load_encoder

    raw = generate_demo_dataset(os.environ["nnUNet_raw"], DATASET_ID, NAME, num_train=6, num_test=0, size=32)
    extract_fingerprints([DATASET_ID], num_processes=1, verbose=False, show_progress_bar=False)
    plan_experiments([DATASET_ID])
    preprocess([DATASET_ID], configurations=("2d",), num_processes=(1,), show_progress_bar=False)

    prompt_path = os.path.join(raw, "tevia_prompts.json")
    full = load_prompts(prompt_path)
    encoder = load_encoder("default", device="cpu")

    def embed(pf):
        save_prompts(pf, prompt_path)
        return embed_prompts(load_prompts(prompt_path), dataset_cache_root(DATASET), encoder, progress=False)

    def both(cache):
        return {t: _trainer_outcome(t, cache) for t in ("nnUNetTrainerTeViA_noTextDropout", "nnUNetTrainerTeViA")}

    results = {"cases": sorted(full.cases)}
    cache = embed(full)
    results["full"] = both(cache)

    edited = dict(full.cases, **{EDITED_CASE: full.cases[EDITED_CASE] + " Edited after embedding."})
    save_prompts(PromptFile(prompt_path, edited, full.default, full.classes), prompt_path)
    results["stale_case"] = both(cache)
    save_prompts(PromptFile(prompt_path, full.cases, "A new default text.", full.classes), prompt_path)
    results["stale_no_report_text"] = both(cache)

    without = {k: v for k, v in full.cases.items() if k != NO_TEXT_CASE}
    cache = embed(PromptFile(prompt_path, without, None, {}))  # no default, no classes: no no-report text
    results["missing_text"] = both(cache)
    cache = embed(PromptFile(prompt_path, without, "No report for this image.", {}))
    results["missing_text_with_default"] = both(cache)
    with open(out_file, "w") as f:
        json.dump(results, f)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_checks")
    env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"),
               nnUNet_results=str(root / "results"), HF_HUB_OFFLINE="1", nnUNet_compile="false",
               nnUNet_def_n_proc="1", OMP_NUM_THREADS="1")
    for k in ("raw", "pre", "results"):
        (root / k).mkdir()
    out = root / "outcomes.json"
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_training_text_checks as t; t.run_scenarios({str(out)!r})")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return json.loads(out.read_text())


def test_complete_text_trains_and_records_text_dropout(outcomes):
    plain = outcomes["full"]["nnUNetTrainerTeViA_noTextDropout"]
    dropout = outcomes["full"]["nnUNetTrainerTeViA"]
    assert plain["tevia"]["text_dropout"] == 0.0 and not plain["allow_no_report"]
    assert 0 not in plain["rows"].values() and sorted(plain["rows"]) == outcomes["cases"]
    # the default's rate reaches plans["tevia"], from which the predictor rebuilds the network and decides whether
    # a case without a report may be predicted; the network itself never fills in a missing text (issue 20)
    assert dropout["tevia"]["text_dropout"] == 0.2 and dropout["tevia"]["no_report_training_cases"] == 0
    assert plain["forward_without_text"] == dropout["forward_without_text"] == "MissingTextError"
    assert dropout["no_report_buffer_is_cached_row"] and not dropout["allow_no_report"]


@pytest.mark.parametrize("trainer", ["nnUNetTrainerTeViA_noTextDropout", "nnUNetTrainerTeViA"])
def test_stale_cache_refused_naming_case_and_embed_command(outcomes, trainer):
    message = outcomes["stale_case"][trainer]["exit"]
    assert EDITED_CASE in message and f"nnUNetv2_tevia_prompts embed -d {DATASET}" in message
    assert "tevia_prompts.json" in message
    assert not any(k in message for k in outcomes["cases"] if k != EDITED_CASE)
    message = outcomes["stale_no_report_text"][trainer]["exit"]
    assert "no-report text changed" in message and f"nnUNetv2_tevia_prompts embed -d {DATASET}" in message


def test_case_without_text_refused_naming_case_file_and_command(outcomes):
    message = outcomes["missing_text"]["nnUNetTrainerTeViA_noTextDropout"]["exit"]
    assert NO_TEXT_CASE in message and f"nnUNetv2_tevia_prompts embed -d {DATASET}" in message
    assert "tevia_prompts.json" in message
    assert not any(k in message for k in outcomes["cases"] if k != NO_TEXT_CASE)


@pytest.mark.parametrize("scenario, trainer", [("missing_text", "nnUNetTrainerTeViA"),
                                               ("missing_text_with_default", "nnUNetTrainerTeViA_noTextDropout"),
                                               ("missing_text_with_default", "nnUNetTrainerTeViA")])
def test_no_report_text_or_dropout_lets_case_without_text_train(outcomes, scenario, trainer):
    outcome = outcomes[scenario][trainer]
    assert "exit" not in outcome, outcome.get("exit")
    assert outcome["rows"][NO_TEXT_CASE] == 0  # the no-report row
    assert outcome["tevia"]["no_report_training_cases"] == 1  # recorded: the predictor may serve such cases
    assert all(outcome["rows"][k] > 0 for k in outcomes["cases"] if k != NO_TEXT_CASE)
    assert outcome["no_report_buffer_is_cached_row"]
