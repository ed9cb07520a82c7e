"""Text-consistent mirroring (issue 13): nnU-Net's mirroring, with each flipped sample's report flipped too.

Mirrors the axes that the prompt file's ``"mirror"`` word map covers (training/mirror_text.py), keeps the
location-safe augmentation's small rotations, trains each flipped sample on its flipped report, and records the
word map in plans.json so that test-time mirroring (the final validation, nnUNetv2_tevia_predict) flips the
reports the same way. docs/prompt_format.md, "Mirror word maps", says how to use it. Not the default: that is
for benchmark runs to decide.
"""
from unittest import mock

import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module
import torch

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.model.config import PLANS_KEY
from nnunetv2_tevia.model.tevia_network import unwrap
from nnunetv2_tevia.prompts.mirror_words import mirror_map_to_json
from nnunetv2_tevia.model.mirror_axes import axis_offset, mirrorable_patch_axes
from nnunetv2_tevia.training.mirror_text import MirrorBoxLoader, RecordingMirrorTransform
from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA


class nnUNetTrainerTeViA_mirrorText(nnUNetTrainerTeViA):
    data_loader_class = MirrorBoxLoader

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mirror_map = None  # the text cache's word map, set in initialize()

    def _prepare_text(self):
        super()._prepare_text()
        from nnunetv2_tevia.text.cache import load_active_cache

        cache = load_active_cache(self.plans_manager.dataset_name)
        if cache.mirror_map is None:
            raise TextCacheError(
                f"{type(self).__name__} flips each report with its image, but the active text cache {cache.folder} "
                f"holds no mirrored reports: add a \"mirror\" section (e.g. \"mirror\": {{\"preset\": \"2d\"}}, "
                f"docs/prompt_format.md) to {cache.manifest.get('prompt_file') or 'the prompt file'} and run "
                f"{cache.fix_command()}")
        self.mirror_map = cache.mirror_map
        offset = axis_offset(self.plans_manager.plans, len(self.configuration_manager.patch_size))
        self.text_table.add_mirror_rows(cache, self.mirror_map.axis_indices, offset)
        self.plans_manager.plans[PLANS_KEY]["mirror"] = mirror_map_to_json(self.mirror_map)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        ndim = len(self.configuration_manager.patch_size)
        axes = mirrorable_patch_axes(self.mirror_map.axis_indices, axis_offset(self.plans_manager.plans, ndim), ndim) \
            if self.mirror_map is not None else ()
        self.inference_allowed_mirroring_axes = axes or None
        self.print_to_log_file(f"TeViA mirrorText: mirroring patch axes {axes} with the reports' words, rotation "
                               f"within +-{self.max_rotation_degrees} degrees")
        return rotation, dummy_2d, initial_patch_size, axes or None

    def get_dataloaders(self):
        """nnU-Net's loaders; its mirroring records each sample's flips, which the loader adds to the batch."""
        with mock.patch.object(trainer_module, "MirrorTransform", RecordingMirrorTransform):
            return super().get_dataloaders()

    def _set_case_text(self, case_id: str) -> None:
        """The final validation's text, with the case's flipped reports for nnU-Net's test-time mirroring."""
        table = self.text_table
        row = table.row_indices([case_id])[0]
        flipped = {combo: (table.features[r].float(), table.masks[r])
                   for (k, combo), r in table.flip_rows.items() if k == case_id}
        unwrap(self.network).set_text(table.features[row].float(), table.masks[row], flipped)
