"""Which dataset a -d names, and its case ids and label names, derived the way nnU-Net derives them."""
import json
import os
import re

from batchgenerators.utilities.file_and_folder_operations import isdir, isfile, join, subfiles
from nnunetv2.utilities.dataset_name_id_conversion import find_candidate_datasets, maybe_convert_to_dataset_name

from nnunetv2_tevia.errors import PromptFileError


def _as_text(dataset_name_or_id) -> str:
    return os.fspath(dataset_name_or_id) if isinstance(dataset_name_or_id, os.PathLike) else str(dataset_name_or_id)


def dataset_name(dataset_name_or_id, error=PromptFileError) -> str:
    """DatasetXXX_Name of a dataset given by id (``3``), name (``Dataset003_Liver``) or folder path.

    An id is resolved by nnU-Net's own rule, which reads nnUNet_raw, nnUNet_preprocessed and nnUNet_results
    at call time, so an id never means another dataset here than in nnU-Net's commands. ``error`` is the
    TeViAError subclass the caller raises for bad user input.
    """
    s = _as_text(dataset_name_or_id)
    base = os.path.basename(os.path.normpath(s))
    if isdir(s) and base.startswith("Dataset"):
        return base
    try:
        return str(maybe_convert_to_dataset_name(s))
    except ValueError:
        raise error(f"{s!r} is neither a dataset id (e.g. 3), a dataset name (e.g. Dataset003_Liver) nor a dataset "
                    f"folder: pass one of these to -d") from None
    except RuntimeError:
        dataset_id = int(s)
        candidates = [str(c) for c in find_candidate_datasets(dataset_id)]
        if len(candidates) > 1:
            raise error(f"dataset id {dataset_id} matches several folders in nnUNet_raw, nnUNet_preprocessed or "
                        f"nnUNet_results ({', '.join(candidates)}): pass the full name to -d or rename one") from None
        raise error(f"no dataset with id {dataset_id} in nnUNet_raw={os.environ.get('nnUNet_raw')}: check -d, or "
                    f"convert the dataset to nnU-Net's format there first") from None


def dataset_folder(dataset_name_or_id) -> str:
    """The raw folder of a dataset given by id (``3``), name (``Dataset003_Liver``) or folder path.

    Reads ``nnUNet_raw`` at call time, so a changed environment (tests, notebooks) is honoured.
    """
    s = _as_text(dataset_name_or_id)
    if isdir(s) and isfile(join(s, "dataset.json")):
        return os.path.abspath(s)
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise PromptFileError(f"nnUNet_raw is not set, so dataset {s!r} cannot be found: "
                              f"export nnUNet_raw=/path/to/nnUNet_raw (or pass --prompts FILE)")
    if not isdir(raw):
        raise PromptFileError(f"nnUNet_raw={raw} is not a folder: set nnUNet_raw to your nnU-Net raw data folder")
    folder = join(raw, dataset_name(s))
    if not isdir(folder):
        raise PromptFileError(f"dataset folder {folder} does not exist: check -d and nnUNet_raw")
    return folder


def load_dataset_json(raw_folder: str) -> dict:
    path = join(raw_folder, "dataset.json")
    if not isfile(path):
        raise PromptFileError(f"{path} does not exist: {raw_folder} is not an nnU-Net raw dataset folder")
    try:
        with open(path, "rb") as f:
            dj = json.loads(f.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise PromptFileError(f"{path} cannot be read as JSON ({e}): fix dataset.json") from None
    if not isinstance(dj, dict):
        raise PromptFileError(f"{path} is not a JSON object: fix dataset.json")
    return dj


def _file_ending(raw_folder: str, dj: dict) -> str:
    ending = dj.get("file_ending")
    if not isinstance(ending, str) or not ending:
        raise PromptFileError(f"{join(raw_folder, 'dataset.json')} has no \"file_ending\" (e.g. \".nii.gz\"): "
                              f"add it, as nnU-Net requires")
    return ending


def _ids_in_images_folder(folder: str, file_ending: str) -> list:
    # Like nnunetv2.utilities.utils.get_identifiers_from_splitted_dataset_folder, but files without the
    # _XXXX channel suffix (stray notes, thumbnails) are ignored instead of cropped into bogus ids.
    if not isdir(folder):
        return []
    pattern = re.compile(r"(.+)_\d{4}" + re.escape(file_ending))
    ids = set()
    for f in subfiles(folder, suffix=file_ending, join=False):
        m = pattern.fullmatch(f)
        if m:
            ids.add(m.group(1))
    return sorted(ids)


def training_case_ids(raw_folder: str) -> list:
    dj = load_dataset_json(raw_folder)
    if isinstance(dj.get("dataset"), dict):
        # dataset.json may list the training cases explicitly instead of relying on imagesTr.
        return sorted(dj["dataset"].keys())
    return _ids_in_images_folder(join(raw_folder, "imagesTr"), _file_ending(raw_folder, dj))


def test_case_ids(raw_folder: str) -> list:
    dj = load_dataset_json(raw_folder)
    return _ids_in_images_folder(join(raw_folder, "imagesTs"), _file_ending(raw_folder, dj))


def label_names(raw_folder: str) -> list:
    """Label (or region) names in dataset.json order, without the background."""
    dj = load_dataset_json(raw_folder)
    labels = dj.get("labels")
    if not isinstance(labels, dict):
        raise PromptFileError(f"{join(raw_folder, 'dataset.json')} has no \"labels\" object: add it, as nnU-Net "
                              f"requires")
    return [name for name, value in labels.items() if value not in (0, [0]) and name != "background"]


def image_ndim(raw_folder: str):
    """Spatial axes of the dataset's images as nnU-Net reads them (2 for PNG and BMP, else the first image's
    header), or None when no image can tell (none there, or unreadable)."""
    ending = _file_ending(raw_folder, load_dataset_json(raw_folder))
    if ending.lower() in (".png", ".bmp"):  # nnU-Net's NaturalImage2DIO: always 2D
        return 2
    for sub in ("imagesTr", "imagesTs"):
        folder = join(raw_folder, sub)
        first = sorted(subfiles(folder, suffix="_0000" + ending, join=True)) if isdir(folder) else []
        if first:
            try:
                import SimpleITK as sitk

                reader = sitk.ImageFileReader()
                reader.SetFileName(first[0])
                reader.ReadImageInformation()  # the header only
                return 3 if reader.GetDimension() >= 3 else 2
            except Exception:  # not a format SimpleITK reads: the check is left to training
                return None
    return None
