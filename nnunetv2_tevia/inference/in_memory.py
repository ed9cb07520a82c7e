"""The in-memory side of TeViA's predictor: numpy arrays with their reports given explicitly.

A mixin of ``nnUNetTeViAPredictor``: each array of a call is case ``__array_<i>`` of that call only, with the text
given beside it; nothing outlives the call.
"""
from typing import Sequence

import numpy as np

from nnunetv2_tevia import nnunet_seam as seam
from nnunetv2_tevia.inference.case_ids import array_case


class InMemoryArrays:
    def get_data_iterator_from_raw_npy_data(self, image_or_list_of_images, segs_from_prev_stage_or_list_of_segs_from_prev_stage,
                                            properties_or_list_of_properties, truncated_ofname, num_processes: int = 3):
        n = len(image_or_list_of_images) if isinstance(image_or_list_of_images, list) else 1
        ofiles = truncated_ofname if isinstance(truncated_ofname, list) else [truncated_ofname] * n
        return seam.items_with_case_ids(super().get_data_iterator_from_raw_npy_data(
            image_or_list_of_images, segs_from_prev_stage_or_list_of_segs_from_prev_stage,
            properties_or_list_of_properties, truncated_ofname, num_processes), [array_case(i) for i in range(n)],
            "nnUNetPredictor.get_data_iterator_from_raw_npy_data", ofiles)

    def predict_from_list_of_npy_arrays(self, image_or_list_of_images, segs_from_prev_stage_or_list_of_segs_from_prev_stage,
                                        properties_or_list_of_properties, truncated_ofname, num_processes: int = 3,
                                        save_probabilities: bool = False, num_processes_segmentation_export: int = 3,
                                        *, texts: Sequence[str]):
        images = image_or_list_of_images if isinstance(image_or_list_of_images, list) else [image_or_list_of_images]
        texts = list(texts)
        if len(texts) != len(images):
            raise ValueError(f"got {len(texts)} texts for {len(images)} images; give one report per image")
        self._case_texts = self.embed_case_texts({array_case(i): t for i, t in enumerate(texts)})
        try:
            return super().predict_from_list_of_npy_arrays(
                image_or_list_of_images, segs_from_prev_stage_or_list_of_segs_from_prev_stage,
                properties_or_list_of_properties, truncated_ofname, num_processes, save_probabilities,
                num_processes_segmentation_export)
        finally:
            self._case_texts = {}

    def predict_single_npy_array(self, input_image: np.ndarray, image_properties: dict,
                                 segmentation_previous_stage: np.ndarray = None, output_file_truncated: str = None,
                                 save_or_return_probabilities: bool = False, *, text: str):
        with self.case_text(text):
            return super().predict_single_npy_array(input_image, image_properties, segmentation_previous_stage,
                                                    output_file_truncated, save_or_return_probabilities)
