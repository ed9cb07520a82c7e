"""nnU-Net's predictor, with every forward given its case's report and its tile's position.

The stock predictor calls ``network(x)`` per tile and never says which case it is on. This subclass names the case
of every item where nnU-Net still knows it (the input files of a data iterator's item, the files each case of
``predict_from_files_sequential`` is preprocessed from, the text given with an in-memory array, the case the final
validation loaded), predicts the item inside ``_predicting(its text)``, and calls the network itself with the text
and the tile's box as forward arguments (``_internal_maybe_mirror_and_predict``). That is the one way a case's text
reaches a forward. Nothing is set on the network, and nothing outlives its call: a forward outside a prediction call
gets no text and the network refuses it (MissingTextError). What depends on nnU-Net's call order is in
nnunetv2_tevia/nnunet_seam.py.
"""
import os
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Callable, Dict, Optional

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunetv2_tevia import nnunet_seam as seam
from nnunetv2_tevia.errors import AttentionStageError, MissingTextError, TextCacheError
from nnunetv2_tevia.inference.attention_maps import AttentionMapRecorder, save_attention_pngs
from nnunetv2_tevia.inference.case_ids import array_case, case_id_from_file
from nnunetv2_tevia.inference.case_texts import embed_for_model, given_texts, texts_for_cases
from nnunetv2_tevia.inference.in_memory import InMemoryArrays
from nnunetv2_tevia.inference.mirrored_prediction import (check_prompt_map, forward_inputs, mirrored_prediction,
                                                          model_mirror_map)
from nnunetv2_tevia.inference.prediction_records import cases_to_predict, model_fingerprint
from nnunetv2_tevia.inference.tile_positions import tile_box
from nnunetv2_tevia.model.config import PLANS_KEY, TeViAConfig
from nnunetv2_tevia.model.forward_text import CaseText
from nnunetv2_tevia.model.tevia_network import unwrap
from nnunetv2_tevia.prompts.prompt_file import PromptFile
from nnunetv2_tevia.prompts.text_choice import TextChoice
from nnunetv2_tevia.text.cache import record_mismatches
from nnunetv2_tevia.model.mirror_axes import covered_map_axes, patch_map_axes

USER_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "nnunetv2_tevia", "text_cache")


class nnUNetTeViAPredictor(InMemoryArrays, nnUNetPredictor):
    def __init__(self, *args, prompts: Optional[PromptFile] = None, allow_missing_text: bool = False,
                 text_cache_folder: Optional[str] = None, trust_remote_code: bool = False,
                 text_encoder: Optional[str] = None, attention_maps_folder: Optional[str] = None,
                 attention_stage: Optional[int] = None, window_text: Optional[Callable[[], CaseText]] = None,
                 **kwargs):
        """``attention_maps_folder``: also write, per case, one heat-map PNG per text key of guided stage
        ``attention_stage`` (0 = lowest resolution; default: the finest guided stage). ``window_text``: gives the
        text of each sliding window started outside a prediction call (nnU-Net's final validation calls
        ``predict_sliding_window_return_logits`` per case and names none)."""
        super().__init__(*args, **kwargs)
        self.attention_maps_folder = attention_maps_folder
        self.attention_stage = attention_stage
        self.window_text = window_text
        self._attention: Optional[AttentionMapRecorder] = None
        self.prompts = prompts
        self.allow_missing_text = allow_missing_text
        self.text_cache_folder = text_cache_folder
        self.trust_remote_code = trust_remote_code
        self.text_encoder = text_encoder
        self.tevia_config: Optional[TeViAConfig] = None
        self.mirror_map, self.patch_to_map, self._model_folder = None, (), "the model folder"
        # The texts of the current public call by case id, and the text of the case being predicted. Each call
        # sets its own and clears them when it ends, also on error, so no call can reach another call's texts.
        self._case_texts: Dict[str, CaseText] = {}
        self._text: Optional[CaseText] = None
        self._sequential: Optional[seam.NextCase] = None  # in predict_from_files_sequential: the case preprocessed last
        self._image_shape: Optional[tuple] = None  # of the current sliding window's image, before nnU-Net pads it

    # ------------------------------------------------------------------ model
    def initialize_from_trained_model_folder(self, model_training_output_dir: str,
                                             use_folds=None, checkpoint_name: str = 'checkpoint_final.pth'):
        super().initialize_from_trained_model_folder(model_training_output_dir, use_folds, checkpoint_name)
        if PLANS_KEY not in self.plans_manager.plans:
            raise TextCacheError(f"{model_training_output_dir}/plans.json has no 'tevia' section: this model was "
                                 f"not trained with nnUNetTrainerTeViA; use nnUNetv2_predict for it")
        self.tevia_config = TeViAConfig.from_dict(self.plans_manager.plans[PLANS_KEY])
        self._check_folds_agree(model_training_output_dir, use_folds, checkpoint_name)
        self._model_folder = model_training_output_dir
        self._setup_mirror()
        self._setup_attention_maps()

    def manual_initialization(self, network, plans_manager, configuration_manager, parameters, dataset_json,
                              trainer_name, inference_allowed_mirroring_axes):
        super().manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                      trainer_name, inference_allowed_mirroring_axes)
        self.tevia_config = TeViAConfig.from_dict(plans_manager.plans[PLANS_KEY])
        self._setup_mirror()
        self._setup_attention_maps()

    def _setup_mirror(self) -> None:
        """A mirrorText model's word map (plans.json): its test-time flips are predicted with flipped reports."""
        self.mirror_map = model_mirror_map(self.plans_manager.plans[PLANS_KEY], f"{self._model_folder}/plans.json")
        self.patch_to_map = patch_map_axes(self.plans_manager.plans, len(self.configuration_manager.patch_size))

    def _check_folds_agree(self, folder, use_folds, checkpoint_name):
        """Folds trained on another encoder would load (same shapes) and give garbage: refuse them."""
        if use_folds is None:
            use_folds = self.auto_detect_available_folds(folder, checkpoint_name)
        mine = self.tevia_config.encoder
        for f in ([use_folds] if isinstance(use_folds, str) else use_folds):
            path = os.path.join(folder, f"fold_{f}", checkpoint_name)
            ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
            theirs = ckpt.get("init_args", {}).get("plans", {}).get(PLANS_KEY, {}).get("encoder", {})
            diffs = record_mismatches(mine, theirs) if theirs else []
            if diffs:
                key = diffs[0]
                raise TextCacheError(
                    f"{path} was trained with text encoder {theirs.get('encoder_id')} ({key}="
                    f"{theirs.get(key)}), but {folder}/plans.json records {mine.get('encoder_id')} ({key}="
                    f"{mine.get(key)}). Folds of one model must share the encoder: retrain that fold, or "
                    f"predict with -f naming only matching folds")

    # ------------------------------------------------------------------ texts
    def _own_cache_root(self, output_folder: Optional[str]) -> str:
        return os.path.join(output_folder, ".tevia_text_cache") if output_folder else USER_CACHE

    def embed_case_texts(self, texts: Dict[str, str], output_folder: Optional[str] = None) -> Dict[str, CaseText]:
        """Embed the reports given with in-memory arrays, ``{case id: report}``, with the model's encoder: each case's
        CaseText. A blank report is a case without one (prompts/text_choice.py decides its text)."""
        return self._embed(given_texts(texts, self.tevia_config, self.allow_missing_text), output_folder)

    def _embed(self, choices: Dict[str, TextChoice], output_folder: Optional[str] = None) -> Dict[str, CaseText]:
        """Each case's CaseText (cached on disk); for a word-map model with its report's flips along the axes this
        predictor mirrors. A case without a report keeps its stand-in text under every flip, as in training."""
        if not choices:  # no encoder start-up for nothing
            return {}
        device = self.device if self.device.type == "cuda" else None
        axes = covered_map_axes(self.allowed_mirroring_axes or (), self.patch_to_map, self.mirror_map.axis_indices) \
            if self.mirror_map is not None and self.use_mirroring else ()
        return embed_for_model(
            choices, self.tevia_config, self.text_cache_folder or self._own_cache_root(output_folder),
            mirror_map=self.mirror_map.only(axes) if axes else None,
            own_cache_root=self._own_cache_root(output_folder), encoder_spec=self.text_encoder, device=device,
            trust_remote_code=self.trust_remote_code, progress=self.allow_tqdm)

    def _text_of(self, case_id: str) -> CaseText:
        text = self._case_texts.get(case_id)
        if text is None:
            raise MissingTextError(
                f"case {case_id!r} has no text in this prediction call: predict files with predict_from_files, "
                f"in-memory arrays with predict_from_list_of_npy_arrays(..., texts=[one report per image]) or "
                f"predict_single_npy_array(..., text=REPORT)")
        return text

    @contextmanager
    def _predicting(self, text: CaseText):
        """The case whose forwards run inside the block; the previous one (normally none) is back on exit, also on
        error."""
        previous, self._text = self._text, text
        try:
            yield
        finally:
            self._text = previous

    @contextmanager
    def case_text(self, report: str, case_id: str = array_case(0)):
        """The report of nnU-Net's lower-level calls inside the block (``predict_logits_from_preprocessed_data``,
        ``predict_sliding_window_return_logits``), embedded like every other; outside such a block they refuse."""
        self._case_texts = self.embed_case_texts({case_id: report})
        try:
            with self._predicting(self._case_texts[case_id]):
                yield
        finally:
            self._case_texts = {}

    # ------------------------------------------------------------------ which case is next
    def _manage_input_and_output_lists(self, list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
                                       folder_with_segs_from_prev_stage=None, overwrite=True, part_id=0,
                                       num_parts=1, save_probabilities=False):
        lists, ofiles, prev = super()._manage_input_and_output_lists(
            list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
            folder_with_segs_from_prev_stage, True, part_id, num_parts, save_probabilities)  # overwrite: below
        case_ids = [case_id_from_file(files[0], self.dataset_json["file_ending"]) for files in lists]
        output_folder = output_folder_or_list_of_truncated_output_files \
            if isinstance(output_folder_or_list_of_truncated_output_files, str) else \
            (os.path.dirname(ofiles[0]) if ofiles else None)
        # every call reads the reports again: ``self.prompts`` may have changed since a case was last embedded
        source = list_of_lists_or_source_folder if isinstance(list_of_lists_or_source_folder, str) else "the input"
        texts = texts_for_cases(self.prompts, case_ids, self.tevia_config, self.allow_missing_text, source)
        if ofiles is not None:  # an output is kept only if this text and this model made it (prediction_records.py)
            keep = cases_to_predict(ofiles, case_ids, {k: c.text for k, c in texts.items()}, model_fingerprint(self),
                                    self.dataset_json["file_ending"], save_probabilities, overwrite)
            lists, ofiles, prev, case_ids = ([x[i] for i in keep] for x in (lists, ofiles, prev, case_ids))
            texts = {k: texts[k] for k in case_ids}
        check_prompt_map(self.mirror_map, self.prompts, self._model_folder)
        # every call embeds its own texts (the disk cache makes a repeat cheap): the reports may have changed since
        self._case_texts = self._embed(texts, output_folder)
        return lists, ofiles, prev

    def _internal_get_data_iterator_from_lists_of_filenames(self, input_list_of_lists, seg_from_prev_stage_files,
                                                            output_filenames_truncated, num_processes):
        # the case comes from the item's own input files, also in the return-in-memory mode (no output file names)
        case_ids = [case_id_from_file(files[0], self.dataset_json["file_ending"]) for files in input_list_of_lists]
        return seam.items_with_case_ids(super()._internal_get_data_iterator_from_lists_of_filenames(
            input_list_of_lists, seg_from_prev_stage_files, output_filenames_truncated, num_processes), case_ids,
            "nnUNetPredictor._internal_get_data_iterator_from_lists_of_filenames", output_filenames_truncated)

    def predict_from_data_iterator(self, data_iterator, save_probabilities: bool = False,
                                   num_processes_segmentation_export: int = 3):
        items = self._each_in_its_case(data_iterator)
        try:
            return super().predict_from_data_iterator(items, save_probabilities, num_processes_segmentation_export)
        finally:
            items.close()  # leaves the last item's case also when nnU-Net stopped half-way
            self._case_texts = {}

    def _each_in_its_case(self, items):
        for item in items:
            if seam.CASE_KEY not in item:
                raise MissingTextError("an item of the data iterator names no case, so its text is unknown: make "
                                       "the iterator with this predictor (predict_from_files, or "
                                       "predict_from_list_of_npy_arrays(..., texts=...))")
            with self._predicting(self._text_of(item[seam.CASE_KEY])):
                yield item  # nnU-Net predicts this item before it asks for the next

    def predict_from_files_sequential(self, list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
                                      save_probabilities: bool = False, overwrite: bool = True,
                                      folder_with_segs_from_prev_stage: str = None):
        # nnU-Net's loop preprocesses each case from its files and predicts it, naming none: the files name the case
        # (the parameter names are nnU-Net's: it saves them by name into predict_from_raw_data_args.json)
        with seam.sequential_cases(self, lambda files: case_id_from_file(files[0], self.dataset_json["file_ending"])) \
                as self._sequential:
            try:
                return super().predict_from_files_sequential(
                    list_of_lists_or_source_folder, output_folder_or_list_of_truncated_output_files,
                    save_probabilities, overwrite, folder_with_segs_from_prev_stage)
            finally:
                self._sequential, self._case_texts = None, {}

    def predict_logits_from_preprocessed_data(self, data: torch.Tensor) -> torch.Tensor:
        if self._sequential is not None:
            with self._predicting(self._text_of(self._sequential.take())):
                return self._logits_and_maps(data)
        return self._logits_and_maps(data)

    def _logits_and_maps(self, data: torch.Tensor) -> torch.Tensor:
        if self._attention is None:
            return super().predict_logits_from_preprocessed_data(data)
        self._attention.start_case()
        logits = super().predict_logits_from_preprocessed_data(data)
        self._write_attention_maps(data)
        return logits

    # ------------------------------------------------------------------ attention maps
    def _setup_attention_maps(self) -> None:
        if not self.attention_maps_folder:
            return
        stages = unwrap(self.network).guided_stages
        k = len(stages) - 1 if self.attention_stage is None else self.attention_stage
        if not 0 <= k < len(stages):
            raise AttentionStageError(f"--attention-stage {k}: this model has {len(stages)} guided stages, numbered 0 "
                             f"(lowest resolution) to {len(stages) - 1}")
        self.attention_stage = k
        self._attention = AttentionMapRecorder(stages[k])

    # ------------------------------------------------------------------ sliding window: tile positions, maps
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor):
        outside = self._text is None and self.window_text is not None
        self._image_shape = tuple(input_image.shape[1:])  # tile boxes are measured in the image, not its padding
        try:
            with self._predicting(self.window_text()) if outside else nullcontext():
                logits = super().predict_sliding_window_return_logits(input_image)
        finally:
            self._image_shape = None
        if self._attention is not None:
            self._attention.end_window(input_image.shape[1:])
        return logits

    def _internal_predict_sliding_window_return_logits(self, data: torch.Tensor, slicers, do_on_device: bool = True):
        if self._attention is not None:
            self._attention.start_window(data.shape[1:], slicers)
        box_of = partial(tile_box, padded_shape=tuple(data.shape[1:]), image_shape=self._image_shape or data.shape[1:])
        with seam.tiles_carry_boxes(box_of):
            return super()._internal_predict_sliding_window_return_logits(data, slicers, do_on_device)

    @torch.inference_mode()
    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        # nnU-Net's test-time mirroring, with each forward given its text and its tile's box, both flipped with it
        box = seam.box_of_tile(x) if unwrap(self.network).config.patch_position else None
        axes = self.allowed_mirroring_axes if self.use_mirroring else None
        inputs_of = forward_inputs(self._text, box, self.patch_to_map, self.mirror_map)
        with self._attention.tile() if self._attention is not None else nullcontext():
            return mirrored_prediction(self.network, x, axes or (), inputs_of)

    def _write_attention_maps(self, data: torch.Tensor) -> None:
        maps = self._attention.case_maps()
        if maps is None:
            return
        case_id = self._text.case_id if self._text is not None else "case"
        report = self.prompts.cases.get(case_id) if self.prompts is not None else None
        stage = self._attention.stage
        save_attention_pngs(self.attention_maps_folder, case_id, data[0].float().cpu().numpy(), maps,
                            self.attention_stage, stage.last_spatial_shape or (), stage.key_names(len(maps)), report)
