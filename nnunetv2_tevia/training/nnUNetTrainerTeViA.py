"""nnUNetTrainerTeViA: nnU-Net's trainer with a text-guided decoder, the alignment loss and the prototype.

Everything that is not about text is nnU-Net's own: planning, data loading, losses, schedules,
sliding-window validation, checkpoints. Hyperparameters are attributes, as in nnU-Net; variants in
``variants/`` change one or two of them. Where nnU-Net gives no method to override (it builds its loaders and its
validation predictor by name, calls ``network(x)`` in its validation step), the trainer goes through
``nnunetv2_tevia/nnunet_seam.py``, the package's one seam with nnU-Net's internals.
"""
import os
from typing import List, Optional, Tuple

import numpy as np
import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import autocast, nn
from torch import distributed as dist

from nnunetv2_tevia import nnunet_seam as seam
from nnunetv2_tevia.errors import TeViAError, TextCacheError, TrainingSetupError
from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor
from nnunetv2_tevia.io_utils import remove_orphaned_temp_files
from nnunetv2_tevia.model.config import PLANS_KEY, TeViAConfig
from nnunetv2_tevia.model.forward_text import CaseText
from nnunetv2_tevia.model.tevia_network import TeViANetwork, unwrap
from nnunetv2_tevia.prompts.text_choice import REPORT
from nnunetv2_tevia.training.alignment import alignment_loss, foreground_mask, foreground_vectors
from nnunetv2_tevia.training.case_text import NO_REPORT_ROW, CaseTextTable, training_choices
from nnunetv2_tevia.training.checkpoints import check_checkpoint_text
from nnunetv2_tevia.training.location_safe_augmentation import location_safe_rotation
from nnunetv2_tevia.training.optimizer import PolyLRGroupScheduler, build_optimizer
from nnunetv2_tevia.training.mirror_text import (MirrorBoxLoader, RecordingMirrorTransform, text_mirror_axes,
                                                 use_word_map)
from nnunetv2_tevia.training.prototype_updates import activate_prototypes, prototype_inputs, update_prototypes
from nnunetv2_tevia.training.tevia_logger import TeViALocalLogger


class nnUNetTrainerTeViA(nnUNetTrainer):
    data_loader_class = MirrorBoxLoader  # nnU-Net's loader plus batch['patch_box'] and batch['mirror_axes']
    # True: stop when the prompt file has no word map (nnUNetTrainerTeViA_mirrorText); False: train location-safe
    require_mirror_map = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        # The network's settings start as TeViAConfig's defaults, the shipped design (model/config.py); variants
        # change them here, and _prepare_text writes them into the plans.
        # Which guided stage (model/config.py DESIGNS): "tevia" (GuidedStage) or "reference" (the reference
        # code's arrangement, nnUNetTrainerTeViA_reference). docs/architecture.md says what differs and why.
        self.tevia_design = TeViAConfig.design
        self.num_guided_stages = TeViAConfig.num_guided_stages
        # How the guided stages read the report (model/config.py TEXT_READERS; docs/architecture.md, "Reading what
        # a report means"): slots mixed from the token positions, plus the report's sentence embedding as a key
        self.text_reader = TeViAConfig.text_reader
        self.sentence_key = TeViAConfig.sentence_key
        self.alignment_weight = 0.1
        # None: the design's default (0.1; reference 0.01)
        self.cross_attention_initial_scale: Optional[float] = TeViAConfig.initial_scale
        # The text pathway's own optimizer ("adamw"); None puts it into nnU-Net's SGD with the U-Net. The U-Net
        # keeps nnU-Net's SGD either way; both follow nnU-Net's poly schedule from their own initial lr.
        self.text_optimizer: Optional[str] = "adamw"
        self.text_initial_lr = 3e-4
        self.text_weight_decay = 1e-2
        self.use_alignment = True
        self.use_prototype = True
        self.prototype_momentum = 0.99
        self.prototype_warmup_epoch: Optional[int] = None  # None: 10% of num_epochs
        self.prototype_ramp_epochs: Optional[int] = None   # None: 10% of num_epochs (at least 1)
        self.use_case_text = TeViAConfig.case_text  # False: every case gets the no-report text (_noText)
        # Positions are where a patch (training crop, sliding-window tile) lies in its image; False: in the patch
        self.use_patch_position = TeViAConfig.patch_position
        # Probability of training a sample on the no-report text, so that a case without a report is inside the
        # training distribution (docs/text_dropout.md has what it costs and gives); 0: _noTextDropout
        self.text_dropout = TeViAConfig.text_dropout
        # Train each sample on one of its case's phrasings: the report, the prompt file's "alternatives" and the
        # paraphrases the cache holds (prompts/paraphrase.py); False: always the report (_noParaphrase)
        self.sample_text_variants = True
        # Reports name sides and zones; mirroring and large rotations would pair a flipped image with
        # unflipped text. False restores nnU-Net's full augmentation and test-time mirroring (_fullDA).
        self.location_safe_augmentation = True
        self.max_rotation_degrees = 15.0
        # Mirror on the axes of the prompt file's "mirror" word map, flipping each report's words with its image
        # (_setup_text_mirroring); without a map, or with False (_locationSafe), images are not mirrored.
        self.mirror_text = True
        self.mirror_map = None  # the text cache's word map, set in initialize()

        self.text_table: Optional[CaseTextTable] = None
        self.logger.local_logger = TeViALocalLogger()

    @property
    def warmup_epoch(self) -> int:
        return self.prototype_warmup_epoch if self.prototype_warmup_epoch is not None else int(0.1 * self.num_epochs)

    @property
    def ramp_epochs(self) -> int:
        return max(1, self.prototype_ramp_epochs if self.prototype_ramp_epochs is not None
                   else int(0.1 * self.num_epochs))

    # ------------------------------------------------------------------ network
    @staticmethod
    def build_network_architecture(plans_manager: PlansManager,
                                   configuration_manager: ConfigurationManager,
                                   num_input_channels: int,
                                   num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        """The plans' own network (PlainConvUNet, ResidualEncoderUNet), wrapped with TeViA's guided stages.

        The text settings come from ``plans["tevia"]``, which the trainer writes into the results folder's
        plans.json; that is how the predictor rebuilds the same network.
        """
        if PLANS_KEY not in plans_manager.plans:
            raise TextCacheError(
                "these plans have no 'tevia' section, so the text-guided network cannot be built. In training it "
                "is added from the active text cache (run nnUNetv2_tevia_prompts embed -d DATASET first); at "
                "inference, use a model folder whose plans.json was written by nnUNetTrainerTeViA")
        base = nnUNetTrainer.build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                        num_output_channels, enable_deep_supervision)
        config = TeViAConfig.from_dict(plans_manager.plans[PLANS_KEY])
        network = TeViANetwork(base, config)
        # A forward without text is refused even for models that serve cases without a report (text dropout, the
        # default): nnUNetv2_tevia_predict gives such a case the no-report text explicitly and says so; a stock
        # nnUNetv2_predict has to be told with the environment variable that its results are text-free.
        network.allow_no_report = not config.case_text or seam.stock_predict_allows_no_report()
        return network

    def initialize(self):
        if not self.was_initialized:
            try:
                self._prepare_text()
            except TeViAError as e:
                self.print_to_log_file(f"ERROR: {e}")
                raise TrainingSetupError(str(e)) from None
        super().initialize()
        net = unwrap(self.network)
        features, mask = self.text_table.features[NO_REPORT_ROW], self.text_table.masks[NO_REPORT_ROW]
        net.set_no_report_text(features.float(), mask)

    # ------------------------------------------------------------------ text set-up
    def _prepare_text(self):
        """The dataset's active text cache, checked against its prompt file, becomes the table of every training case's
        texts; the text settings go into the plans (which the predictor reads). Which text a case gets is the one rule
        of prompts/text_choice.py (a case without a report: the no-report text or a refusal); the log says how many
        cases have none."""
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
        choices = training_choices(cache, case_ids, text_dropout=self.text_dropout, case_text=self.use_case_text,
                                   dataset=dataset, prompt_file=prompt_file)
        self.text_table = CaseTextTable.from_cache(cache, choices).to(self.device)
        without = [k for k, c in choices.items() if c.source != REPORT] if self.use_case_text else []
        if without:
            self.print_to_log_file(
                f"TeViA: {len(without)} of {len(case_ids)} training case(s) have no report and train on the no-report "
                f"text {cache.no_report_text!r}: {', '.join(without[:5])}{' ...' if len(without) > 5 else ''}")

        config = self._network_config(cache, len(without))
        # the same dict object is saved as plans.json and, through init_args, in every checkpoint
        self.plans_manager.plans[PLANS_KEY] = config.to_dict()
        self.print_to_log_file(f"TeViA text: {cache.encoder_id} ({cache.revision}), {cache.max_tokens} tokens x "
                               f"{cache.dim} dims, {config.design} design, {config.num_guided_stages} guided stages "
                               f"with slots {config.slots}; cache {cache.folder}")
        if self.mirror_text and self.location_safe_augmentation:
            self._setup_text_mirroring(cache)

    def _network_config(self, cache, no_report_training_cases: int) -> TeViAConfig:
        """The network this trainer builds, for the plans: its settings with the cache's text encoder."""
        num_stages = min(self.num_guided_stages, self.configuration_manager.network_arch_init_kwargs["n_stages"] - 1)
        config = TeViAConfig(text_tokens=cache.max_tokens, text_dim=cache.dim, design=self.tevia_design,
                             num_guided_stages=num_stages, encoder=cache.encoder_record(),
                             no_report_text=cache.no_report_text, text_dropout=self.text_dropout,
                             case_text=self.use_case_text, initial_scale=self.cross_attention_initial_scale,
                             patch_position=self.use_patch_position, text_reader=self.text_reader,
                             sentence_key=self.sentence_key, no_report_training_cases=no_report_training_cases)
        config.slots = config.resolved_slots(num_stages)
        return config

    # ------------------------------------------------------------------ mirroring with the reports' words flipped
    def _setup_text_mirroring(self, cache) -> None:
        """Use the cache's word map (training/mirror_text.py): its flipped reports in the text table, the map in the
        plans (which the predictor reads for test-time mirroring)."""
        self.mirror_map = use_word_map(cache, self.text_table, self.plans_manager.plans,
                                       len(self.configuration_manager.patch_size),
                                       required_by=type(self).__name__ if self.require_mirror_map else None,
                                       log=self.print_to_log_file)

    def _text_mirror_axes(self) -> Tuple[int, ...]:
        """The patch axes that may be flipped with the reports' words: those the word map lists."""
        return text_mirror_axes(self.mirror_map, self.plans_manager.plans, len(self.configuration_manager.patch_size))

    def _validation_text(self, case_id: str) -> CaseText:
        """The final validation's text of a case, with its flipped reports for nnU-Net's test-time mirroring."""
        return self.text_table.case_text(case_id)

    # ------------------------------------------------------------------ optimizer
    def configure_optimizers(self):
        """nnU-Net's SGD for the U-Net; the text pathway (guided stages) in its own AdamW unless
        ``text_optimizer`` is None. Both follow nnU-Net's poly schedule from their own initial lr."""
        optimizer = build_optimizer(self.network, unwrap(self.network).guidance, self.initial_lr, self.weight_decay,
                                    self.text_optimizer, self.text_initial_lr, self.text_weight_decay)
        return optimizer, PolyLRGroupScheduler(optimizer, self.num_epochs)

    # ------------------------------------------------------------------ augmentation
    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if not self.location_safe_augmentation:
            return rotation, dummy_2d, initial_patch_size, mirror_axes
        rotation, initial_patch_size = location_safe_rotation(rotation, dummy_2d, self.configuration_manager.patch_size,
                                                              self.max_rotation_degrees)
        axes = self._text_mirror_axes()
        self.inference_allowed_mirroring_axes = axes or None
        words = "with the reports' words" if self.mirror_map is not None else "with the reports as written"
        self.print_to_log_file(f"TeViA augmentation: rotation within +-{self.max_rotation_degrees} degrees, " + (
            f"mirroring patch axes {axes} {words}" if axes else "no mirroring"))
        return rotation, dummy_2d, initial_patch_size, axes or None

    @staticmethod
    def get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, *args, **kwargs):
        """nnU-Net's training transforms, with its mirroring recording the axes it flipped in each sample (what
        selects the sample's flipped report, training/mirror_text.py)."""
        transforms = nnUNetTrainer.get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales,
                                                           mirror_axes, do_dummy_2d_data_aug, *args, **kwargs)
        return seam.replace_mirror_transform(transforms, RecordingMirrorTransform, mirror_axes)

    # ------------------------------------------------------------------ text per batch
    def _batch_text(self, keys, training: bool, mirror_axes=None):
        # training reads one of each case's phrasings (its report, alternatives, paraphrases); validation the report
        sample = training and self.sample_text_variants
        rows = self.text_table.row_indices(keys, mirror_axes, rng=np.random.default_rng(
            np.random.randint(2 ** 31)) if sample else None)
        if training and self.text_dropout > 0:
            drop = np.random.random_sample(len(rows)) < self.text_dropout
            rows = [NO_REPORT_ROW if d else r for r, d in zip(rows, drop)]
        return self.text_table.lookup(rows)

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: dict) -> dict:
        data = batch['data'].to(self.device, non_blocking=True)
        target = batch['target']
        target = [i.to(self.device, non_blocking=True) for i in target] if isinstance(target, list) \
            else target.to(self.device, non_blocking=True)
        text, text_mask = self._batch_text(batch['keys'], training=True, mirror_axes=batch.get('mirror_axes'))

        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == 'cuda' else dummy_context():
            output, aux = self.network(data, text, text_mask, return_aux=True, patch_box=batch.get('patch_box'))
            seg_loss = self.loss(output, target)
            fg = self._foreground(target)
            vectors, valid = self._alignment_vectors(aux["features"], fg)
            align = alignment_loss(aux["text_vectors"], vectors, valid)
            total = seg_loss + self.alignment_weight * align if self.use_alignment else seg_loss

        if self.grad_scaler is not None:
            self.grad_scaler.scale(total).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        if self.use_prototype:
            self._update_prototypes(aux["stage_features"], fg, vectors, valid)
        return {'loss': total.detach().cpu().numpy(), 'alignment_loss': align.detach().cpu().numpy()}

    def _foreground(self, target) -> torch.Tensor:
        full_res = target[0] if isinstance(target, list) else target
        return foreground_mask(full_res, self.label_manager.has_regions, self.label_manager.ignore_label)

    def _alignment_vectors(self, features: torch.Tensor, fg: torch.Tensor) -> tuple:
        """The alignment loss's visual vector per guided stage (section 3) and which samples have foreground."""
        pairs = [foreground_vectors(features, fg, s.channels) for s in unwrap(self.network).guided_stages]
        return [p[0] for p in pairs], pairs[0][1]

    def _update_prototypes(self, stage_features: List[torch.Tensor], fg: torch.Tensor,
                           alignment_vectors: List[torch.Tensor], valid: torch.Tensor) -> None:
        """Training steps only. Every rank reaches the all-reduce, also with an empty batch foreground."""
        stages = unwrap(self.network).guided_stages
        vectors, valid = prototype_inputs(stages, stage_features, fg, alignment_vectors, valid)
        update_prototypes(stages, vectors, valid, accumulate=self.current_epoch >= self.warmup_epoch,
                          momentum=self.prototype_momentum)

    def validation_step(self, batch: dict) -> dict:
        # nnU-Net's validation step calls self.network(data): the batch's texts and patch boxes go with that call
        text, text_mask = self._batch_text(batch['keys'], training=False)
        with seam.network_called_with(self, text=text, text_mask=text_mask, patch_box=batch.get('patch_box')):
            return super().validation_step(batch)

    def get_dataloaders(self):
        """nnU-Net's loaders, with each patch's position in its image (``batch['patch_box']``) and the axes its
        mirroring flipped (``batch['mirror_axes']``)."""
        with seam.data_loader_class(self.data_loader_class):
            loaders = super().get_dataloaders()
        seam.check_loaders(loaders, self.data_loader_class)
        return loaders

    def on_train_epoch_end(self, train_outputs: List[dict]):
        super().on_train_epoch_end(train_outputs)
        align = collate_outputs(train_outputs)['alignment_loss']
        if self.is_ddp:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, align)
            align = np.concatenate([np.atleast_1d(a) for a in gathered])
        stages = unwrap(self.network).guided_stages
        if self.use_prototype and self.current_epoch >= self.warmup_epoch:
            for s in stages:  # before activation: a prototype switched on now starts at weight 0
                s.ramp_prototype(1 / self.ramp_epochs)
            for s in activate_prototypes(stages):
                self.print_to_log_file(f"prototype of a {s.channels}-channel guided stage activated "
                                       f"(mean of {int(s.prototype_count)} foreground samples)")
        active = sum(bool(s.prototype_active) for s in stages)
        gates = [round(s.gate.item(), 4) for s in stages]
        for key, value in (('alignment_losses', float(np.mean(align))), ('prototype_active_stages', active),
                           ('guided_stage_gates', float(np.mean(np.abs(gates))))):
            self.logger.log(key, value, self.current_epoch)
        self.print_to_log_file(f"alignment_loss {np.round(np.mean(align), 4)}, active prototypes {active}/"
                               f"{len(stages)}, guided stage gates {gates}")

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary file and renamed, so a crash never leaves half a file; the
        temporary files of a killed earlier run are removed."""
        remove_orphaned_temp_files(filename)
        tmp = f"{filename}.tmp-{os.getpid()}"
        super().save_checkpoint(tmp)
        if os.path.isfile(tmp):
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, filename)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's loading, after checking that the checkpoint's design and text encoder are this trainer's: same
        shapes from another encoder would load silently and train on meaningless features."""
        if isinstance(filename_or_checkpoint, str):
            # only the plans are read here (mmap: no tensor data); nnU-Net loads the file itself below
            checkpoint = torch.load(filename_or_checkpoint, map_location="cpu", weights_only=False, mmap=True)
        else:
            checkpoint = filename_or_checkpoint
        saved = checkpoint.get('init_args', {}).get('plans', {}).get(PLANS_KEY)
        if saved is not None and not self.was_initialized:
            self.initialize()
        if saved is not None:
            where = filename_or_checkpoint if isinstance(filename_or_checkpoint, str) else "the checkpoint"
            check_checkpoint_text(saved, self.plans_manager.plans[PLANS_KEY], where, self.__class__.__name__,
                                  self.plans_manager.dataset_name)
        # the argument as given: nnU-Net 2.8's load_checkpoint fails on a dict (UnboundLocalError)
        super().load_checkpoint(filename_or_checkpoint)

    # ------------------------------------------------------------------ final validation
    def perform_actual_validation(self, save_probabilities: bool = False):
        """nnU-Net's final validation with TeViA's predictor: each case's sliding window gets that case's report (with
        its flipped reports for test-time mirroring) and every tile its position in the image, as in training."""
        def predictor(kwargs: dict, next_case: seam.NextCase) -> nnUNetTeViAPredictor:
            return nnUNetTeViAPredictor(**kwargs, window_text=lambda: self._validation_text(next_case.take()))

        with seam.final_validation(self, predictor):
            super().perform_actual_validation(save_probabilities)
