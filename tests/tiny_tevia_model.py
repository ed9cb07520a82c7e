"""A trained-model folder without training: a randomly initialised TeViA network on a tiny hand-made 2D plan
(test_attention_maps._plans), a tiny random BERT as its encoder, and a raw dataset of PNG images.

Enough for ``nnUNetv2_tevia_predict`` to run end to end in a few seconds on a CPU.
"""
import json
from pathlib import Path

import numpy as np

TOKENS = 8
TRAINER = "nnUNetTrainerTeViA"


def write_png_cases(folder: Path, case_ids, shape=(40, 48), seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for cid in case_ids:
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(folder / f"{cid}_0000.png")


def make_workspace(root: Path, bert_folder: str, dataset: str = "Dataset996_Tiny", train=(), test=(),
                   trainer: str = TRAINER, **config) -> dict:
    """nnUNet_raw / nnUNet_preprocessed / nnUNet_results under ``root`` with a raw dataset and a model folder
    (fold 0) of ``trainer``, whose TeViAConfig takes ``config`` (e.g. case_text=False: a _noText model); returns the
    paths and the environment variables."""
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from test_attention_maps import _plans

    from nnunetv2_tevia.model.config import TeViAConfig
    from nnunetv2_tevia.text.encoders import load_encoder
    from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

    raw, pre, res = root / "raw" / dataset, root / "pre", root / "res"
    dataset_json = {"channel_names": {"0": "gray"}, "labels": {"background": 0, "lesion": 1},
                    "numTraining": len(train), "file_ending": ".png"}
    write_png_cases(raw / "imagesTr", train)
    write_png_cases(raw / "imagesTs", test, seed=1)
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    pre.mkdir(parents=True, exist_ok=True)

    encoder = load_encoder("hf:" + bert_folder)
    config = TeViAConfig(text_tokens=TOKENS, text_dim=encoder.dim, num_guided_stages=2,
                         encoder=dict(encoder.record(), max_tokens=TOKENS), **config)
    plans = _plans(config)
    plans["dataset_name"] = dataset
    manager = PlansManager(plans)
    torch.manual_seed(0)
    network = nnUNetTrainerTeViA.build_network_architecture(manager, manager.get_configuration("2d"), 1, 2,
                                                            enable_deep_supervision=False)
    for stage in network.guided_stages:  # at init the gate is 0.1: make the text matter to the output
        stage.gate.data.fill_(1.0)
    model = res / dataset / f"{trainer}__nnUNetPlans__2d"
    (model / "fold_0").mkdir(parents=True)
    (model / "plans.json").write_text(json.dumps(plans))
    (model / "dataset.json").write_text(json.dumps(dataset_json))
    torch.save({"network_weights": network.state_dict(), "trainer_name": trainer,
                "init_args": {"configuration": "2d", "plans": plans}, "inference_allowed_mirroring_axes": None},
               model / "fold_0" / "checkpoint_final.pth")
    env = {"nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(pre), "nnUNet_results": str(res)}
    return {"raw": raw, "pre": pre / dataset, "model": model, "env": env, "dataset": dataset,
            "encoder": "hf:" + bert_folder}
