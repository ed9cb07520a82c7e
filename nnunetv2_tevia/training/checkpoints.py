"""TeViA's checkpoints: written atomically, and checked on loading.

A checkpoint must agree with the trainer that loads it (``--c``, the final validation's ``--val``) on the design
and the text encoder. Same shapes from another encoder would load silently and train on meaningless features,
so a mismatch is an error that says how to fix it.
"""
import os

import torch

from nnunetv2_tevia.errors import TrainingSetupError
from nnunetv2_tevia.io_utils import remove_orphaned_temp_files
from nnunetv2_tevia.model.config import PLANS_KEY, TeViAConfig
from nnunetv2_tevia.text.cache import record_mismatches


class TeViACheckpoints:
    """Mixin placed before nnU-Net's trainer."""

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


def check_checkpoint_text(saved: dict, mine: dict, where: str, trainer_name: str, dataset: str) -> None:
    """``saved``: the checkpoint's ``plans["tevia"]``; ``mine``: the trainer's. TrainingSetupError on a mismatch."""
    theirs_design, my_design = TeViAConfig.from_dict(saved).design, TeViAConfig.from_dict(mine).design
    if theirs_design != my_design:
        writer = "nnUNetTrainerTeViA_reference" if theirs_design == "reference" else "nnUNetTrainerTeViA"
        raise TrainingSetupError(f"{where} holds a {theirs_design!r} TeViA network, but {trainer_name} builds the "
                                 f"{my_design!r} design. Continue it with the trainer that wrote it (-tr {writer} "
                                 f"or a variant of it)")
    diffs = [k for k in ("text_tokens", "text_dim", "slots") if saved.get(k) != mine.get(k)]
    diffs += record_mismatches(mine["encoder"], saved.get("encoder", {}))
    if diffs:
        theirs = saved.get("encoder", {})
        raise TrainingSetupError(
            f"{where} was trained with text encoder {theirs.get('encoder_id')} "
            f"({saved.get('text_tokens')} tokens, {saved.get('text_dim')}-dim), but the active text cache "
            f"has {mine['encoder'].get('encoder_id')} ({mine.get('text_tokens')} tokens, "
            f"{mine.get('text_dim')}-dim; differs in {', '.join(dict.fromkeys(diffs))}): re-embed with the "
            f"checkpoint's encoder: nnUNetv2_tevia_prompts embed -d {dataset} "
            f"-e {theirs.get('encoder_spec')} --max-tokens {saved.get('text_tokens')}")
