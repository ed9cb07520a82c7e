"""Fine-tuning TeViA from a plain nnU-Net checkpoint.

``nnUNetv2_train -pretrained_weights`` requires every key of the new network to be in the checkpoint, so
a plain nnU-Net checkpoint (no guided stages) is refused for a TeViA trainer. ``expand_checkpoint``
builds the network that ``nnUNetv2_train -tr TRAINER`` will build (same plans, same active text cache,
same trainer variant), overlays every plain weight on it and saves the result. The guided stages keep
their fresh initialisation; the prototypes start inactive, as in any new training.
"""
import contextlib
import io
import os
from typing import Dict, Tuple

import torch
from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

from nnunetv2_tevia.errors import TeViAError
from nnunetv2_tevia.io_utils import atomic_torch_save
from nnunetv2_tevia.model.config import PLANS_KEY
from nnunetv2_tevia.nnunet_seam import scratch_trainer
from nnunetv2_tevia.training.case_text import NO_REPORT_ROW

# nnU-Net's loader never transfers the segmentation heads, so a checkpoint pretrained on another label
# set is fine there; the same is allowed here.
SEG_LAYER_KEY = ".seg_layers."
# TeViANetwork keeps the plans-built network's modules under these names (see tevia_network.py)
BASE_PREFIXES = ("encoder.", "decoder.")


def build_tevia_network(dataset_name_or_id, configuration: str, plans_identifier: str = "nnUNetPlans",
                        trainer_name: str = "nnUNetTrainerTeViA") -> Tuple[torch.nn.Module, dict]:
    """The freshly initialised network ``nnUNetv2_train`` would build for this trainer, and its ``plans["tevia"]``."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunetv2_tevia.training.nnUNetTrainerTeViA import nnUNetTrainerTeViA

    dataset = maybe_convert_to_dataset_name(dataset_name_or_id)
    folder = join(nnUNet_preprocessed.require(), dataset)
    plans_file = join(folder, plans_identifier + ".json")
    if not isfile(plans_file):
        raise TeViAError(f"no plans {plans_file}. Plan and preprocess first: nnUNetv2_tevia_plan_and_preprocess "
                         f"-d {dataset} -c {configuration} (with -pl for other planners)")
    with contextlib.redirect_stdout(io.StringIO()):  # the search narrates every folder it looks in
        try:
            trainer_class = recursive_find_trainer_class_by_name(trainer_name)
        except RuntimeError:
            raise TeViAError(f"no trainer class named {trainer_name} (nnU-Net's and the TeViA trainers were "
                             f"searched); check the spelling, e.g. nnUNetTrainerTeViA") from None
    if not issubclass(trainer_class, nnUNetTrainerTeViA):
        raise TeViAError(f"{trainer_name} is not a TeViA trainer; expanding a checkpoint is only needed for "
                         f"nnUNetTrainerTeViA and its variants (a plain trainer takes the checkpoint as it is)")
    plans = load_json(plans_file)
    dataset_json = load_json(join(folder, "dataset.json"))
    with contextlib.redirect_stdout(io.StringIO()), \
            scratch_trainer(trainer_class, plans, configuration, dataset_json, torch.device("cpu")) as trainer:
        # the trainer's own text set-up: cache checks, guided-stage count and slots, plans["tevia"]
        trainer._prepare_text()
        network = trainer.build_network_architecture(
            trainer.plans_manager, trainer.configuration_manager,
            determine_num_input_channels(trainer.plans_manager, trainer.configuration_manager, dataset_json),
            trainer.label_manager.num_segmentation_heads, trainer.enable_deep_supervision)
    network.set_no_report_text(trainer.text_table.features[NO_REPORT_ROW].float().cpu(),
                               trainer.text_table.masks[NO_REPORT_ROW].cpu())
    return network, trainer.plans_manager.plans[PLANS_KEY]


def overlay_plain_weights(tevia_state: Dict[str, torch.Tensor], plain_state: Dict[str, torch.Tensor],
                          source: str) -> Dict[str, torch.Tensor]:
    """``tevia_state`` with every plain weight put in; an error names the first key that does not fit."""
    fix = ("the checkpoint comes from other plans or another network. Pretrain with the same plans (nnUNetv2_train "
           "-p PLANS), or transfer the plans first (nnUNetv2_move_plans_between_datasets)")
    out = dict(tevia_state)
    for key, value in plain_state.items():
        if key not in tevia_state:
            raise TeViAError(f"{source}: weight {key!r} has no counterpart in the TeViA network: {fix}")
        if tuple(value.shape) != tuple(tevia_state[key].shape):
            if SEG_LAYER_KEY in key:
                continue
            raise TeViAError(f"{source}: weight {key!r} has shape {tuple(value.shape)}, the TeViA network's has "
                             f"{tuple(tevia_state[key].shape)}: {fix}")
        out[key] = value.to(tevia_state[key].dtype)
    missing = [k for k in tevia_state if k.startswith(BASE_PREFIXES) and SEG_LAYER_KEY not in k
               and k not in plain_state]
    if missing:
        raise TeViAError(f"{source} lacks weight {missing[0]!r} (and {len(missing) - 1} more) of the plans' network: "
                         f"{fix}")
    return out


def expand_checkpoint(plain_checkpoint: str, output_file: str, dataset_name_or_id, configuration: str,
                      plans_identifier: str = "nnUNetPlans", trainer_name: str = "nnUNetTrainerTeViA") -> str:
    """Write a checkpoint for ``nnUNetv2_train -tr trainer_name -pretrained_weights``; return that command."""
    if not isfile(plain_checkpoint):
        raise TeViAError(f"no checkpoint at {plain_checkpoint}: pass -i with the checkpoint_final.pth of a plain "
                         f"nnUNetv2_train run")
    try:
        plain = torch.load(plain_checkpoint, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: say which
        raise TeViAError(f"{plain_checkpoint} cannot be read as a PyTorch checkpoint ({e})") from None
    weights = plain.get("network_weights") if isinstance(plain, dict) else None
    if not isinstance(weights, dict):
        raise TeViAError(f"{plain_checkpoint} has no 'network_weights': it is not an nnU-Net checkpoint "
                         f"(use checkpoint_final.pth or checkpoint_best.pth of an nnUNetv2_train run)")
    if any(k.startswith("guidance.") for k in weights):
        raise TeViAError(f"{plain_checkpoint} is already a TeViA checkpoint: pass it to -pretrained_weights "
                         f"directly")

    network, tevia = build_tevia_network(dataset_name_or_id, configuration, plans_identifier, trainer_name)
    state = overlay_plain_weights(network.state_dict(), weights, plain_checkpoint)
    atomic_torch_save({
        "network_weights": state,
        "tevia_expanded_from": {"checkpoint": os.path.abspath(plain_checkpoint), "trainer": trainer_name,
                                "plans": plans_identifier, "configuration": configuration, PLANS_KEY: tevia},
    }, output_file)
    dataset = maybe_convert_to_dataset_name(dataset_name_or_id)
    return (f"nnUNetv2_train {dataset} {configuration} FOLD -tr {trainer_name} -p {plans_identifier} "
            f"-pretrained_weights {os.path.abspath(output_file)}")
