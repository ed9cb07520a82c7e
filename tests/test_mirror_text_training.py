"""nnUNetTrainerTeViA_mirrorText (issue 13): a flipped training sample gets its flipped report and mirrored patch
box, and test-time mirroring averages predictions made with the matching reports.

The unit tests use nnU-Net's own loader on two fake cases; the rest share one tiny 2D demo dataset whose prompt
file has the "2d" word map, embedded with a tiny BERT, and one tiny training (2 epochs of 3 iterations).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from nnunetv2_tevia.inference.mirrored_prediction import forward_inputs, mirrored_prediction
from nnunetv2_tevia.model.forward_text import CaseText
from nnunetv2_tevia.nnunet_seam import TILE_BOX
from nnunetv2_tevia.model.mirror_axes import mirror_boxes, mirrorable_patch_axes, patch_map_axes
from nnunetv2_tevia.model.tevia_network import unwrap
from nnunetv2_tevia.prompts.mirror_words import DEFAULT_2D_MAP, mirror_text
from nnunetv2_tevia.training.mirror_text import MirrorBoxLoader, RecordingMirrorTransform, sample_flips
from nnunetv2_tevia.training.patch_position import patch_boxes
from test_patch_position import _Cases
from tiny_text_models import make_tiny_bert

DS, NAME = 906, "Dataset906_TeViADemo"
TINY = "nnUNetTrainerTeViA_mirrorText_tiny"


# ----------------------------------------------------------------------------------------------- units
def test_mirror_boxes_flips_only_the_flipped_axes():
    boxes = torch.tensor([[[0.0, 0.25], [0.5, 1.0]], [[0.1, 0.3], [0.2, 0.6]]])
    out = mirror_boxes(boxes, torch.tensor([[True, False], [False, True]]))
    torch.testing.assert_close(out, torch.tensor([[[0.75, 1.0], [0.5, 1.0]], [[0.1, 0.3], [0.4, 0.8]]]))


def test_sample_flips_translates_patch_axes_to_the_map_axes_it_covers():
    flips = torch.tensor([[True, True], [False, True], [False, False]])
    assert sample_flips(flips, (0, 1), (0, 1)) == [(0, 1), (1,), ()]
    assert sample_flips(flips, (1, 2), (2,)) == [(2,), (2,), ()]  # a 2d configuration of a 3D dataset
    assert sample_flips(flips, (2, 0), (0, 2)) == [(0, 2), (0,), ()]  # transposed: sorted map axes


def _plans(shape, transpose):
    return {"original_median_shape_after_transp": shape, "transpose_forward": transpose}


def test_patch_axes_map_to_the_files_axes_through_nnunets_transpose():
    """The word map names the axes of the image as read from the file; nnU-Net's transpose_forward reorders them
    before the patch is cut, so a 3D dataset planned with (2, 0, 1) shows file axis 2 on patch axis 0."""
    png = _plans([1, 112, 112], [0, 1, 2])
    assert patch_map_axes(png, 2) == (0, 1)  # rows, columns
    volume = _plans([40, 64, 64], [0, 1, 2])
    assert patch_map_axes(volume, 3) == (0, 1, 2)
    assert patch_map_axes(volume, 2) == (1, 2)  # 2d configuration: the last two axes
    anisotropic = _plans([64, 40, 64], [1, 0, 2])  # nnU-Net moves the coarse axis first
    assert patch_map_axes(anisotropic, 3) == (1, 0, 2)
    assert patch_map_axes(anisotropic, 2) == (0, 2)
    # a map that covers only the file's left-right axis (2) lets only the patch axis showing it flip
    assert mirrorable_patch_axes((2,), patch_map_axes(_plans([64, 40, 64], [2, 0, 1]), 3)) == (0,)
    assert mirrorable_patch_axes((0, 1), patch_map_axes(png, 2)) == (0, 1)


def test_loader_records_each_samples_flips_and_mirrors_its_box():
    labels = LabelManager({"background": 0, "lesion": 1}, regions_class_order=None)
    loader = MirrorBoxLoader(_Cases(), 16, (16, 16), (16, 16), labels, oversample_foreground_percent=0.5,
                             transforms=ComposeTransforms([RecordingMirrorTransform((0, 1))]))
    torch.manual_seed(0)
    batch = next(loader)
    flips = batch["mirror_axes"]
    assert flips.shape == (16, 2) and flips.dtype == torch.bool
    assert flips.any() and not flips.all()  # 16 samples, each axis flipped with p=0.5
    unflipped = patch_boxes(loader._boxes, loader.final_patch_size)[:, 1:]
    torch.testing.assert_close(batch["patch_box"], mirror_boxes(unflipped, flips))
    for b in range(16):  # a flipped box is the mirror image: (lo, hi) -> (1 - hi, 1 - lo)
        for a in range(2):
            lo, hi = unflipped[b, a]
            want = (1 - hi, 1 - lo) if flips[b, a] else (lo, hi)
            torch.testing.assert_close(batch["patch_box"][b, a], torch.stack(want))


class _SpyNet:
    """Stands in for the network: output = input * (first feature of its text) + its box's start on axis 0."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, text, mask, patch_box=None):
        self.calls.append((text[0, 0, 0].item(), patch_box.clone()))
        return x * text[0, 0, 0] + patch_box[0, 0, 0]


def test_test_time_mirroring_averages_the_per_flip_predictions_with_their_texts():
    def text(value):
        return torch.full((4, 8), value), torch.ones(4, dtype=torch.bool)

    case = CaseText.of("c", *text(1.0), {(0,): text(2.0), (1,): text(3.0), (0, 1): text(5.0)})
    net, box = _SpyNet(), torch.tensor([[[0.0, 0.5], [0.25, 1.0]]])
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    out = mirrored_prediction(net, x, (0, 1), forward_inputs(case, box, (0, 1), DEFAULT_2D_MAP))
    by_hand = x * 1.0 + 0.0                              # unflipped: own text, own box (row start 0)
    by_hand += x * 2.0 + 0.5                             # rows flipped: row box (0, 0.5) -> (0.5, 1)
    by_hand += x * 3.0 + 0.0                             # columns flipped: rows unchanged
    by_hand += x * 5.0 + 0.5
    torch.testing.assert_close(out, by_hand / 4)
    assert [t for t, _ in net.calls] == [1.0, 2.0, 3.0, 5.0]
    torch.testing.assert_close(net.calls[3][1], torch.tensor([[[0.5, 1.0], [0.0, 0.75]]]))


# ----------------------------------------------------------------------------------------------- on the demo
def _script(name: str) -> str:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.isfile(beside) else name


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A 2D demo (6 training, 2 test cases) with the "2d" word map, preprocessed and embedded with a tiny BERT."""
    from nnunetv2_tevia.demo.generator import generate_demo_dataset
    from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, load_prompts, save_prompts

    root = tmp_path_factory.mktemp("mirror")
    env = dict(os.environ)
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"), nnUNet_results=str(root / "res"),
               nnUNet_compile="false", nnUNet_def_n_proc="1", OMP_NUM_THREADS="1", MPLBACKEND="agg")
    for k in ("raw", "pre", "res"):
        (root / k).mkdir()
    folder = generate_demo_dataset(str(root / "raw"), DS, num_train=6, num_test=2)
    pf = load_prompts(os.path.join(folder, PROMPTS_FILENAME))
    pf.mirror = DEFAULT_2D_MAP
    save_prompts(pf)
    bert = make_tiny_bert(root / "bert", seed=0)
    subprocess.run([_script("nnUNetv2_tevia_plan_and_preprocess"), "-d", str(DS), "-c", "2d", "-np", "1", "-npfp",
                    "1", "-e", f"hf:{bert}"], env=env, check=True, capture_output=True, timeout=300)
    return root, env, pf


def _use(ws, monkeypatch, tmp_path):
    root, env, _ = ws
    for k in ("nnUNet_raw", "nnUNet_preprocessed"):
        monkeypatch.setenv(k, env[k])
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")


def test_a_flipped_training_sample_gets_the_flipped_report(ws, monkeypatch, tmp_path):
    from nnunetv2.run.run_training import get_trainer_from_args
    from nnunetv2_tevia.text.cache import load_active_cache

    _use(ws, monkeypatch, tmp_path)
    trainer = get_trainer_from_args(str(DS), "2d", 0, TINY, device=torch.device("cpu"))
    trainer.initialize()
    train, _ = trainer.get_dataloaders()
    assert trainer.inference_allowed_mirroring_axes == (0, 1)
    assert trainer.plans_manager.plans["tevia"]["mirror"] == {"preset": "2d"}
    cache, pf = load_active_cache(NAME), ws[2]
    # the report's own flips here; the flips of its other phrasings: test_prompt_alternatives.py
    trainer.sample_text_variants, trainer.text_dropout = False, 0.0
    seen = set()
    for _ in range(6):
        batch = next(train)
        text, _ = trainer._batch_text(batch["keys"], training=True, mirror_axes=batch["mirror_axes"])
        for b, (key, flips) in enumerate(zip(batch["keys"], batch["mirror_axes"])):
            combo = tuple(int(a) for a in torch.nonzero(flips).flatten())
            want, _ = cache.mirrored_features(key, combo)
            torch.testing.assert_close(text[b].cpu(), torch.from_numpy(want))
            if mirror_text(pf.cases[key], combo, DEFAULT_2D_MAP) != pf.cases[key]:
                # the flipped report's own row, not the original's (the tiny test encoder may embed two texts
                # alike when their location words are outside its vocabulary, so compare rows, not features)
                flipped_row = trainer.text_table.row_indices([key], batch["mirror_axes"][b:b + 1])
                assert flipped_row != trainer.text_table.row_indices([key])
                seen.add(combo)
    assert seen, "no sample of 6 batches was flipped along an axis its report names"
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module
    from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
    assert trainer_module.MirrorTransform is MirrorTransform  # the swap lasted only for the call


def test_the_unflipped_control_mirrors_like_the_default_but_keeps_each_report(ws, monkeypatch, tmp_path):
    """nnUNetTrainerTeViA_mirrorUnflipped (issue 21's control): the same axes mirrored in training and at test time
    as the default with the 2d word map, but every sample reads its report as written, and the plans carry no map
    (so prediction does not flip the reports either)."""
    from nnunetv2.run.run_training import get_trainer_from_args
    from nnunetv2_tevia.text.cache import load_active_cache

    _use(ws, monkeypatch, tmp_path)
    trainer = get_trainer_from_args(str(DS), "2d", 0, "nnUNetTrainerTeViA_mirrorUnflipped", device=torch.device("cpu"))
    trainer.initialize()
    train, _ = trainer.get_dataloaders()
    assert trainer.inference_allowed_mirroring_axes == (0, 1)
    assert trainer.plans_manager.plans["tevia"].get("mirror") is None and not trainer.text_table.flip_rows
    with open(trainer.log_file) as f:  # the log says what happens to the words
        assert "mirroring patch axes (0, 1) with the reports as written" in f.read()
    cache = load_active_cache(NAME)
    trainer.sample_text_variants, trainer.text_dropout = False, 0.0
    flipped = 0
    for _ in range(4):
        batch = next(train)
        flipped += int(batch["mirror_axes"].any())
        text, _ = trainer._batch_text(batch["keys"], training=True, mirror_axes=batch["mirror_axes"])
        for b, key in enumerate(batch["keys"]):
            want, _ = cache.mirrored_features(key, ())
            torch.testing.assert_close(text[b].cpu(), torch.from_numpy(want))
    assert flipped, "no sample of 4 batches was mirrored: the control would not mirror at all"


@pytest.fixture(scope="module")
def model(ws) -> Path:
    """The tiny mirrorText training (2 epochs of 3 iterations and nnU-Net's final validation)."""
    root, env, _ = ws
    subprocess.run([_script("nnUNetv2_train"), str(DS), "2d", "0", "-tr", TINY, "-device", "cpu"],
                   env=dict(env, nnUNet_n_proc_DA="0"), check=True, capture_output=True, timeout=300)
    return root / "res" / NAME / f"{TINY}__nnUNetPlans__2d"


@pytest.mark.slow
def test_the_variant_trains_and_predicts_a_folder(ws, model, monkeypatch, tmp_path):
    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor

    root, env, pf = ws
    assert load_json(str(model / "plans.json"))["tevia"]["mirror"] == {"preset": "2d"}
    assert (model / "fold_0" / "validation" / "summary.json").is_file()  # validated with mirrored reports
    _use(ws, monkeypatch, tmp_path)
    predictor = nnUNetTeViAPredictor(tile_step_size=0.5, use_mirroring=True, device=torch.device("cpu"),
                                     prompts=pf, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model), (0,))
    out = tmp_path / "pred"
    out.mkdir()
    predictor.predict_from_files_sequential(str(root / "raw" / NAME / "imagesTs"), str(out), False, True, None)
    assert len(list(out.glob("*.png"))) == 2
    cases = sorted(p.name[:-len("_0000.png")] for p in (root / "raw" / NAME / "imagesTs").glob("*_0000.png"))
    texts = predictor.embed_case_texts({k: pf.cases[k] for k in cases}, str(out))
    assert len(texts) == 2 and any(t.flipped for t in texts.values())  # the test reports' flipped variants


@pytest.mark.slow
def test_test_time_mirroring_of_a_trained_model_uses_the_flipped_reports(ws, model, monkeypatch, tmp_path):
    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor

    root, env, pf = ws
    _use(ws, monkeypatch, tmp_path)
    folder = model
    # one tile by hand: each flipped forward gets the case's flipped report
    predictor = nnUNetTeViAPredictor(tile_step_size=0.5, use_mirroring=True, device=torch.device("cpu"),
                                     prompts=pf, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), (0,))
    assert predictor.allowed_mirroring_axes == (0, 1) and predictor.mirror_map.axes == DEFAULT_2D_MAP.axes
    case = next(k for k, t in sorted(pf.cases.items()) if mirror_text(t, (1,), DEFAULT_2D_MAP) != t)
    text = predictor.embed_case_texts({case: pf.cases[case]}, str(tmp_path))[case]
    net = unwrap(predictor.network)
    net.eval()
    seen = []
    original = net.forward
    monkeypatch.setattr(net, "forward", lambda x, t, m, **k: (seen.append(t.clone()), original(x, t, m, **k))[1])
    x = torch.randn(1, 1, 64, 64)
    setattr(x, TILE_BOX, torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]))  # a tile of the window that covers the image
    with torch.no_grad(), predictor._predicting(text):
        out = predictor._internal_maybe_mirror_and_predict(x)
    assert len(seen) == 4  # own, then (0,), (1,), (0, 1)
    torch.testing.assert_close(seen[2], text.flipped[(1,)][0])
    assert not torch.equal(seen[2], seen[0])
    by_hand = 0
    with torch.no_grad():
        for combo in ((), (0,), (1,), (0, 1)):
            dims = [a + 2 for a in combo]
            y = original(torch.flip(x, dims) if dims else x, *text.variant(combo))
            by_hand = by_hand + (torch.flip(y, dims) if dims else y)
    torch.testing.assert_close(out, by_hand / 4)


@pytest.mark.slow
def test_the_predict_cli_refuses_a_prompt_file_with_another_word_map(ws, model, tmp_path):
    """A prompt file whose "mirror" section differs from the model's would flip reports the model never saw."""
    from nnunetv2_tevia.prompts.mirror_words import MirrorMap
    from nnunetv2_tevia.prompts.prompt_file import PromptFile, save_prompts

    root, env, pf = ws
    other = str(tmp_path / "other_prompts.json")
    save_prompts(PromptFile(path=other, cases=dict(pf.cases), classes=dict(pf.classes),
                            mirror=MirrorMap.of({1: [("left", "right")]})))
    proc = subprocess.run([_script("nnUNetv2_tevia_predict"), "-i", str(root / "raw" / NAME / "imagesTs"), "-o",
                           str(tmp_path / "pred"), "-d", str(DS), "-c", "2d", "-f", "0", "-tr", TINY, "-device",
                           "cpu", "--prompts", other, "--disable_progress_bar"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    err = proc.stderr + proc.stdout
    assert "other_prompts.json" in err and "plans.json" in err and "word map differs" in err, err[-2000:]
    assert not list((tmp_path / "pred").glob("*.png"))
