"""Tiny budgets for the tests: a few iterations per epoch, nothing like a real training.

Not part of the package (a user's ``-tr`` search never sees them): tests/conftest.py puts this folder on
PYTHONPATH and tests/ext_trainer on ``nnUNet_extTrainer`` for the test session and the commands it runs."""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA
from nnunetv2_tevia.training.variants.mirror_text import nnUNetTrainerTeViA_mirrorText
from nnunetv2_tevia.training.variants.reference import nnUNetTrainerTeViA_reference


class _Tiny:
    """Mixin placed before the trainer: 2 epochs of 3 iterations (the prototype warms up in epoch 0 and runs on
    momentum in epoch 1)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2


class nnUNetTrainerTeViA_tiny(_Tiny, nnUNetTrainerTeViA):
    pass


class nnUNetTrainerTeViA_tinySaveEveryEpoch(nnUNetTrainerTeViA_tiny):
    """Checkpoints after every epoch, for interruption and --c tests."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 4
        self.save_every = 1


class nnUNetTrainerTeViA_reference_tiny(_Tiny, nnUNetTrainerTeViA_reference):
    """The reference design with the tiny budget."""


class nnUNetTrainer_tevia_tiny(_Tiny, nnUNetTrainer):
    """Plain nnU-Net (no text) with the tiny budget: the pretraining run of fine-tuning tests."""


class nnUNetTrainerTeViA_mirrorText_tiny(_Tiny, nnUNetTrainerTeViA_mirrorText):
    """Text-consistent mirroring with the tiny budget."""


class nnUNetTrainerTeViA_pairingCheck(nnUNetTrainerTeViA):
    """Checks that every sample's text is its own case's report, flipped as its image was (the active text cache's
    features, looked up here by case id, independently of the trainer's text table): per sample of every training and
    validation step, and per forward of nnU-Net's final validation, whose case it learns from the dataset's
    ``load_case``. For runs with data-augmentation workers (``nnUNet_n_proc_DA`` > 0), which build the batches in
    other processes. One epoch of 3 iterations; what was checked goes to ``pairing_checks.json`` in the fold folder."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1, 3, 2
        # one text per case and flip, the report's, so the check is exact: no other phrasings, no text dropout
        self.sample_text_variants, self.text_dropout = False, 0.0
        self._seen, self._validating = [], None
        self.checks = {"train_samples": 0, "flipped_train_samples": 0, "validation_samples": 0, "final_validation": {}}

    def initialize(self):
        from nnunetv2_tevia.model.tevia_network import unwrap
        from nnunetv2_tevia.text.cache import load_active_cache

        super().initialize()
        self._cache = load_active_cache(self.plans_manager.dataset_name)
        net = unwrap(self.network)
        resolve = net._resolve_text

        def recording(*args, **kwargs):  # the text each forward actually uses, and the case being validated
            text, mask = resolve(*args, **kwargs)
            self._seen.append((self._validating, text.detach().float().cpu()))
            return text, mask

        net._resolve_text = recording

    def _expected(self, case_id: str, patch_axes) -> torch.Tensor:
        from nnunetv2_tevia.model.mirror_axes import covered_map_axes, patch_map_axes

        map_axes = ()
        if self.mirror_map is not None:
            patch_to_map = patch_map_axes(self.plans_manager.plans, len(self.configuration_manager.patch_size))
            map_axes = covered_map_axes(patch_axes, patch_to_map, self.mirror_map.axis_indices)
        return torch.from_numpy(self._cache.mirrored_features(case_id, map_axes)[0]).float()

    def _check_batch(self, batch: dict, what: str) -> None:
        (_, text), = self._seen  # one forward per step
        flips = batch.get("mirror_axes")
        for b, key in enumerate(batch["keys"]):
            axes = tuple(torch.nonzero(flips[b]).flatten().tolist()) if flips is not None else ()
            if not torch.equal(text[b], self._expected(key, axes)):
                raise AssertionError(f"{what}: sample {b} of case {key} (flipped along {axes}) got another text")
            self.checks["flipped_train_samples"] += bool(axes)
        self.checks[f"{what}_samples"] += len(batch["keys"])

    def train_step(self, batch: dict) -> dict:
        self._seen.clear()
        out = super().train_step(batch)
        self._check_batch(batch, "train")
        return out

    def validation_step(self, batch: dict) -> dict:
        self._seen.clear()
        out = super().validation_step(batch)
        self._check_batch(batch, "validation")
        return out

    def perform_actual_validation(self, save_probabilities: bool = False):
        import json
        import os

        from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

        from nnunetv2_tevia.prompts.mirror_words import flip_combinations

        trainer, original = self, self.dataset_class or infer_dataset_class(self.preprocessed_dataset_folder)

        class Recording(original):
            def load_case(self, identifier):
                trainer._validating = identifier
                return super().load_case(identifier)

        self.dataset_class, self._seen = Recording, []
        try:
            super().perform_actual_validation(save_probabilities)
        finally:
            self.dataset_class, self._validating = original, None
        flips = flip_combinations(tuple(self.inference_allowed_mirroring_axes or ()))
        for case_id in dict.fromkeys(c for c, _ in self._seen):
            texts = [t for c, t in self._seen if c == case_id]
            for i, text in enumerate(texts):  # each tile: the report, then its flips in nnU-Net's order
                if not torch.equal(text[0], self._expected(case_id, flips[i % len(flips)])):
                    raise AssertionError(f"final validation: forward {i} of case {case_id} got another text")
            self.checks["final_validation"][case_id] = len(texts)
        with open(os.path.join(self.output_folder, "pairing_checks.json"), "w") as f:
            json.dump(self.checks, f, indent=1)
