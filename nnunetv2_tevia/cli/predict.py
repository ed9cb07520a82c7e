"""``nnUNetv2_tevia_predict``: ``nnUNetv2_predict`` with each case's report."""
import argparse
import json
import multiprocessing
import os
import re

import torch

from nnunetv2_tevia.cli._common import exit_on_user_error
from nnunetv2_tevia.errors import PromptFileError, TeViAError
from nnunetv2_tevia.model.config import PLANS_KEY


def _default_processes(env: str) -> int:
    value = os.environ.get(env)
    return int(value) if value is not None else 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Predict with a model trained by nnUNetTrainerTeViA (or a variant). Takes every argument of "
                    "nnUNetv2_predict, plus --prompts: each input case's report is read from a prompt JSON, "
                    "embedded with the encoder recorded in the model's plans.json, and given to every forward of "
                    "that case's sliding window. Needs only nnUNet_results (and nnUNet_raw for the default prompt "
                    "file), never nnUNet_preprocessed.")
    p.add_argument('-i', type=str, required=True, help='[REQUIRED] Input folder (files named CASE_0000.ext, as for '
                                                       'nnUNetv2_predict).')
    p.add_argument('-o', type=str, required=True, help='[REQUIRED] Output folder; created if missing.')
    p.add_argument('-d', type=str, required=True, help='[REQUIRED] Dataset name or id the model was trained on.')
    p.add_argument('-p', type=str, default='nnUNetPlans', help='[OPTIONAL] Plans identifier. Default: nnUNetPlans')
    p.add_argument('-tr', type=str, default='nnUNetTrainerTeViA',
                   help='[OPTIONAL] Trainer the model was trained with. Default: nnUNetTrainerTeViA')
    p.add_argument('-c', type=str, required=True, help='[REQUIRED] Configuration (2d, 3d_fullres, ...).')
    p.add_argument('-f', nargs='+', type=str, default=(0, 1, 2, 3, 4),
                   help='[OPTIONAL] Folds to ensemble. Default: 0 1 2 3 4')
    p.add_argument('-step_size', type=float, default=0.5, help='[OPTIONAL] Sliding-window step size. Default: 0.5')
    p.add_argument('--disable_tta', action='store_true',
                   help='[OPTIONAL] Disable mirroring test-time augmentation (TeViA models trained with '
                        'location-safe augmentation do not mirror anyway).')
    p.add_argument('--verbose', action='store_true', help='[OPTIONAL] Talk a lot.')
    p.add_argument('--save_probabilities', action='store_true',
                   help='[OPTIONAL] Also export probabilities (.npz), needed for ensembling.')
    p.add_argument('--continue_prediction', action='store_true',
                   help='[OPTIONAL] Continue an aborted prediction: keep the outputs made from the same report '
                        'by the same model and settings (recorded in OUTPUT/.tevia_predictions), predict the rest.')
    p.add_argument('-chk', type=str, default='checkpoint_final.pth',
                   help='[OPTIONAL] Checkpoint name. Default: checkpoint_final.pth')
    p.add_argument('-npp', type=int, default=_default_processes('nnUNet_npp'),
                   help='[OPTIONAL] Preprocessing processes. Default: 3. -npp 0 -nps 0 runs without multiprocessing.')
    p.add_argument('-nps', type=int, default=_default_processes('nnUNet_nps'),
                   help='[OPTIONAL] Segmentation export processes. Default: 3')
    p.add_argument('-prev_stage_predictions', type=str, default=None,
                   help='[OPTIONAL] Predictions of the previous stage, for 3d_cascade_fullres (predict 3d_lowres '
                        'with nnUNetv2_tevia_predict first).')
    p.add_argument('-num_parts', type=int, default=1, help='[OPTIONAL] Number of parallel calls. Default: 1')
    p.add_argument('-part_id', type=int, default=0, help='[OPTIONAL] Which part this call is (0-based). Default: 0')
    p.add_argument('-device', type=str, default='cuda', choices=['cuda', 'cpu', 'mps'],
                   help="[OPTIONAL] 'cuda', 'cpu' or 'mps'. Default: cuda")
    p.add_argument('--disable_progress_bar', action='store_true', help='[OPTIONAL] No progress bars.')
    p.add_argument('--not_on_device', action='store_true',
                   help='[OPTIONAL] Keep sliding-window results off the device (large cases).')
    p.add_argument('--prompts', type=str, default=None,
                   help='[OPTIONAL] Prompt JSON holding the input cases\' reports. Default: the dataset\'s '
                        '$nnUNet_raw/DatasetXXX_Name/tevia_prompts.json. Not read for a model trained without '
                        'reports (_noText): every case gets its no-report text.')
    p.add_argument('--allow-missing-text', action='store_true',
                   help='[OPTIONAL] Predict cases without a report on the model\'s no-report text also when the '
                        'model was not trained for cases without a report (trained without text dropout, e.g. '
                        '_noTextDropout, _oneWording, _reference): results for those cases are text-free. Models '
                        'of the default trainer (text dropout 0.2) predict such cases on their no-report text '
                        'without this flag and log how many there are; a "default" in the prompt file is used '
                        'before either. A prompt file that names none of the input cases (another dataset\'s?) '
                        'is an error even so.')
    p.add_argument('--text-cache', type=str, default=None,
                   help='[OPTIONAL] Folder for the text embeddings. When it already holds every text to predict, '
                        'the encoder is not loaded. A dataset\'s training cache (written by nnUNetv2_tevia_prompts '
                        'embed) is only read: what it lacks goes to OUTPUT/.tevia_text_cache. '
                        'Default: OUTPUT/.tevia_text_cache')
    p.add_argument('--text-encoder', type=str, default=None,
                   help='[OPTIONAL] Where to load the model\'s text encoder from, if not where plans.json says '
                        '(e.g. hf:/local/copy). Its weights must be the ones the model was trained with.')
    p.add_argument('--trust-remote-code', action='store_true',
                   help='[OPTIONAL] Let transformers run the encoder repository\'s own code (CXR-BERT needs it).')
    p.add_argument('--save-attention-maps', type=str, default=None, metavar='DIR',
                   help='[OPTIONAL] Also write, per case, one heat-map PNG per text slot of a guided stage\'s '
                        'cross-attention over the image: DIR/CASE/stageK_slotJJ.png (3D: the middle slice). Slower: '
                        'the attention of that stage is computed without the fused kernel.')
    p.add_argument('--attention-stage', type=int, default=None, metavar='K',
                   help='[OPTIONAL] Guided stage of --save-attention-maps, 0 = lowest resolution. Default: the '
                        'finest guided stage')
    return p


def checked_model_folder(dataset: str, trainer: str, plans: str, configuration: str, folds, checkpoint: str) -> str:
    """The trained model's folder; a TeViAError naming what is missing and what is there instead of
    nnU-Net's FileNotFoundError traceback (the usual cause: -tr, -c or -f differ from the training run)."""
    from batchgenerators.utilities.file_and_folder_operations import isdir, isfile, join, subdirs
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    results = os.environ.get("nnUNet_results")
    if not results:
        raise TeViAError("nnUNet_results is not set, so the trained model cannot be found: "
                         "export nnUNet_results=/path/to/nnUNet_results")
    try:
        name = maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError):
        raise TeViAError(f"dataset {dataset!r} is in none of nnUNet_results={results}, nnUNet_raw and "
                         f"nnUNet_preprocessed: check -d and those variables") from None
    folder = get_output_folder(name, trainer, plans, configuration)
    if not isdir(folder):
        trained = sorted(subdirs(join(results, name), join=False)) if isdir(join(results, name)) else []
        raise TeViAError(f"no trained model at {folder}: check -tr, -p and -c (trained models of {name}: "
                         f"{', '.join(trained) or 'none'})")
    for f in folds:
        if not isfile(join(folder, f"fold_{f}", checkpoint)):
            have = sorted(d[len("fold_"):] for d in subdirs(folder, prefix="fold_", join=False)
                          if isfile(join(folder, d, checkpoint)))
            raise TeViAError(f"{join(folder, f'fold_{f}', checkpoint)} does not exist: pass -f with the folds that "
                             f"have {checkpoint} ({' '.join(have) or 'none'}), or -chk checkpoint_best.pth / "
                             f"checkpoint_latest.pth for an unfinished training")
    return folder


def model_file_ending(model_folder: str) -> str:
    path = os.path.join(model_folder, "dataset.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["file_ending"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TeViAError(f"{path} cannot be read ({type(e).__name__}): the model folder is incomplete; copy it "
                         f"again from where it was trained") from None


def model_reads_reports(model_folder: str) -> bool:
    """False for a model trained without reports (_noText): it is predicted on its no-report text and needs no prompt
    file. Unreadable plans count as True; the predictor then says what is wrong with them."""
    try:
        with open(os.path.join(model_folder, "plans.json"), encoding="utf-8") as f:
            return bool(json.load(f)[PLANS_KEY].get("case_text", True))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return True


def checked_input_folder(folder: str, file_ending: str) -> None:
    """Images nnU-Net would predict are there, each named CASE_XXXX.ext; else a TeViAError naming the file and fix
    (nnU-Net itself would predict nothing and exit 0, or fail with an IndexError)."""
    images = sorted(f for f in os.listdir(folder) if f.endswith(file_ending))
    if not images:
        raise TeViAError(f"input folder {folder} holds no image ending in {file_ending} (the file_ending of the "
                         f"model's dataset.json): pass -i with the folder of CASE_0000{file_ending} images")
    for f in images:
        if not re.fullmatch(r".+_\d{4}" + re.escape(file_ending), f):
            stem = f[:-len(file_ending)]
            raise TeViAError(f"input file {os.path.join(folder, f)} has no channel suffix: nnU-Net reads "
                             f"CASE_0000{file_ending} (channel 0, then _0001, ...): rename it to "
                             f"{stem}_0000{file_ending}")


def checked_checkpoints(model_folder: str, folds, checkpoint: str) -> None:
    """Each fold's checkpoint opens (memory-mapped: nothing is read yet); a truncated or damaged file is a
    TeViAError naming it instead of torch's traceback."""
    for f in folds:
        path = os.path.join(model_folder, f"fold_{f}", checkpoint)
        try:
            torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except Exception as e:  # zip, pickle and mmap errors all mean: not a whole checkpoint
            raise TeViAError(f"{path} cannot be read as a checkpoint ({type(e).__name__}: {str(e)[:120]}): it is "
                             f"truncated or damaged (an interrupted copy or download, a full disk). Copy it again "
                             f"from where it was trained, or pass -f without fold {f}") from None


@exit_on_user_error
def predict_entry():
    from nnunetv2_tevia.prompts.prompt_file import load_prompts, resolve_prompt_path

    parser = build_parser()
    args = parser.parse_args()
    folds = [f if f == 'all' else int(f) for f in args.f]
    if args.part_id >= args.num_parts:
        parser.error("-part_id must be smaller than -num_parts (ids start at 0)")
    if not os.path.isdir(args.i):
        raise TeViAError(f"input folder {args.i} does not exist: pass -i with the folder of CASE_0000.ext images")
    if os.path.exists(args.o) and not os.path.isdir(args.o):
        raise TeViAError(f"-o {args.o} is a file, not a folder: pass -o with an output folder (it is created if "
                         f"missing)")
    model_folder = checked_model_folder(args.d, args.tr, args.p, args.c, folds, args.chk)
    checked_input_folder(args.i, model_file_ending(model_folder))
    if args.device == 'cpu':
        torch.set_num_threads(multiprocessing.cpu_count())
    elif args.device == 'cuda':
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    device = torch.device(args.device)

    prompt_path = resolve_prompt_path(args.d, args.prompts)
    prompts = load_prompts(prompt_path) if os.path.exists(prompt_path) else None  # a directory: load_prompts says so
    if prompts is None and not args.allow_missing_text and model_reads_reports(model_folder):
        raise PromptFileError(f"no prompt file at {prompt_path}: pass --prompts FILE with the input cases' "
                              f"reports, or --allow-missing-text to predict on the model's no-report text")
    checked_checkpoints(model_folder, folds, args.chk)

    # imported after the argument checks: it pulls in all of nnU-Net's network code
    from nnunetv2_tevia.inference.predictor import nnUNetTeViAPredictor

    predictor = nnUNetTeViAPredictor(tile_step_size=args.step_size, use_gaussian=True,
                                     use_mirroring=not args.disable_tta,
                                     perform_everything_on_device=not args.not_on_device, device=device,
                                     verbose=args.verbose, verbose_preprocessing=args.verbose,
                                     allow_tqdm=not args.disable_progress_bar, prompts=prompts,
                                     allow_missing_text=args.allow_missing_text, text_cache_folder=args.text_cache,
                                     trust_remote_code=args.trust_remote_code, text_encoder=args.text_encoder,
                                     attention_maps_folder=args.save_attention_maps,
                                     attention_stage=args.attention_stage)
    predictor.initialize_from_trained_model_folder(model_folder, folds, checkpoint_name=args.chk)
    os.makedirs(args.o, exist_ok=True)
    if args.npp == 0 and args.nps == 0:
        predictor.predict_from_files_sequential(args.i, args.o, save_probabilities=args.save_probabilities,
                                                overwrite=not args.continue_prediction,
                                                folder_with_segs_from_prev_stage=args.prev_stage_predictions)
    else:
        predictor.predict_from_files(args.i, args.o, save_probabilities=args.save_probabilities,
                                     overwrite=not args.continue_prediction, num_processes_preprocessing=args.npp,
                                     num_processes_segmentation_export=args.nps,
                                     folder_with_segs_from_prev_stage=args.prev_stage_predictions,
                                     num_parts=args.num_parts, part_id=args.part_id)
