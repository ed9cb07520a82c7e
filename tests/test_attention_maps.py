"""Cross-attention maps: explicit weights equal SDPA's attention, and the predictor writes one PNG per key.

The predictor runs in-process on a tiny hand-made 2D plan (patch 32 x 32), a tiny random BERT and a
randomly initialised TeViA network, through nnU-Net's own preprocessing and sliding window.
"""
import os

import numpy as np
import pytest
import torch
from tiny_text_models import make_tiny_bert

from nnunetv2_tevia.model.attention import Attention
from nnunetv2_tevia.model.config import PLANS_KEY, TeViAConfig
from nnunetv2_tevia.model.guided_stage import GuidedStage

PATCH = [32, 32]
TOKENS = 8


def test_captured_weights_match_sdpa_and_sum_to_one():
    torch.manual_seed(0)
    attention = Attention(16, 4)
    q, k = torch.randn(2, 10, 16), torch.randn(2, 5, 16)
    fast = attention(q, k, k)
    assert attention.last_weights is None  # SDPA path: nothing materialised
    attention.capture_weights = True
    explicit = attention(q, k, k)
    torch.testing.assert_close(explicit, fast, rtol=1e-5, atol=1e-6)
    w = attention.last_weights
    assert w.shape == (2, 10, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 10))


@pytest.mark.parametrize("spatial", [(6, 5), (3, 4, 2)])
def test_stage_maps_have_the_stage_grid(spatial):
    torch.manual_seed(0)
    stage = GuidedStage(channels=8, text_tokens=TOKENS, text_dim=16, slots=3)
    x = torch.randn(2, 8, *spatial)
    text = stage.project_text(torch.randn(2, TOKENS, 16), torch.ones(2, TOKENS, dtype=torch.bool))
    stage(x, text)
    assert stage.cross_attention_maps() is None
    stage.cross_attention.capture_weights = True
    stage(x, text)
    maps = stage.cross_attention_maps()
    assert maps.shape == (2, 1 + 3, *spatial)  # the null key, then every slot
    torch.testing.assert_close(maps.sum(1), torch.ones(2, *spatial))
    # position (0, 0, ...) of the map is the first query token
    torch.testing.assert_close(maps[:, :, *([0] * len(spatial))], stage.cross_attention.last_weights[:, 0])


# ------------------------------------------------------------------ predictor
def _plans(config: TeViAConfig) -> dict:
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 4, "features_per_stage": [4, 8, 16, 16],
                            "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 4,
                            "strides": [[1, 1], [2, 2], [2, 2], [2, 2]], "n_conv_per_stage": [1] * 4,
                            "n_conv_per_stage_decoder": [1] * 3, "conv_bias": True,
                            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                            "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    resampling = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
    configuration = {"data_identifier": "nnUNetPlans_2d", "preprocessor_name": "DefaultPreprocessor",
                     "batch_size": 2, "patch_size": PATCH, "median_image_size_in_voxels": [48, 40],
                     "spacing": [1.0, 1.0], "normalization_schemes": ["ZScoreNormalization"],
                     "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
                     "resampling_fn_seg": "resample_data_or_seg_to_shape",
                     "resampling_fn_data_kwargs": dict(resampling, order=3),
                     "resampling_fn_seg_kwargs": dict(resampling, is_seg=True),
                     "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                     "resampling_fn_probabilities_kwargs": resampling, "architecture": arch, "batch_dice": True}
    return {"dataset_name": "Dataset998_AttentionMaps", "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": [999.0, 1.0, 1.0],
            "original_median_shape_after_transp": [1, 48, 40], "image_reader_writer": "NaturalImage2DIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": {"max": 255.0, "mean": 120.0, "median": 120.0,
                                                                  "min": 0.0, "percentile_00_5": 1.0,
                                                                  "percentile_99_5": 250.0, "std": 40.0}},
            "configurations": {"2d": configuration}, PLANS_KEY: config.to_dict()}


@pytest.fixture(scope="module")
def model_parts(tmp_path_factory):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_tevia.text.encoders import load_encoder
    from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

    folder = tmp_path_factory.mktemp("attention")
    encoder = load_encoder("hf:" + make_tiny_bert(folder / "tiny-bert"))
    config = TeViAConfig(text_tokens=TOKENS, text_dim=encoder.dim, num_guided_stages=2,
                         encoder=dict(encoder.record(), max_tokens=TOKENS))
    plans_manager = PlansManager(_plans(config))
    configuration_manager = plans_manager.get_configuration("2d")
    dataset_json = {"labels": {"background": 0, "lesion": 1}, "channel_names": {"0": "gray"},
                    "file_ending": ".png", "numTraining": 0}
    torch.manual_seed(0)
    network = nnUNetTrainerTeViA.build_network_architecture(plans_manager, configuration_manager, 1, 2,
                                                            enable_deep_supervision=False)
    for stage in network.guided_stages:  # at init the gate is 0.1: make the text matter to the output
        stage.gate.data.fill_(1.0)
    return folder, plans_manager, configuration_manager, dataset_json, network


def _predictor(model_parts, out, mirroring=True, **options):
    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor

    folder, plans_manager, configuration_manager, dataset_json, network = model_parts
    predictor = nnUNetTeViAPredictor(tile_step_size=0.5, use_mirroring=mirroring, device=torch.device("cpu"),
                                     allow_tqdm=False, text_cache_folder=str(folder / "text_cache"), **options)
    predictor.manual_initialization(network, plans_manager, configuration_manager, [network.state_dict()],
                                    dataset_json, "nnUNetTrainerTeViA", (0, 1) if mirroring else None)
    return predictor


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((1, 1, *shape)) * 255).astype(np.float32), {"spacing": [999.0, 1.0, 1.0]}


REPORT = "bilateral pulmonary infection, two infected areas, lower left lung and lower right lung."


@pytest.mark.parametrize("shape", [(48, 40), (24, 20)], ids=["several-tiles", "padded"])
def test_predictor_writes_one_png_per_key(model_parts, tmp_path, shape):
    image, props = _image(shape)
    plain = _predictor(model_parts, tmp_path)
    reference = plain.predict_single_npy_array(image, props, text=REPORT)

    maps_folder = tmp_path / "maps"
    predictor = _predictor(model_parts, tmp_path, attention_maps_folder=str(maps_folder))
    seg = predictor.predict_single_npy_array(image, props, text=REPORT)
    # the maps change nothing about the prediction
    np.testing.assert_array_equal(seg, reference)

    network = model_parts[-1]
    stage = predictor.attention_stage
    assert stage == len(network.guided_stages) - 1  # default: the finest guided stage
    slots = network.config.resolved_slots(len(network.guided_stages))[stage]
    maps = predictor._attention.case_maps()
    # null key, slots and the sentence key; a 2D image on nnU-Net's (z, y, x) grid
    assert maps.shape == (1 + slots + 1, 1, *shape)
    np.testing.assert_allclose(maps.sum(0), 1.0, rtol=1e-5)
    assert (maps >= 0).all() and maps.std(axis=(1, 2, 3)).max() > 0  # a map, not a constant

    files = sorted(os.listdir(maps_folder / "__array_0"))
    assert files == sorted([f"stage{stage}_null.png", f"stage{stage}_sentence.png"] +
                           [f"stage{stage}_slot{j:02d}.png" for j in range(slots)])
    from PIL import Image

    with Image.open(maps_folder / "__array_0" / files[0]) as png:
        assert png.format == "PNG" and min(png.size) > 100


def test_chosen_stage_and_bad_stage(model_parts, tmp_path):
    image, props = _image((32, 32), seed=1)
    predictor = _predictor(model_parts, tmp_path, mirroring=False, attention_maps_folder=str(tmp_path / "m"),
                           attention_stage=0)
    predictor.predict_single_npy_array(image, props, text=REPORT)
    slots = model_parts[-1].config.resolved_slots(2)[0]
    assert len(os.listdir(tmp_path / "m" / "__array_0")) == 1 + slots + 1  # null, slots, sentence
    assert predictor._attention.stage.last_spatial_shape == (8, 8)  # 32 / 2^2: output of decoder stage 0
    from nnunetv2_tevia.errors import TeViAError

    # a TeViAError: nnUNetv2_tevia_predict prints it as one line, no traceback
    with pytest.raises(TeViAError, match="2 guided stages"):
        _predictor(model_parts, tmp_path, attention_maps_folder=str(tmp_path / "x"), attention_stage=2)


def test_changed_prompts_are_embedded_again(model_parts, tmp_path):
    """The in-process predictor keeps each case's embedded text; after ``predictor.prompts`` changes, the next
    prediction must use the new report, not the features embedded from the old one."""
    from PIL import Image

    from nnunetv2_tevia.prompts.prompt_file import PromptFile

    images = tmp_path / "in"
    for folder in ("in", "a", "b", "c"):
        (tmp_path / folder).mkdir()
    Image.fromarray((np.random.default_rng(3).random((40, 48)) * 255).astype(np.uint8)).save(images / "c1_0000.png")
    other = "no infection, clear lungs on both sides."
    predictor = _predictor(model_parts, tmp_path, mirroring=False, prompts=PromptFile(path=None, cases={"c1": REPORT}))
    predictor.predict_from_files_sequential(str(images), str(tmp_path / "a"), save_probabilities=True)
    predictor.prompts = PromptFile(path=None, cases={"c1": other})
    predictor.predict_from_files_sequential(str(images), str(tmp_path / "b"), save_probabilities=True)
    fresh = _predictor(model_parts, tmp_path, mirroring=False, prompts=PromptFile(path=None, cases={"c1": other}))
    fresh.predict_from_files_sequential(str(images), str(tmp_path / "c"), save_probabilities=True)

    def probabilities(folder):
        return np.load(tmp_path / folder / "c1.npz")["probabilities"]

    assert np.abs(probabilities("a") - probabilities("b")).max() > 1e-3  # the new report changed the prediction
    np.testing.assert_allclose(probabilities("b"), probabilities("c"), atol=1e-5)  # to what it gives on its own
