"""One test per dependency of nnunetv2_tevia/nnunet_seam.py on nnU-Net's internals or call order.

Each test runs nnU-Net's own function (not a copy) with stand-ins where it only reads attributes, and checks the
behaviour the seam relies on; each has a twin that changes nnU-Net's behaviour on purpose (monkeypatching the nnU-Net
function) and checks that the seam then fails with an error naming that function, instead of pairing a report with
the wrong image.
"""
import inspect
import os
import types

import pytest
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia import nnunet_seam as seam
from nnunetv2_tevia.nnunet_seam import NnUNetSeamError
from nnunetv2_tevia.training.mirror_text import RecordingMirrorTransform
from test_inference_state import REPORTS, _plans, _png_cases, make_predictor, sequential_setup


# ---------------------------------------------------------------------------------------------------- 1. loaders
class _SpyLoader(nnUNetDataLoader):
    def __init__(self, data, batch_size, patch_size, final_patch_size, *args, **kwargs):  # nothing loaded
        self.data, self.final_patch_size = data, final_patch_size

    def __next__(self):  # nnU-Net draws a first batch of each loader
        return {}


class _OtherLoader:
    def __init__(self, data, *args, **kwargs):
        self.data = data

    def __next__(self):
        return {}


def _loader_trainer():
    """What nnUNetTrainer.get_dataloaders reads of its trainer, with single-process augmentation."""
    labels = types.SimpleNamespace(foreground_labels=[1], has_regions=False, foreground_regions=None,
                                   ignore_label=None)
    return types.SimpleNamespace(
        dataset_class=object, preprocessed_dataset_folder="unused", is_cascaded=False, label_manager=labels,
        configuration_manager=types.SimpleNamespace(patch_size=(16, 16), use_mask_for_norm=[False]),
        _get_deep_supervision_scales=lambda: None, batch_size=2, oversample_foreground_percent=0.33,
        probabilistic_oversampling=False, device=torch.device("cpu"),
        configure_rotation_dummyDA_mirroring_and_inital_patch_size=lambda: (0.0, False, (16, 16), None),
        get_training_transforms=lambda *a, **k: None, get_validation_transforms=lambda *a, **k: None,
        get_tr_and_val_datasets=lambda: ("train set", "val set"))


def test_get_dataloaders_builds_its_loaders_by_the_name_the_seam_swaps(monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    with seam.data_loader_class(_SpyLoader):
        loaders = nnUNetTrainer.get_dataloaders(_loader_trainer())
    seam.check_loaders(loaders, _SpyLoader)
    assert [a.data_loader.data for a in loaders] == ["train set", "val set"]


def test_loaders_built_another_way_stop_training_naming_get_dataloaders(monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    original = nnUNetTrainer.get_dataloaders

    def builds_its_own(self):  # as if nnU-Net built its loaders under another name
        import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as module
        saved = module.nnUNetDataLoader
        module.nnUNetDataLoader = _OtherLoader
        try:
            return original(self)
        finally:
            module.nnUNetDataLoader = saved

    monkeypatch.setattr(nnUNetTrainer, "get_dataloaders", builds_its_own)
    with seam.data_loader_class(_SpyLoader):
        loaders = nnUNetTrainer.get_dataloaders(_loader_trainer())
    with pytest.raises(NnUNetSeamError, match="nnUNetTrainer.get_dataloaders"):
        seam.check_loaders(loaders, _SpyLoader)


# ---------------------------------------------------------------------------------------------------- 2. mirroring
def _training_transforms(mirror_axes):
    return nnUNetTrainer.get_training_transforms((16, 16), (0.0, 0.0), None, mirror_axes, False,
                                                 use_mask_for_norm=[False], foreground_labels=[1])


def test_training_transforms_hold_one_mirror_transform_that_the_seam_replaces():
    transforms = seam.replace_mirror_transform(_training_transforms((0, 1)), RecordingMirrorTransform, (0, 1))
    mirrors = [t for t in transforms.transforms if isinstance(t, MirrorTransform)]
    assert len(mirrors) == 1 and type(mirrors[0]) is RecordingMirrorTransform and mirrors[0].allowed_axes == (0, 1)
    # without mirror axes nnU-Net adds none, and there is nothing to replace
    unmirrored = seam.replace_mirror_transform(_training_transforms(None), RecordingMirrorTransform, None)
    assert not any(isinstance(t, MirrorTransform) for t in unmirrored.transforms)


def test_mirroring_moved_out_of_the_transforms_list_stops_training_naming_get_training_transforms(monkeypatch):
    original = nnUNetTrainer.get_training_transforms

    def nested(*args, **kwargs):  # as if nnU-Net wrapped its mirroring in another transform
        inner = original(*args, **kwargs)
        return ComposeTransforms([ComposeTransforms(inner.transforms)])

    monkeypatch.setattr(nnUNetTrainer, "get_training_transforms", staticmethod(nested))
    with pytest.raises(NnUNetSeamError, match="nnUNetTrainer.get_training_transforms"):
        seam.replace_mirror_transform(nnUNetTrainer.get_training_transforms(
            (16, 16), (0.0, 0.0), None, (0, 1), False, use_mask_for_norm=[False], foreground_labels=[1]),
            RecordingMirrorTransform, (0, 1))


# ---------------------------------------------------------------------------------------------------- 3. validation step
class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1)
        self.calls = []

    def forward(self, x, text=None, text_mask=None, patch_box=None):
        self.calls.append((text, text_mask, patch_box))
        return self.conv(x)


def _validation_trainer(network):
    labels = types.SimpleNamespace(has_regions=False, has_ignore_label=False, ignore_label=None)
    return types.SimpleNamespace(network=network, device=torch.device("cpu"), enable_deep_supervision=False,
                                 label_manager=labels, loss=lambda output, target: output.mean())


def _batch():
    return {"data": torch.randn(2, 1, 8, 8), "target": torch.randint(0, 2, (2, 1, 8, 8)).float()}


def test_validation_step_calls_the_network_once_and_the_seam_gives_that_call_its_text():
    net = _Net()
    trainer = _validation_trainer(net)
    text, mask, box = torch.ones(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 2, 2)
    with seam.network_called_with(trainer, text=text, text_mask=mask, patch_box=box):
        nnUNetTrainer.validation_step(trainer, _batch())
    assert trainer.network is net and len(net.calls) == 1
    assert net.calls[0][0] is text and net.calls[0][1] is mask and net.calls[0][2] is box


def test_a_validation_step_that_calls_the_network_twice_stops_naming_validation_step(monkeypatch):
    original = nnUNetTrainer.validation_step

    def twice(self, batch):
        self.network(batch["data"])
        return original(self, batch)

    monkeypatch.setattr(nnUNetTrainer, "validation_step", twice)
    trainer = _validation_trainer(_Net())
    with pytest.raises(NnUNetSeamError, match="nnUNetTrainer.validation_step"):
        with seam.network_called_with(trainer, text=None):
            nnUNetTrainer.validation_step(trainer, _batch())


# ---------------------------------------------------------------------------------------------------- 4. final validation
def test_perform_actual_validation_builds_its_predictor_by_name_and_loads_each_case_before_predicting_it():
    """Read from nnU-Net's source: the order of the calls the final validation's NextCase relies on."""
    source = inspect.getsource(nnUNetTrainer.perform_actual_validation)
    assert "nnUNetPredictor(" in source, "nnUNetTrainer.perform_actual_validation no longer builds nnUNetPredictor"
    assert "self.dataset_class(" in source, "nnUNetTrainer.perform_actual_validation no longer uses dataset_class"
    load, predict = source.find(".load_case(k)"), source.find("predict_sliding_window_return_logits(")
    assert 0 <= load < predict, "nnUNetTrainer.perform_actual_validation no longer loads a case before predicting it"
    assert source.count("predict_sliding_window_return_logits(") == 1


class _Dataset:
    def __init__(self, *args, **kwargs):
        self.identifiers = ["a", "b"]

    def load_case(self, k):
        return k


def test_final_validation_gives_each_window_the_case_loaded_before_it(monkeypatch):
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as module

    seen = []
    trainer = types.SimpleNamespace(dataset_class=_Dataset)

    def validation_like_nnunets():  # load, then predict, per case
        predictor = module.nnUNetPredictor(tile_step_size=0.5)
        dataset = trainer.dataset_class()
        for k in dataset.identifiers:
            dataset.load_case(k)
            predictor.predict()

    def make(kwargs, next_case):
        assert kwargs == {"tile_step_size": 0.5}
        return types.SimpleNamespace(predict=lambda: seen.append(next_case.take()))

    with seam.final_validation(trainer, make):
        validation_like_nnunets()
    assert seen == ["a", "b"] and trainer.dataset_class is _Dataset


@pytest.mark.parametrize("order", ["load twice", "predict first", "never predicted"])
def test_final_validation_in_another_order_stops_naming_perform_actual_validation(order):
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as module

    trainer = types.SimpleNamespace(dataset_class=_Dataset)

    def make(kwargs, next_case):
        return types.SimpleNamespace(predict=next_case.take)

    with pytest.raises(NnUNetSeamError, match="nnUNetTrainer.perform_actual_validation"):
        with seam.final_validation(trainer, make):
            predictor, dataset = module.nnUNetPredictor(), trainer.dataset_class()
            if order == "load twice":
                dataset.load_case("a"), dataset.load_case("b")
            elif order == "predict first":
                predictor.predict()
            else:
                dataset.load_case("a")
    assert trainer.dataset_class is _Dataset


# ---------------------------------------------------------------------------------------------------- 5. sequential
def test_predict_from_files_sequential_preprocesses_each_case_from_its_files_before_predicting_it(monkeypatch,
                                                                                                  tmp_path):
    predictor, spy, files, out, (a, b) = sequential_setup(monkeypatch, tmp_path)
    predictor.predict_from_files_sequential(files, out)
    assert spy.reports() == [a, b]
    assert type(predictor.configuration_manager).__name__ == "ConfigurationManager"  # restored


def test_preprocessing_all_cases_before_predicting_stops_naming_predict_from_files_sequential(monkeypatch, tmp_path):
    predictor, spy, files, out, _ = sequential_setup(monkeypatch, tmp_path)

    def preprocess_all_first(self, lists, output_folder, *args, **kwargs):  # another order than nnU-Net 2.8.1's
        lists, _, _ = self._manage_input_and_output_lists(lists, output_folder)
        pre = self.configuration_manager.preprocessor_class(verbose=False)
        data = [pre.run_case(li, None, self.plans_manager, self.configuration_manager, self.dataset_json)[0]
                for li in lists]
        return [self.predict_logits_from_preprocessed_data(torch.from_numpy(d)) for d in data]

    monkeypatch.setattr(nnUNetPredictor, "predict_from_files_sequential", preprocess_all_first)
    with pytest.raises(NnUNetSeamError, match="nnUNetPredictor.predict_from_files_sequential"):
        predictor.predict_from_files_sequential(files, out)
    assert spy.reports() == []  # nothing was predicted with a report of the wrong case


# ---------------------------------------------------------------------------------------------------- 6. tiles
def test_each_tile_reaches_the_network_with_the_box_of_its_slicer(monkeypatch):
    from nnunetv2_tevia.inference.tile_positions import tile_box

    predictor, net, spy = make_predictor(monkeypatch, patch=(32, 32))
    image = torch.randn(1, 1, 48, 40)  # a 2D configuration's (c, 1, x, y)
    with predictor.case_text(REPORTS[0]), torch.no_grad():
        predictor.predict_sliding_window_return_logits(image)
    slicers = predictor._internal_get_sliding_window_slicers(image.shape[1:])
    expected = [tile_box(s, (1, 48, 40), (1, 48, 40)) for s in slicers]
    assert len(spy.forwards) == len(expected) > 1
    for f, box in zip(spy.forwards, expected):
        torch.testing.assert_close(f["box"][0], box)


def test_tiles_handed_over_without_the_queue_stop_naming_the_sliding_window(monkeypatch):
    def without_queue(self, data, slicers, do_on_device=True):  # as if nnU-Net no longer queued (tile, slicer)
        return self._internal_maybe_mirror_and_predict(data[slicers[0]][None])

    predictor, net, spy = make_predictor(monkeypatch, patch=(32, 32))
    monkeypatch.setattr(nnUNetPredictor, "_internal_predict_sliding_window_return_logits", without_queue)
    with pytest.raises(NnUNetSeamError, match="_internal_predict_sliding_window_return_logits"):
        with predictor.case_text(REPORTS[0]), torch.no_grad():
            predictor.predict_sliding_window_return_logits(torch.randn(1, 1, 48, 40))


# ---------------------------------------------------------------------------------------------------- 7. data iterators
def test_data_iterator_items_come_in_the_order_of_their_input_lists(monkeypatch, tmp_path):
    predictor, net, spy = make_predictor(monkeypatch)
    files = _png_cases(tmp_path / "in", ["c1", "c2", "c3"])
    outs = [str(tmp_path / "out" / c) for c in ("c1", "c2", "c3")]
    items = list(predictor._internal_get_data_iterator_from_lists_of_filenames(files, [None] * 3, outs, 1))
    assert [i[seam.CASE_KEY] for i in items] == ["c1", "c2", "c3"] and [i["ofile"] for i in items] == outs


def test_items_out_of_order_stop_the_prediction_naming_the_iterator():
    items = [{"ofile": "out/c2"}, {"ofile": "out/c1"}]  # as if nnU-Net yielded them in another order
    with pytest.raises(NnUNetSeamError, match="the_iterator"):
        list(seam.items_with_case_ids(items, ["c1", "c2"], "the_iterator", ["out/c1", "out/c2"]))
    # in-memory items have no output file: nothing to compare, every item tagged in order
    tagged = list(seam.items_with_case_ids([{"ofile": None}] * 2, ["x", "y"], "it", [None, None]))
    assert [t[seam.CASE_KEY] for t in tagged] == ["x", "y"]


# ---------------------------------------------------------------------------------------------------- NextCase
def test_next_case_pairs_each_load_with_one_prediction():
    nc = seam.NextCase("f")
    nc.announce("a")
    assert nc.take() == "a"
    with pytest.raises(NnUNetSeamError, match="without loading a case"):
        nc.take()
    nc.announce("b")
    with pytest.raises(NnUNetSeamError, match="loaded case 'c' before predicting case 'b'"):
        nc.announce("c")
    with pytest.raises(NnUNetSeamError, match="never predicted"):
        nc.finish()


# ---------------------------------------------------------------------------------------------------- 8. stock predict
@pytest.mark.parametrize("value, allowed", [(None, False), ("0", False), ("1", True), ("true", True)])
def test_stock_predict_reads_its_no_report_switch_from_the_environment(monkeypatch, value, allowed):
    if value is None:
        monkeypatch.delenv(seam.ALLOW_NO_REPORT_ENV, raising=False)
    else:
        monkeypatch.setenv(seam.ALLOW_NO_REPORT_ENV, value)
    assert seam.stock_predict_allows_no_report() is allowed


# ---------------------------------------------------------------------------------------------------- 9. scratch trainer
_DATASET_JSON = {"labels": {"background": 0, "lesion": 1}, "channel_names": {"0": "x"}, "numTraining": 1,
                 "file_ending": ".png"}


def test_a_trainer_built_outside_training_writes_only_into_a_scratch_folder(monkeypatch, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setenv("nnUNet_results", str(results))
    plans = _plans(2, (16, 16))
    with seam.scratch_trainer(nnUNetTrainer, plans, "2d", _DATASET_JSON, torch.device("cpu")) as trainer:
        folder = trainer.output_folder
        assert os.path.isdir(folder) and os.listdir(folder)  # nnU-Net made its fold folder and log there
        assert os.environ["nnUNet_results"] == str(results)  # restored as soon as the trainer is built
    assert not os.path.exists(folder) and not os.listdir(results)
    assert "continue_training" not in plans  # the caller's plans are not changed


def test_a_trainer_that_no_longer_reads_nnunet_results_when_built_stops_naming_its_init(monkeypatch, tmp_path):
    from nnunetv2.paths import _EnvPath

    # as if nnU-Net took its results folder from elsewhere than the environment at construction time
    monkeypatch.setenv("TEVIA_TEST_OTHER_RESULTS", str(tmp_path))
    monkeypatch.setattr(trainer_module, "nnUNet_results", _EnvPath("TEVIA_TEST_OTHER_RESULTS", ""))
    with pytest.raises(NnUNetSeamError, match=r"nnUNetTrainer\.__init__"):
        with seam.scratch_trainer(nnUNetTrainer, _plans(2, (16, 16)), "2d", _DATASET_JSON, torch.device("cpu")):
            pass


def test_no_mock_patch_or_call_order_outside_the_seam():
    """The seam is the only library module that swaps nnU-Net's names."""
    from pathlib import Path

    package = Path(seam.__file__).parent
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if p.name != "nnunet_seam.py" and "mock" in p.read_text()]
    assert not offenders, offenders
