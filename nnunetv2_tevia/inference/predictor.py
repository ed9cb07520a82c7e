"""nnU-Net's predictor, with each case's report set on the network before its sliding window.

The stock predictor calls ``network(x)`` per tile and never says which case it is on. This subclass
learns the case of every item it predicts (from the output file name it assigned, or from the order
of an in-memory list) and calls ``network.set_text`` first. The text is not part of the weights, so
the per-fold ``load_state_dict`` of an ensemble leaves it in place.
"""
import os
from collections import deque
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunetv2_tevia.errors import AttentionStageError, TextCacheError
from nnunetv2_tevia.inference.attention_maps import AttentionMapRecorder, save_attention_pngs
from nnunetv2_tevia.inference.case_texts import TextFeatures, embed_for_model, texts_for_cases
from nnunetv2_tevia.inference.flipped_texts import (check_prompt_map, flipped_texts, model_mirror_map,
                                                    predict_with_flipped_texts, split_flipped)
from nnunetv2_tevia.inference.prediction_records import cases_to_predict, model_fingerprint
from nnunetv2_tevia.inference.tile_positions import tile_boxes
from nnunetv2_tevia.model.config import PLANS_KEY, TeViAConfig
from nnunetv2_tevia.model.tevia_network import unwrap
from nnunetv2_tevia.prompts.prompt_file import PromptFile
from nnunetv2_tevia.text.cache import record_mismatches
from nnunetv2_tevia.model.mirror_axes import covered_map_axes, patch_map_axes

USER_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "nnunetv2_tevia", "text_cache")


def case_id_from_file(first_channel_file: str, file_ending: str) -> str:
    # nnU-Net's own rule: strip the file ending and the _XXXX channel suffix
    return os.path.basename(first_channel_file)[:-(len(file_ending) + 5)]


class nnUNetTeViAPredictor(nnUNetPredictor):
    def __init__(self, *args, prompts: Optional[PromptFile] = None, allow_missing_text: bool = False,
                 text_cache_folder: Optional[str] = None, trust_remote_code: bool = False,
                 text_encoder: Optional[str] = None, attention_maps_folder: Optional[str] = None,
                 attention_stage: Optional[int] = None, **kwargs):
        """``attention_maps_folder``: also write, per case, one heat-map PNG per text key of guided stage
        ``attention_stage`` (0 = lowest resolution; default: the finest guided stage)."""
        super().__init__(*args, **kwargs)
        self.attention_maps_folder = attention_maps_folder
        self.attention_stage = attention_stage
        self._attention: Optional[AttentionMapRecorder] = None
        self._current_case: Optional[str] = None
        self.prompts = prompts
        self.allow_missing_text = allow_missing_text
        self.text_cache_folder = text_cache_folder
        self.trust_remote_code = trust_remote_code
        self.text_encoder = text_encoder
        self.tevia_config: Optional[TeViAConfig] = None
        self._features: Dict[str, TextFeatures] = {}
        self._flipped: Dict[str, Dict[tuple, TextFeatures]] = {}  # mirrorText models: case -> flip -> features
        self.mirror_map, self.patch_to_map, self._model_folder = None, (), "the model folder"
        self._feature_texts: Dict[str, str] = {}  # the report each case's features were embedded from
        self._case_of_ofile: Dict[str, str] = {}
        self._sequential_cases: Optional[deque] = None
        self._image_shape: tuple = ()
        self._tile_boxes: deque = deque()

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

    def prepare_texts(self, texts: Dict[str, str], output_folder: Optional[str] = None,
                      mirrored: Optional[set] = None) -> None:
        """Embed ``{case id: report}`` with the model's encoder (cached) and keep the features for prediction;
        for a mirrorText model also the flipped reports of the cases in ``mirrored`` (default: all)."""
        device = self.device if self.device.type == "cuda" else None
        axes = covered_map_axes(self.allowed_mirroring_axes or (), self.patch_to_map, self.mirror_map.axis_indices) \
            if self.mirror_map is not None and self.use_mirroring else ()
        flips = flipped_texts({k: t for k, t in texts.items() if mirrored is None or k in mirrored},
                              self.mirror_map, axes) if axes else {}
        own, flipped = split_flipped(embed_for_model(
            {**texts, **flips}, self.tevia_config, self.text_cache_folder or self._own_cache_root(output_folder),
            own_cache_root=self._own_cache_root(output_folder), encoder_spec=self.text_encoder, device=device,
            trust_remote_code=self.trust_remote_code, progress=self.allow_tqdm))
        self._features.update(own)
        self._flipped.update({k: flipped.get(k, {}) for k in texts})
        self._feature_texts.update(texts)

    def _activate(self, case_id: str) -> None:
        features, mask = self._features[case_id]
        flipped = {c: (torch.from_numpy(f).float(), torch.from_numpy(m)) for c, (f, m) in
                   self._flipped.get(case_id, {}).items()}
        unwrap(self.network).set_text(torch.from_numpy(features).float(), torch.from_numpy(mask), flipped)
        self._current_case = case_id

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
        texts = texts_for_cases(self.prompts, case_ids, self.tevia_config.no_report_text, self.allow_missing_text,
                                source)
        if ofiles is not None:  # an output is kept only if this text and this model made it (prediction_records.py)
            keep = cases_to_predict(ofiles, case_ids, texts, model_fingerprint(self), self.dataset_json["file_ending"],
                                    save_probabilities, overwrite)
            lists, ofiles, prev, case_ids = ([x[i] for i in keep] for x in (lists, ofiles, prev, case_ids))
            texts = {k: texts[k] for k in case_ids}
        check_prompt_map(self.mirror_map, self.prompts, self._model_folder)
        todo = {k: t for k, t in texts.items() if self._feature_texts.get(k) != t}
        if todo:  # a case without its own report keeps the no-report text under every flip, as in training
            reported = {k for k in todo if (self.prompts.cases.get(k) or "").strip()} if self.prompts else set()
            self.prepare_texts(todo, output_folder, mirrored=reported)
        if ofiles is not None:
            self._case_of_ofile = dict(zip(ofiles, case_ids))
        self._sequential_cases = deque(case_ids)
        return lists, ofiles, prev

    def predict_from_data_iterator(self, data_iterator, save_probabilities: bool = False,
                                   num_processes_segmentation_export: int = 3):
        self._sequential_cases = None  # the items name their cases

        def with_text(items):
            for i, item in enumerate(items):
                ofile = item.get("ofile")
                if ofile is not None and ofile in self._case_of_ofile:
                    self._activate(self._case_of_ofile[ofile])
                else:
                    self._activate(self._array_case(i))
                yield item  # the caller predicts this item before asking for the next

        try:
            return super().predict_from_data_iterator(with_text(data_iterator), save_probabilities,
                                                      num_processes_segmentation_export)
        finally:
            unwrap(self.network).clear_text()

    def predict_logits_from_preprocessed_data(self, data: torch.Tensor) -> torch.Tensor:
        # predict_from_files_sequential predicts its list in order without an iterator
        if self._sequential_cases:
            self._activate(self._sequential_cases.popleft())
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
        self._image_shape = tuple(input_image.shape[1:])
        try:
            logits = super().predict_sliding_window_return_logits(input_image)
        finally:
            unwrap(self.network).clear_patch_box()
        if self._attention is not None:
            self._attention.end_window(input_image.shape[1:])
        return logits

    def _internal_predict_sliding_window_return_logits(self, data: torch.Tensor, slicers, do_on_device: bool = True):
        # also restarted when nnU-Net retries off the device; tiles are predicted in the order of the slicers
        self._tile_boxes = deque(tile_boxes(slicers, data.shape[1:], self._image_shape))
        if self._attention is not None:
            self._attention.start_window(data.shape[1:], slicers)
        return super()._internal_predict_sliding_window_return_logits(data, slicers, do_on_device)

    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        box = self._tile_boxes.popleft() if self._tile_boxes else None
        if box is not None:
            unwrap(self.network).set_patch_box(box)
        if self._attention is None:
            return self._maybe_mirror_with_texts(x, box)
        with self._attention.tile():
            return self._maybe_mirror_with_texts(x, box)

    def _maybe_mirror_with_texts(self, x: torch.Tensor, box: Optional[torch.Tensor]) -> torch.Tensor:
        axes = self.allowed_mirroring_axes if self.use_mirroring else None
        if self.mirror_map is None or not axes:
            return super()._internal_maybe_mirror_and_predict(x)
        return predict_with_flipped_texts(self.network, unwrap(self.network), x, axes, self.patch_to_map,
                                          self.mirror_map, box)

    def _write_attention_maps(self, data: torch.Tensor) -> None:
        maps = self._attention.case_maps()
        if maps is None:
            return
        case_id = self._current_case or "case"
        report = self.prompts.cases.get(case_id) if self.prompts is not None else None
        stage = self._attention.stage
        save_attention_pngs(self.attention_maps_folder, case_id, data[0].float().cpu().numpy(), maps,
                            self.attention_stage, stage.last_spatial_shape or (), stage.key_names(len(maps)), report)

    # ------------------------------------------------------------------ in-memory arrays, texts given explicitly
    def _array_case(self, i: int) -> str:
        key = f"__array_{i}"
        if key not in self._features:
            raise TextCacheError("an in-memory image reached the network without a text: pass texts= to "
                                 "predict_from_list_of_npy_arrays / text= to predict_single_npy_array")
        return key

    def _prepare_array_texts(self, texts: Sequence[str], n_images: int) -> None:
        if len(texts) != n_images:
            raise ValueError(f"got {len(texts)} texts for {n_images} images; give one report per image")
        self._features = {k: v for k, v in self._features.items() if not k.startswith("__array_")}
        self.prepare_texts({f"__array_{i}": t for i, t in enumerate(texts)})

    def predict_from_list_of_npy_arrays(self, image_or_list_of_images, segs_from_prev_stage_or_list_of_segs_from_prev_stage,
                                        properties_or_list_of_properties, truncated_ofname, num_processes: int = 3,
                                        save_probabilities: bool = False, num_processes_segmentation_export: int = 3,
                                        *, texts: Sequence[str]):
        images = image_or_list_of_images if isinstance(image_or_list_of_images, list) else [image_or_list_of_images]
        self._prepare_array_texts(list(texts), len(images))
        self._case_of_ofile = {}
        return super().predict_from_list_of_npy_arrays(
            image_or_list_of_images, segs_from_prev_stage_or_list_of_segs_from_prev_stage,
            properties_or_list_of_properties, truncated_ofname, num_processes, save_probabilities,
            num_processes_segmentation_export)

    def predict_single_npy_array(self, input_image: np.ndarray, image_properties: dict,
                                 segmentation_previous_stage: np.ndarray = None, output_file_truncated: str = None,
                                 save_or_return_probabilities: bool = False, *, text: str):
        self._prepare_array_texts([text], 1)
        self._sequential_cases = deque(["__array_0"])
        try:
            return super().predict_single_npy_array(input_image, image_properties, segmentation_previous_stage,
                                                    output_file_truncated, save_or_return_probabilities)
        finally:
            unwrap(self.network).clear_text()
