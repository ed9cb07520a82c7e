"""The one place that leans on nnU-Net's internals and call order.

Everything else in this package uses nnU-Net through methods it lets a subclass override. What is here cannot: nnU-Net
builds some objects by their module-level names inside a method, and calls ``network(x)`` or predicts a case without
saying which case it is. Each function below names the nnU-Net function it relies on, checks at run time what it can,
and fails with ``NnUNetSeamError`` naming that function when nnU-Net behaves otherwise; tests/test_nnunet_seam.py
has a test per dependency. The version pin in setup.py is the first guard, not the only one.

Dependencies, by the nnU-Net function they rely on:
  1. ``nnUNetTrainer.get_dataloaders`` builds both loaders as ``nnUNetDataLoader(...)`` (module name):
     ``data_loader_class``.
  2. ``nnUNetTrainer.get_training_transforms`` puts one ``MirrorTransform`` into the ``ComposeTransforms`` it
     returns when it mirrors: ``replace_mirror_transform``.
  3. ``nnUNetTrainer.validation_step`` calls ``self.network(data)`` once per batch: ``network_called_with``.
  4. ``nnUNetTrainer.perform_actual_validation`` builds ``nnUNetPredictor(...)`` (module name) and, per case, calls
     ``dataset_val.load_case(k)`` on ``self.dataset_class(...)`` before ``predict_sliding_window_return_logits``:
     ``final_validation`` and ``NextCase``.
  5. ``nnUNetPredictor.predict_from_files_sequential`` preprocesses each case with
     ``self.configuration_manager.preprocessor_class(...).run_case(its files, ...)`` before
     ``predict_logits_from_preprocessed_data``: ``sequential_cases`` and ``NextCase``.
  6. ``nnUNetPredictor._internal_predict_sliding_window_return_logits`` puts ``(tile, slicer)`` pairs on a
     ``Queue`` (module name) and hands each tile to ``_internal_maybe_mirror_and_predict``: ``tiles_carry_boxes``.
  7. nnU-Net's data iterators yield one item per case in the order of their input lists, with ``ofile`` the
     case's output file (or None): ``items_with_case_ids``.
  8. ``nnUNetv2_predict`` (stock) builds the network and calls ``network(x)`` with no way to pass a flag: its only
     edge is the environment, ``NNUNETV2_TEVIA_ALLOW_NO_REPORT``: ``stock_predict_allows_no_report``.
  9. ``nnUNetTrainer.__init__`` pops ``plans["continue_training"]`` (set by ``run_training.get_trainer_from_args``)
     and makes its fold folder and log under ``nnUNet_results`` as the environment says when it is constructed:
     ``scratch_trainer``.
"""
import os
import tempfile
from contextlib import contextmanager
from functools import partial
from queue import Queue
from typing import Callable, Iterable, Optional, Sequence
from unittest import mock

import nnunetv2.inference.predict_from_raw_data as predictor_module
import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module
import torch
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunetv2_tevia.errors import TeViAError

TESTED_WITH = "nnunetv2 2.8.1"
ALLOW_NO_REPORT_ENV = "NNUNETV2_TEVIA_ALLOW_NO_REPORT"
TILE_BOX = "tevia_tile_box"  # the attribute a tile of the sliding window carries its box in (dependency 6)
CASE_KEY = "tevia_case"  # the case id each item of a data iterator carries (dependency 7; nnU-Net reads its own keys)


class NnUNetSeamError(TeViAError):
    """nnU-Net no longer does what this package relies on (see nnunet_seam.py)."""

    def __init__(self, function: str, what: str):
        super().__init__(f"nnU-Net's {function} {what}. nnunetv2_tevia relies on it (nnunetv2_tevia/nnunet_seam.py) "
                         f"and is tested with {TESTED_WITH}; install that version, or report this with your nnU-Net "
                         f"version")
        self.function = function


# ---------------------------------------------------------------------------------------------------- 1. loaders
@contextmanager
def data_loader_class(loader_class: type):
    """Around ``nnUNetTrainer.get_dataloaders``: it builds its loaders as ``nnUNetDataLoader(...)``, swapped here for
    ``loader_class`` (a subclass) for the call. ``check_loaders`` then checks that the swap took."""
    with mock.patch.object(trainer_module, "nnUNetDataLoader", loader_class):
        yield


def check_loaders(augmenters: Sequence, loader_class: type) -> None:
    """Each augmenter nnU-Net returned wraps a ``loader_class`` (``data_loader`` of SingleThreadedAugmenter,
    ``generator`` of NonDetMultiThreadedAugmenter)."""
    for a in augmenters:
        loader = getattr(a, "data_loader", getattr(a, "generator", None))
        if not isinstance(loader, loader_class):
            raise NnUNetSeamError("nnUNetTrainer.get_dataloaders", f"returned {type(a).__name__} over a "
                                  f"{type(loader).__name__}, not over the loader it builds as nnUNetDataLoader(...)")


# ---------------------------------------------------------------------------------------------------- 2. mirroring
def replace_mirror_transform(transforms, recording_class: type, mirror_axes) -> object:
    """``nnUNetTrainer.get_training_transforms``'s ComposeTransforms with its MirrorTransform replaced by
    ``recording_class`` (a subclass that draws the same flips and records them), in place."""
    found = [i for i, t in enumerate(getattr(transforms, "transforms", ())) if type(t) is MirrorTransform]
    if mirror_axes and len(found) != 1:
        raise NnUNetSeamError("nnUNetTrainer.get_training_transforms", f"returned {len(found)} MirrorTransform(s) "
                              f"in its ComposeTransforms for mirror axes {tuple(mirror_axes)}, not one")
    for i in found:
        transforms.transforms[i] = recording_class(allowed_axes=transforms.transforms[i].allowed_axes)
    return transforms


# ---------------------------------------------------------------------------------------------------- 3. validation step
class _CalledWith:
    """What ``trainer.network`` is during one validation step: the network, called with the batch's text and boxes."""

    def __init__(self, network, kwargs: dict):
        self.network, self.kwargs, self.calls = network, kwargs, 0

    def __call__(self, x):
        self.calls += 1
        return self.network(x, **self.kwargs)


@contextmanager
def network_called_with(trainer, **forward_kwargs):
    """Around ``nnUNetTrainer.validation_step``, which calls ``self.network(data)``: for the call, ``trainer.network``
    passes ``forward_kwargs`` (text, mask, patch box) explicitly to every forward. The network itself holds nothing."""
    network = trainer.network
    bound = _CalledWith(network, forward_kwargs)
    trainer.network = bound
    try:
        yield
    finally:
        trainer.network = network
    if bound.calls != 1:
        raise NnUNetSeamError("nnUNetTrainer.validation_step", f"called self.network {bound.calls} times for one "
                              f"batch, not once")


# ---------------------------------------------------------------------------------------------------- 4, 5. next case
class NextCase:
    """A case nnU-Net has loaded and will predict next without naming it (dependencies 4 and 5): ``announce`` when it
    is loaded, ``take`` when its prediction starts. Two loads without a prediction, or a prediction without a load,
    mean nnU-Net's order changed: an error naming ``function``, never a report paired with the wrong image."""

    def __init__(self, function: str):
        self.function = function
        self._case: Optional[str] = None

    def announce(self, case_id: str) -> None:
        if self._case is not None:
            raise NnUNetSeamError(self.function, f"loaded case {case_id!r} before predicting case {self._case!r}, "
                                  f"which it loaded first")
        self._case = case_id

    def take(self) -> str:
        if self._case is None:
            raise NnUNetSeamError(self.function, "started a prediction without loading a case first, so its report "
                                  "is unknown")
        case, self._case = self._case, None
        return case

    def finish(self) -> None:
        if self._case is not None:
            raise NnUNetSeamError(self.function, f"loaded case {self._case!r} and never predicted it")


def _announcing_dataset(dataset_class: type, next_case: NextCase) -> type:
    class Announcing(dataset_class):
        def load_case(self, identifier):
            next_case.announce(identifier)
            return super().load_case(identifier)

    Announcing.__name__ = Announcing.__qualname__ = f"CaseAnnouncing{dataset_class.__name__}"
    return Announcing


@contextmanager
def final_validation(trainer, make_predictor: Callable[[dict, NextCase], object]):
    """Around ``nnUNetTrainer.perform_actual_validation``: its ``nnUNetPredictor(**kwargs)`` becomes
    ``make_predictor(kwargs, next_case)``, and each ``load_case`` of its validation dataset announces the case that
    the next sliding window predicts."""
    next_case = NextCase("nnUNetTrainer.perform_actual_validation")
    original = trainer.dataset_class
    if original is None:
        raise NnUNetSeamError("nnUNetTrainer.perform_actual_validation", "was reached before the trainer set its "
                              "dataset_class (nnUNetTrainer.initialize sets it)")
    built = []

    def predictor(**kwargs):
        built.append(make_predictor(kwargs, next_case))
        return built[-1]

    trainer.dataset_class = _announcing_dataset(original, next_case)
    try:
        with mock.patch.object(trainer_module, "nnUNetPredictor", predictor):
            yield
    finally:
        trainer.dataset_class = original
    next_case.finish()


class _AnnouncingConfiguration(ConfigurationManager):
    """A predictor's ConfigurationManager whose preprocessor announces each case it preprocesses (from its files)."""

    def __init__(self, original: ConfigurationManager, on_run_case: Callable[[Sequence[str]], None]):
        self.__dict__.update(original.__dict__)
        self._on_run_case = on_run_case

    @property
    def preprocessor_class(self):
        base, on_run_case = ConfigurationManager.preprocessor_class.fget(self), self._on_run_case

        class Announcing(base):
            def run_case(self, image_files, *args, **kwargs):
                on_run_case(image_files)
                return super().run_case(image_files, *args, **kwargs)

        return Announcing


@contextmanager
def sequential_cases(predictor, case_of_files: Callable[[Sequence[str]], str]):
    """Around ``nnUNetPredictor.predict_from_files_sequential``: yields the NextCase that each ``run_case`` of its
    preprocessor announces, with the case id of its input files (``case_of_files``)."""
    next_case = NextCase("nnUNetPredictor.predict_from_files_sequential")
    original = predictor.configuration_manager
    predictor.configuration_manager = _AnnouncingConfiguration(
        original, lambda files: next_case.announce(case_of_files(files)))
    try:
        yield next_case
    finally:
        predictor.configuration_manager = original
    next_case.finish()


# ---------------------------------------------------------------------------------------------------- 6. tiles
class _TaggingQueue(Queue):
    """nnU-Net's tile queue; each (tile, slicer) put on it tags the tile with its (1, ndim, 2) box."""

    def __init__(self, maxsize: int = 0, *, box_of):
        super().__init__(maxsize)
        self.box_of = box_of

    def put(self, item, block=True, timeout=None):
        if isinstance(item, tuple):  # (tile, slicer); a string marks the end
            setattr(item[0], TILE_BOX, self.box_of(item[1])[None])
        super().put(item, block, timeout)


@contextmanager
def tiles_carry_boxes(box_of_slicer: Callable[[tuple], torch.Tensor]):
    """Around ``nnUNetPredictor._internal_predict_sliding_window_return_logits``: its ``Queue`` tags every tile it
    carries with ``box_of_slicer(slicer)``, so the box goes wherever the tile goes; ``box_of_tile`` reads it."""
    with mock.patch.object(predictor_module, "Queue", partial(_TaggingQueue, box_of=box_of_slicer)):
        yield


def box_of_tile(tile: torch.Tensor) -> torch.Tensor:
    box = getattr(tile, TILE_BOX, None)
    if box is None:
        raise NnUNetSeamError(
            "nnUNetPredictor._internal_predict_sliding_window_return_logits",
            f"handed the network a tile of shape {tuple(tile.shape)} that it did not put on its Queue as (tile, "
            f"slicer), so the tile's position in the image is unknown")
    return box


# ---------------------------------------------------------------------------------------------------- 7. data iterators
def items_with_case_ids(items: Iterable[dict], case_ids: Sequence[str], function: str,
                        output_files: Optional[Sequence[Optional[str]]] = None):
    """nnU-Net's data iterators yield their items in the order of their input lists: each item is tagged with its case
    there, and an item whose output file (``ofile``) is not that case's (``output_files``) stops the prediction."""
    for i, (item, case_id) in enumerate(zip(items, case_ids)):
        expected = output_files[i] if output_files is not None else None
        if expected is not None and item.get("ofile") != expected:
            raise NnUNetSeamError(function, f"yielded the item of output {item.get('ofile')} where case {case_id!r} "
                                  f"(output {expected}) was next")
        yield dict(item, **{CASE_KEY: case_id})


# ---------------------------------------------------------------------------------------------------- 8. stock predict
def stock_predict_allows_no_report() -> bool:
    """Whether a forward without text may run on the no-report text: set for nnU-Net's own commands
    (``nnUNetv2_predict``), which cannot pass a text."""
    return os.environ.get(ALLOW_NO_REPORT_ENV, "0").lower() in ("1", "true")


# ---------------------------------------------------------------------------------------------------- 9. scratch trainer
@contextmanager
def scratch_trainer(trainer_class: type, plans: dict, configuration: str, dataset_json: dict, device: torch.device):
    """A trainer constructed as ``run_training.get_trainer_from_args`` does (fold 0), for its network and text set-up
    only: the fold folder and log that ``nnUNetTrainer.__init__`` makes go to a temporary folder, removed on exit."""
    plans = dict(plans, continue_training=False)
    with tempfile.TemporaryDirectory(prefix="tevia_scratch_trainer_") as scratch:
        with mock.patch.dict(os.environ, {"nnUNet_results": scratch}):  # restored as it was, also on error
            trainer = trainer_class(plans=plans, configuration=configuration, fold=0, dataset_json=dataset_json,
                                    device=device)
        folder = os.path.abspath(str(trainer.output_folder))
        if not folder.startswith(os.path.abspath(scratch) + os.sep):
            raise NnUNetSeamError("nnUNetTrainer.__init__", f"made its fold folder at {folder}, not under the "
                                  f"nnUNet_results ({scratch}) set while it was constructed")
        yield trainer
