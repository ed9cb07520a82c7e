"""Whether a checkpoint may be loaded by a trainer (``--c``, the final validation's ``--val``): the same design and
text encoder. Same shapes from another encoder would load silently and train on meaningless features, so a mismatch
is an error that says how to fix it (nnUNetTrainerTeViA.load_checkpoint).
"""
from nnunetv2_tevia.errors import TrainingSetupError
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.text.cache import record_mismatches


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
