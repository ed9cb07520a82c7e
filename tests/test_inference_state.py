"""Every forward gets its own case's text and its own tile's position (issue 20): nothing is left on the network
or the predictor between calls, and a forward without what it needs raises.

The predictor runs in-process on tiny hand-made plans (2D and 3D) and a randomly initialised TeViA network, through
nnU-Net's own preprocessing and sliding window. Texts are "embedded" by a stand-in that fills a text's features with
one number per text, so the number a forward's text starts with says which report the network saw; a hook on the
first guided stage records the patch box the network used.
"""
import zlib

import numpy as np
import pytest
import torch

from nnunetv2_tevia import nnunet_seam as seam
from nnunetv2_tevia.errors import MissingTextError, TeViAError
from nnunetv2_tevia.model.config import PLANS_KEY, TeViAConfig
from nnunetv2_tevia.model.forward_text import CaseText
from nnunetv2_tevia.prompts.mirror_words import flip_combinations
from nnunetv2_tevia.prompts.prompt_file import PromptFile

TOKENS, DIM = 4, 8
REPORTS = ["two lesions, upper left and lower right.", "one lesion in the middle.", "no lesion.",
           "three lesions on the left side."]
DATASET_JSON = {"labels": {"background": 0, "lesion": 1}, "channel_names": {"0": "gray"}, "file_ending": ".png",
                "numTraining": 0}


def code(text: str) -> float:
    """The number the stand-in encoder fills a text's features with."""
    return 1.0 + zlib.crc32(text.encode()) % 1000 / 100


def fake_embed(choices, config, cache_root, mirror_map=None, **kwargs):
    def features(t):
        return np.full((config.text_tokens, config.text_dim), code(t), np.float32), np.ones(config.text_tokens, bool)
    return {k: CaseText.of(k, *features(c.text)) for k, c in choices.items()}


def which_report(value: float) -> str:
    return min(REPORTS, key=lambda t: abs(code(t) - value))


def _plans(ndim: int, patch) -> dict:
    conv = "Conv3d" if ndim == 3 else "Conv2d"
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 3, "features_per_stage": [4, 8, 16],
                            "conv_op": f"torch.nn.modules.conv.{conv}", "kernel_sizes": [[3] * ndim] * 3,
                            "strides": [[1] * ndim, [2] * ndim, [2] * ndim], "n_conv_per_stage": [1] * 3,
                            "n_conv_per_stage_decoder": [1] * 2, "conv_bias": True,
                            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{ndim}d",
                            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                            "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    resampling = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
    configuration = {"data_identifier": f"nnUNetPlans_{ndim}d", "preprocessor_name": "DefaultPreprocessor",
                     "batch_size": 2, "patch_size": list(patch), "median_image_size_in_voxels": list(patch),
                     "spacing": [1.0] * ndim, "normalization_schemes": ["NoNormalization"],
                     "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
                     "resampling_fn_seg": "resample_data_or_seg_to_shape",
                     "resampling_fn_data_kwargs": resampling, "resampling_fn_seg_kwargs": dict(resampling, is_seg=True),
                     "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                     "resampling_fn_probabilities_kwargs": resampling, "architecture": arch, "batch_dice": True}
    config = TeViAConfig(text_tokens=TOKENS, text_dim=DIM, num_guided_stages=2, encoder={"encoder_id": "fake"},
                         text_dropout=0.0)  # a model that refuses a forward without text
    return {"dataset_name": "Dataset997_InferenceState", "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": [999.0, 1.0, 1.0] if ndim == 2 else [1.0] * 3,
            "original_median_shape_after_transp": [1, *patch] if ndim == 2 else list(patch),
            "image_reader_writer": "NaturalImage2DIO" if ndim == 2 else "SimpleITKIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {"0": {"max": 1.0, "mean": 0.0, "median": 0.0, "min": 0.0,
                                                                  "percentile_00_5": 0.0, "percentile_99_5": 1.0,
                                                                  "std": 1.0}},
            "configurations": {f"{ndim}d": configuration}, PLANS_KEY: config.to_dict()}


class Spy:
    """Per forward of the network: its input, the report its text was made from and the patch box it used."""

    def __init__(self, net, monkeypatch):
        self.forwards = []
        net.register_forward_pre_hook(lambda module, args: self.forwards.append({"x": args[0].clone()}))
        resolve = net._resolve_text

        def recording(*args, **kwargs):
            text, mask = resolve(*args, **kwargs)
            self.forwards[-1]["report"] = which_report(text[0, 0, 0].item())
            return text, mask

        monkeypatch.setattr(net, "_resolve_text", recording)
        net.guidance[0].register_forward_pre_hook(self._box, with_kwargs=True)

    def _box(self, module, args, kwargs):
        box = args[2] if len(args) > 2 else kwargs.get("patch_box")
        self.forwards[-1]["box"] = None if box is None else box.detach().clone()

    def reports(self):
        return [f.get("report") for f in self.forwards]  # None: the forward refused (no text)


def make_predictor(monkeypatch, ndim=2, patch=(32, 32), mirror_axes=None, predictor_class=None, **options):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_tevia.inference import predictor as predictor_module
    from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

    monkeypatch.setattr(predictor_module, "embed_for_model", fake_embed)
    plans = PlansManager(_plans(ndim, patch))
    configuration = plans.get_configuration(f"{ndim}d")
    torch.manual_seed(0)
    net = nnUNetTrainerTeViA.build_network_architecture(plans, configuration, 1, 2, enable_deep_supervision=False)
    predictor = (predictor_class or predictor_module.nnUNetTeViAPredictor)(
        tile_step_size=0.5, use_mirroring=mirror_axes is not None, device=torch.device("cpu"), allow_tqdm=False,
        **options)
    predictor.manual_initialization(net, plans, configuration, [net.state_dict()], DATASET_JSON,
                                    "nnUNetTrainerTeViA", mirror_axes)
    return predictor, net, Spy(net, monkeypatch)


def _png_cases(folder, case_ids, shape=(24, 20)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for cid in case_ids:
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(folder / f"{cid}_0000.png")
    return [[str(folder / f"{cid}_0000.png")] for cid in case_ids]


# ----------------------------------------------------------------------------------------------- the network
def test_network_holds_no_text_between_forwards():
    """Text and box reach the network only as forward arguments (nnU-Net's validation step gets them through
    nnunet_seam.network_called_with, for that call only)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

    plans = PlansManager(_plans(2, (32, 32)))
    torch.manual_seed(0)
    net = nnUNetTrainerTeViA.build_network_architecture(plans, plans.get_configuration("2d"), 1, 2, False).eval()
    net.allow_no_report = False
    for stage in net.guidance:
        stage.gate.data.fill_(1.0)
    x = torch.randn(1, 1, 32, 32)
    text, mask = torch.randn(TOKENS, DIM), torch.ones(TOKENS, dtype=torch.bool)
    box = torch.tensor([[0.0, 0.5], [0.5, 1.0]])
    class Trainer:  # what nnU-Net's validation step sees as self.network
        network = net

    trainer = Trainer()
    with torch.no_grad():
        explicit = net(x, text[None], mask[None], patch_box=box[None])
        torch.testing.assert_close(net(x, text[None], mask[None], patch_box=box), explicit)  # an (ndim, 2) box
        with pytest.raises(MissingTextError):
            net(x)  # nothing of the forward before stays on the network
        with seam.network_called_with(trainer, text=text[None], text_mask=mask[None], patch_box=box[None]):
            torch.testing.assert_close(trainer.network(x), explicit)
        assert trainer.network is net
        with pytest.raises(ZeroDivisionError), seam.network_called_with(trainer, text=text[None]):
            1 / 0
        assert trainer.network is net  # also when the block was left by an error
        with pytest.raises(MissingTextError):
            net(x)


# ----------------------------------------------------------------------------------------------- which text
@pytest.mark.slow  # about 20 s: nnU-Net starts a preprocessing process and an export pool per call
def test_in_memory_prediction_from_files_gives_each_case_its_own_text_every_call(monkeypatch, tmp_path):
    """nnU-Net's return-in-memory mode (no output folder) names no output file: each item must still be predicted
    with its own case's report, never with texts an earlier in-memory call left behind."""
    a, b, c, d = REPORTS
    predictor, net, spy = make_predictor(monkeypatch, prompts=PromptFile(path=None, cases={"c1": a, "c2": b}))
    files = _png_cases(tmp_path / "in", ["c1", "c2"])
    images = [np.random.default_rng(i).random((1, 1, 24, 20)).astype(np.float32) * 255 for i in range(2)]
    props = [{"spacing": [999.0, 1.0, 1.0]} for _ in images]
    common = dict(num_processes_segmentation_export=1)

    predictor.predict_from_list_of_npy_arrays(images, None, props, None, num_processes=1, texts=[c, d], **common)
    assert spy.reports() == [c, d]
    spy.forwards.clear()
    segs = predictor.predict_from_files(files, None, num_processes_preprocessing=1, **common)
    assert len(segs) == 2 and spy.reports() == [a, b]  # not the arrays' c, d
    spy.forwards.clear()
    predictor.prompts = PromptFile(path=None, cases={"c1": b, "c2": a})
    predictor.predict_from_files(files, None, num_processes_preprocessing=1, **common)
    assert spy.reports() == [b, a]
    assert predictor._text is None and predictor._case_texts == {}


def sequential_setup(monkeypatch, tmp_path):
    """A predictor with reports a, b for cases c1, c2, their input files and an output folder."""
    a, b = REPORTS[:2]
    predictor, net, spy = make_predictor(monkeypatch, prompts=PromptFile(path=None, cases={"c1": a, "c2": b}))
    files = _png_cases(tmp_path / "in", ["c1", "c2"])
    (tmp_path / "out").mkdir()
    return predictor, spy, files, str(tmp_path / "out"), (a, b)


def test_a_direct_call_after_a_sequential_prediction_has_no_text(monkeypatch, tmp_path):
    """predict_from_files_sequential once left the last case's text on the network, so a later direct call of
    predict_logits_from_preprocessed_data ran on it instead of refusing."""
    predictor, spy, files, out, (a, b) = sequential_setup(monkeypatch, tmp_path)
    predictor.predict_from_files_sequential(files, out)
    assert spy.reports() == [a, b]
    predictor.predict_from_files_sequential(files, None)
    assert spy.reports()[2:] == [a, b]
    with pytest.raises(MissingTextError):
        predictor.predict_logits_from_preprocessed_data(torch.zeros(1, 1, 24, 20))
    predictor.predict_single_npy_array(np.ones((1, 1, 24, 20), np.float32), {"spacing": [999.0, 1.0, 1.0]}, text=b)
    assert spy.reports()[-1] == b
    with pytest.raises(MissingTextError):
        predictor.predict_logits_from_preprocessed_data(torch.zeros(1, 1, 24, 20))


# ----------------------------------------------------------------------------------------------- which position
def _expected_box(x: torch.Tensor, image_shape, patch) -> tuple:
    """The tile's box from its content: the image holds each voxel's flat index + 1, so the tile's smallest value
    names its first voxel, and where that value sits says which axes the forward's input was flipped along."""
    values = x[0, 0]
    first = int(round(values.min().item())) - 1
    start = np.unravel_index(first, image_shape)
    at = np.unravel_index(int(values.argmin()), values.shape)
    flipped = tuple(a for a in range(len(patch)) if at[a] == patch[a] - 1)
    box = []
    for a in range(len(patch)):
        lo, hi = start[a] / (image_shape[a] - 1), (start[a] + patch[a] - 1) / (image_shape[a] - 1)
        box.append([1 - hi, 1 - lo] if a in flipped else [lo, hi])
    return torch.tensor([box], dtype=torch.float32), flipped, tuple(int(s) for s in start)


@pytest.mark.parametrize("mirroring", [True, False], ids=["mirrored", "plain"])
def test_each_3d_tile_gets_the_box_of_its_own_slicer(monkeypatch, mirroring):
    """A 3D sliding window of 18 tiles, each predicted 8 times with nnU-Net's test-time mirroring and no word map
    (the _fullDA case): every forward's box is its tile's place in the image, mirrored along the axes its input was
    flipped, as training mirrors the box of a flipped patch."""
    patch, shape = (8, 8, 8), (16, 14, 12)
    predictor, net, spy = make_predictor(monkeypatch, ndim=3, patch=patch, mirror_axes=(0, 1, 2) if mirroring else None)
    assert predictor.mirror_map is None and net.config.patch_position
    image = (np.arange(np.prod(shape), dtype=np.float32) + 1).reshape(1, *shape)
    predictor.predict_single_npy_array(image, {"spacing": [1.0, 1.0, 1.0]}, text=REPORTS[0])

    slicers = predictor._internal_get_sliding_window_slicers(shape)
    flips = flip_combinations((0, 1, 2)) if mirroring else [()]
    assert len(slicers) == 18 and len(spy.forwards) == 18 * len(flips)
    seen = {}
    for forward in spy.forwards:
        want, flipped, start = _expected_box(forward["x"], shape, patch)
        torch.testing.assert_close(forward["box"], want)
        seen.setdefault(start, []).append(flipped)
    assert sorted(seen) == sorted(tuple(s.start for s in slicer[1:]) for slicer in slicers)
    assert all(sorted(f) == sorted(flips) for f in seen.values())  # each tile once under every flip


def test_a_forward_that_is_not_a_tile_of_the_window_has_no_position(monkeypatch):
    """Positions belong to the tiles nnU-Net cuts, not to the order of the forwards: an extra forward (say, tiles
    predicted as one batch) must not take the next tile's position, nor keep the previous one's."""
    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor

    class ExtraForward(nnUNetTeViAPredictor):
        def _internal_maybe_mirror_and_predict(self, x):
            prediction = super()._internal_maybe_mirror_and_predict(x)
            super()._internal_maybe_mirror_and_predict(torch.cat((x, x)))
            return prediction

    predictor, net, spy = make_predictor(monkeypatch, predictor_class=ExtraForward)
    with pytest.raises(TeViAError, match="position"):
        predictor.predict_single_npy_array(np.ones((1, 1, 48, 40), np.float32), {"spacing": [999.0, 1.0, 1.0]},
                                           text=REPORTS[0])
