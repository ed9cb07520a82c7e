"""Which augmentation each trainer trains with: the variants that the benchmarks compare must differ from each other
in exactly what their names say. `_fullDA` and `_noTextFullDA` train with nnU-Net's own rotations, mirroring and
mirrored prediction (identical to nnUNetTrainer's); the default, `_noText` and the plain `nnUNetTrainer_locationSafe`
with TeViA's location-safe set."""
import copy

import numpy as np
import pytest
import torch
from test_attention_maps import _plans

from nnunetv2_tevia.model.config import TeViAConfig

DATASET_JSON = {"channel_names": {"0": "gray"}, "labels": {"background": 0, "lesion": 1}, "numTraining": 3,
                "file_ending": ".png"}


@pytest.fixture
def augmentation(tmp_path, monkeypatch):
    """``augmentation(trainer class)``: (rotation range, mirror axes, initial patch size, test-time mirror axes,
    whether it reads each case's report)."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "res"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    plans = _plans(TeViAConfig(text_tokens=8, text_dim=16))
    plans["dataset_name"] = "Dataset996_Tiny"

    def of(cls):
        trainer = cls(dict(copy.deepcopy(plans), continue_training=False), "2d", 0, DATASET_JSON, torch.device("cpu"))
        rotation, _, patch, axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        return (tuple(float(r) for r in rotation), axes, tuple(np.asarray(patch).tolist()),
                trainer.inference_allowed_mirroring_axes, getattr(trainer, "use_case_text", None))
    return of


def test_full_augmentation_variants_train_as_nnunet_does(augmentation):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_tevia.training.all_trainers import (nnUNetTrainer_locationSafe, nnUNetTrainerTeViA,
                                                      nnUNetTrainerTeViA_fullDA, nnUNetTrainerTeViA_noText,
                                                      nnUNetTrainerTeViA_noTextFullDA)

    nnunet = augmentation(nnUNetTrainer)
    assert nnunet[1] == (0, 1) and nnunet[0] == pytest.approx((-np.pi, np.pi))
    assert augmentation(nnUNetTrainerTeViA_fullDA)[:4] == nnunet[:4]
    assert augmentation(nnUNetTrainerTeViA_noTextFullDA)[:4] == nnunet[:4]
    assert augmentation(nnUNetTrainerTeViA_noTextFullDA)[4] is False  # and it still never reads a report
    # location-safe: +-15 degrees, no mirroring in training or prediction (no word map in these plans)
    safe = [augmentation(cls) for cls in (nnUNetTrainerTeViA, nnUNetTrainerTeViA_noText, nnUNetTrainer_locationSafe)]
    for rotation, axes, _, inference_axes, _ in safe:
        assert rotation == pytest.approx((-np.deg2rad(15), np.deg2rad(15))) and not axes and inference_axes is None
    # plain nnU-Net with the location-safe set trains on the same initial patch as TeViA
    assert safe[2][2] == safe[0][2] and safe[2][2] != nnunet[2]
    assert augmentation(nnUNetTrainerTeViA_noText)[4] is False and augmentation(nnUNetTrainerTeViA)[4] is True
