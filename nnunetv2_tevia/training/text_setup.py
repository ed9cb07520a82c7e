"""The trainer's text set-up: the dataset's text cache, checked against its prompt file, becomes the table of every
training case's texts, and the text settings go into the plans (which the predictor reads).

A mixin of ``nnUNetTrainerTeViA``, called once from ``initialize``. One rule for a case without a report holds in
training and in prediction (inference/case_texts.py): it gets the no-report text, and the log says how many.
"""
import os

from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

from nnunetv2_tevia.model.config import PLANS_KEY, TeViAConfig
from nnunetv2_tevia.training.case_text import NO_REPORT_ROW, CaseTextTable


class TextSetup:
    def _prepare_text(self):
        """Load the dataset's active text cache, check it, and record the text settings in the plans."""
        from nnunetv2_tevia.prompts.prompt_file import load_prompts
        from nnunetv2_tevia.text.cache import load_active_cache

        dataset = self.plans_manager.dataset_name
        cache = load_active_cache(dataset)
        prompt_file = cache.manifest.get("prompt_file", "")
        if prompt_file and os.path.isfile(prompt_file):
            # also catches an edited "default"/classes: the no-report row would differ from inference's
            cache.check_up_to_date(load_prompts(prompt_file))
        else:
            self.print_to_log_file(f"WARNING: the prompt file {prompt_file!r} recorded in the text cache is not "
                                   f"here; the cached embeddings are used as they are")
        case_ids = infer_dataset_class(self.preprocessed_dataset_folder).get_identifiers(
            self.preprocessed_dataset_folder)
        no_report_allowed = bool(cache.no_report_text) or self.text_dropout > 0 or not self.use_case_text
        self.text_table = CaseTextTable.from_cache(cache, case_ids if self.use_case_text else [],
                                                   no_report_allowed, dataset, prompt_file)
        if not self.use_case_text:
            self.text_table.rows = {k: NO_REPORT_ROW for k in case_ids}
        self.text_table.to(self.device)
        without = [k for k in case_ids if self.text_table.rows[k] == NO_REPORT_ROW] if self.use_case_text else []
        if without:
            self.print_to_log_file(
                f"TeViA: {len(without)} of {len(case_ids)} training case(s) have no report and train on the no-report "
                f"text {cache.no_report_text!r}: {', '.join(without[:5])}{' ...' if len(without) > 5 else ''}")

        n_decoder_stages = self.configuration_manager.network_arch_init_kwargs["n_stages"] - 1
        num_stages = min(self.num_guided_stages, n_decoder_stages)
        config = TeViAConfig(text_tokens=cache.max_tokens, text_dim=cache.dim, design=self.tevia_design,
                             num_guided_stages=num_stages, encoder=cache.encoder_record(),
                             no_report_text=cache.no_report_text, text_dropout=self.text_dropout,
                             case_text=self.use_case_text, initial_scale=self.cross_attention_initial_scale,
                             patch_position=self.use_patch_position, text_reader=self.text_reader,
                             sentence_key=self.sentence_key, no_report_training_cases=len(without))
        config.slots = config.resolved_slots(num_stages)
        # the same dict object is saved as plans.json and, through init_args, in every checkpoint
        self.plans_manager.plans[PLANS_KEY] = config.to_dict()
        self.print_to_log_file(f"TeViA text: {cache.encoder_id} ({cache.revision}), {cache.max_tokens} tokens x "
                               f"{cache.dim} dims, {config.design} design, {num_stages} guided stages with slots "
                               f"{config.slots}; cache {cache.folder}")
        if self.mirror_text and self.location_safe_augmentation:
            self._setup_text_mirroring(cache)
