"""Text-consistent mirroring in 3D (issue 13), where nnU-Net's transpose puts the file's axes in another order.

The word map names the axes of the image as read from the file (SimpleITK's z, y, x); nnU-Net's preprocessing
transposes them with the plans' ``transpose_forward``. One tiny 3D demo (6 training, 2 test cases; z listed
without words, y: upper/lower, top/bottom, x: left/right), planned with the transpose forced to (2, 0, 1) so that
patch axis 0 shows the file's x: a flip of patch axis 0 must swap left/right, a flip of patch axis 1 (z) must
change no word.
"""
import os
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json, save_json

from nnunetv2_tevia.model.mirror_axes import patch_map_axes
from nnunetv2_tevia.prompts.mirror_words import mirror_text
from test_mirror_text_training import _script, _use
from tiny_text_models import make_tiny_bert

DS, NAME = 907, "Dataset907_TeViADemo3D"
TINY = "nnUNetTrainerTeViA_mirrorText_tiny"
TRANSPOSE = [2, 0, 1]


@pytest.fixture(scope="module")
def ws3d(tmp_path_factory):
    from nnunetv2_tevia.demo.generator import generate_demo_dataset
    from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, load_prompts

    root = tmp_path_factory.mktemp("mirror3d")
    env = dict(os.environ)
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"), nnUNet_results=str(root / "res"),
               nnUNet_compile="false", nnUNet_def_n_proc="1", OMP_NUM_THREADS="1",
               MPLBACKEND="agg")
    for k in ("raw", "pre", "res"):
        (root / k).mkdir()
    folder = generate_demo_dataset(str(root / "raw"), DS, name="TeViADemo3D", num_train=6, num_test=2,
                                   three_d=True, size=16)
    pf = load_prompts(os.path.join(folder, PROMPTS_FILENAME))
    bert = make_tiny_bert(root / "bert", seed=0)
    _run([_script("nnUNetv2_tevia_plan_and_preprocess"), "-d", str(DS), "-c", "3d_fullres", "-np", "1", "-npfp", "1",
          "-e", f"hf:{bert}"], env)
    # isotropic cubes: nnU-Net plans the identity; force another order (what an anisotropic volume gets)
    plans_file = root / "pre" / NAME / "nnUNetPlans.json"
    plans = load_json(str(plans_file))
    plans["transpose_forward"], plans["transpose_backward"] = TRANSPOSE, list(np.argsort(TRANSPOSE).tolist())
    save_json(plans, str(plans_file))
    _run([_script("nnUNetv2_preprocess"), "-d", str(DS), "-c", "3d_fullres", "-np", "1"], env)
    return root, env, pf


def _run(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_the_demo_section_and_nnunets_transpose_convention(ws3d):
    """Preprocessed axis j is the file's axis transpose_forward[j]: what patch_map_axes relies on."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    root, _, pf = ws3d
    assert pf.mirror.axis_indices == (0, 1, 2) and pf.mirror.pairs(0) == ()
    pre = str(root / "pre" / NAME / "nnUNetPlans_3d_fullres")
    dataset = infer_dataset_class(pre)(pre)
    case = sorted(dataset.identifiers)[0]
    _, seg, _, _ = dataset.load_case(case)
    from_file = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "raw" / NAME / "labelsTr" / f"{case}.nii.gz")))
    assert np.array_equal(np.asarray(seg[0]), from_file.transpose(TRANSPOSE))


def test_a_flipped_3d_sample_gets_the_report_of_the_files_flipped_axes(ws3d, monkeypatch, tmp_path):
    from nnunetv2.run.run_training import get_trainer_from_args
    from nnunetv2_tevia.text.cache import load_active_cache

    _use(ws3d, monkeypatch, tmp_path)
    pf = ws3d[2]
    trainer = get_trainer_from_args(str(DS), "3d_fullres", 0, TINY, device=torch.device("cpu"))
    trainer.initialize()
    assert patch_map_axes(trainer.plans_manager.plans, 3) == (2, 0, 1)
    train, _ = trainer.get_dataloaders()
    assert trainer.inference_allowed_mirroring_axes == (0, 1, 2)  # z too: listed without words
    cache = load_active_cache(NAME)
    swapped_lr = z_only = 0
    for _ in range(60):  # until both were seen; each sample is flipped along each axis with probability 1/2
        if swapped_lr and z_only:
            break
        batch = next(train)
        rows = trainer.text_table.row_indices(batch["keys"], batch["mirror_axes"])
        own = trainer.text_table.row_indices(batch["keys"])
        for key, flips, row, own_row in zip(batch["keys"], batch["mirror_axes"], rows, own):
            patch_axes = [int(a) for a in torch.nonzero(flips).flatten()]
            file_axes = tuple(sorted(TRANSPOSE[a] for a in patch_axes))
            text = mirror_text(pf.cases[key], file_axes, pf.mirror)
            if text == pf.cases[key]:
                assert row == own_row
                z_only += patch_axes == [1]
                continue
            want, _ = cache.mirrored_features(key, file_axes)
            torch.testing.assert_close(trainer.text_table.features[row].float(), torch.from_numpy(want).float())
            if patch_axes == [0]:  # the file's x: left and right swap, upper and lower stay
                assert text == mirror_text(pf.cases[key], (2,), pf.mirror)
                swapped_lr += 1
    assert swapped_lr and z_only, "60 batches held no sample flipped along patch axis 0 alone or 1 alone"


@pytest.mark.slow
def test_the_3d_variant_trains_validates_and_predicts_through_the_cli(ws3d, tmp_path):
    root, env, pf = ws3d
    _run([_script("nnUNetv2_train"), str(DS), "3d_fullres", "0", "-tr", TINY, "-device", "cpu"],
         dict(env, nnUNet_n_proc_DA="0"))  # not while planning: nnU-Net's planner sets torch threads from it
    model = root / "res" / NAME / f"{TINY}__nnUNetPlans__3d_fullres"
    assert load_json(str(model / "plans.json"))["tevia"]["mirror"] == {
        "axes": {"0": [], "1": [["upper", "lower"], ["top", "bottom"]], "2": [["left", "right"]]}}
    assert (model / "fold_0" / "validation" / "summary.json").is_file()  # validated with mirrored reports
    out = tmp_path / "pred"
    proc = subprocess.run([_script("nnUNetv2_tevia_predict"), "-i", str(root / "raw" / NAME / "imagesTs"), "-o",
                           str(out), "-d", str(DS), "-c", "3d_fullres", "-f", "0", "-tr", TINY, "-device", "cpu",
                           "-npp", "1", "-nps", "1", "--disable_progress_bar"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for case in sorted(k for k in pf.cases if k.startswith("test")):
        image = sitk.ReadImage(str(root / "raw" / NAME / "imagesTs" / f"{case}_0000.nii.gz"))
        pred = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        assert pred.GetSize() == image.GetSize()  # transposed back to the file's order
