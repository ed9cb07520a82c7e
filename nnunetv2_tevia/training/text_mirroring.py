"""Text-consistent mirroring in the trainer (issue 13): nnU-Net's mirroring with each flipped sample's report
flipped too, on the axes of the prompt file's ``"mirror"`` word map.

A mixin of ``nnUNetTrainerTeViA``: the trainer calls ``_setup_text_mirroring`` once the text table exists and
``_text_mirror_axes`` when nnU-Net asks for its augmentation; ``_validation_text`` gives the final validation each
case's flipped reports for nnU-Net's test-time mirroring. The loader side (which axes each sample was flipped
along) is in mirror_text.py, the axis maths in model/mirror_axes.py.
"""
from typing import Tuple

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.inference.flipped_texts import CaseText
from nnunetv2_tevia.model.config import PLANS_KEY
from nnunetv2_tevia.model.mirror_axes import mirrorable_patch_axes, patch_map_axes
from nnunetv2_tevia.prompts.mirror_words import mirror_map_to_json


class TextMirroring:
    # True: stop when the prompt file has no word map (nnUNetTrainerTeViA_mirrorText); False: train location-safe
    require_mirror_map = False

    def _setup_text_mirroring(self, cache) -> None:
        """Use the cache's word map: add the flipped reports' rows and record the map in the plans (which the
        predictor reads for test-time mirroring)."""
        self.mirror_map = cache.mirror_map
        if self.mirror_map is None:
            if self.require_mirror_map:
                raise TextCacheError(
                    f"{type(self).__name__} flips each report with its image, but the active text cache "
                    f"{cache.folder} holds no mirrored reports: add a \"mirror\" section (e.g. \"mirror\": "
                    f"{{\"preset\": \"2d\"}}, docs/prompt_format.md) to "
                    f"{cache.manifest.get('prompt_file') or 'the prompt file'} and run {cache.fix_command()}")
            self.print_to_log_file("TeViA: the prompt file has no \"mirror\" word map, so images are not mirrored "
                                   "(reports name sides); add one to train with mirrored images and reports "
                                   "(docs/prompt_format.md, Mirror word maps)")
            return
        patch_to_map = patch_map_axes(self.plans_manager.plans, len(self.configuration_manager.patch_size))
        self.text_table.add_mirror_rows(cache, self.mirror_map.axis_indices, patch_to_map)
        self.plans_manager.plans[PLANS_KEY]["mirror"] = mirror_map_to_json(self.mirror_map)

    def _text_mirror_axes(self) -> Tuple[int, ...]:
        """The patch axes that may be flipped with the reports' words: those the word map lists."""
        if self.mirror_map is None:
            return ()
        ndim = len(self.configuration_manager.patch_size)
        return mirrorable_patch_axes(self.mirror_map.axis_indices, patch_map_axes(self.plans_manager.plans, ndim))

    def _validation_text(self, case_id: str) -> CaseText:
        """The final validation's text of a case, with its flipped reports for nnU-Net's test-time mirroring."""
        table = self.text_table
        row = table.row_indices([case_id])[0]
        flipped = {combo: (table.features[r], table.masks[r]) for combo, r in table.flip_rows.get(case_id, {}).items()}
        return CaseText.of(case_id, table.features[row], table.masks[row], flipped)
