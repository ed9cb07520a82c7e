"""Synthetic demo dataset in which the report text is necessary.

Design
------
Every image holds four look-alike lesions, one per zone: ``upper left``, ``upper right``, ``lower left``,
``lower right``. All four are drawn from the same distribution (bright, soft-edged ellipses or ellipsoids of
random size and contrast, on a smooth random background with Gaussian noise), so nothing in the image marks the
targets. Between one and three of the four are targets (never none, never all); only the targets are in the
label, and the case's report names them (``report_templates.py``). The image alone therefore cannot tell which
lesions to segment: a text-blind nnU-Net can at best learn the marginal probability of a lesion being a target.

Directions are image directions as shown by an image viewer that draws row 0 at the top (``imshow``,
PIL): "upper" means small row index, "left" small column index. In 3D (array order z, y, x as
SimpleITK's ``GetArrayFromImage`` returns it) the zones are the quadrants of the y-x plane, and lesion centres
jitter in z around the middle of the volume, so an axial slice near the middle shows all four.
These are not patient directions (there is no patient).

Mirroring moves lesions to other zones: TeViA's default trainer does not mirror; the prompt file's ``"mirror"``
section (report_templates.py) lets ``nnUNetTrainerTeViA_mirrorText`` swap the report's zone words with the image.

Layout of the written dataset (an ordinary nnU-Net raw dataset plus three files):

- ``dataset.json``, ``imagesTr``, ``labelsTr``, ``imagesTs``, ``labelsTs``; 2D is PNG (grayscale uint8,
  nnU-Net's ``NaturalImage2DIO``), 3D is NIfTI (``.nii.gz``, spacing 1, written with SimpleITK).
- ``tevia_prompts.json``: the report of every training and test case.
- ``demo_metadata.json``: per case the lesion centres, radii, contrasts and which are targets, so that
  ``write_swapped_variant`` can later render masks for other target sets.
- ``report_variants.write_swapped_variant`` (which builds on this module, never the other way round) adds
  ``labelsTs_swapped/`` and ``tevia_prompts_swapped.json``: each test report now names the distractors (the
  complement of the targets) and the swapped label holds exactly those. Predicting the test images with the
  swapped reports and scoring against ``labelsTs_swapped`` measures whether the text steers the prediction.

All files are a pure function of the arguments: the same seed gives byte-identical files.
"""
import io
import os
import shutil
import tempfile
from typing import Optional

import numpy as np
import SimpleITK as sitk
from batchgenerators.utilities.file_and_folder_operations import join, load_json, maybe_mkdir_p, subdirs
from PIL import Image

from nnunetv2_tevia.demo.report_templates import ZONES, demo_mirror_map, format_report
from nnunetv2_tevia.io_utils import atomic_write_bytes, atomic_write_json
from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, PromptFile, save_prompts

METADATA_FILENAME = "demo_metadata.json"
METADATA_FORMAT = "nnunetv2-tevia-demo"
METADATA_VERSION = 1
SWAPPED_PROMPTS_FILENAME = "tevia_prompts_swapped.json"
SWAPPED_LABELS_FOLDER = "labelsTs_swapped"

# Zone order fixes the index used in the metadata; (vertical, horizontal) sign of the offset from the centre.
_ZONE_SIGNS = {"upper left": (-1, -1), "upper right": (-1, 1), "lower left": (1, -1), "lower right": (1, 1)}

_DEFAULT_SIZE = {False: 64, True: 32}

# Distances in units of a zone's half width h = size / 4. Radius <= 0.45 h plus jitter <= 0.25 h keeps every
# lesion inside its own quadrant, with a gap to its neighbours, so lesions never touch.
_RADIUS_RANGE = (0.3, 0.45)
_AXIS_STRETCH = (0.8, 1.2)
_JITTER = 0.25
_Z_JITTER = 0.15  # of the full depth, so a middle axial slice crosses every 3D lesion
_EDGE_SHARPNESS = 10.0  # logistic slope at the boundary; the mask is the half-maximum contour
_CONTRAST_RANGE = (0.3, 0.45)
_NOISE_SD = 0.04

def _case_rng(seed: int, split: str, index: int) -> np.random.Generator:
    # Each case gets its own stream, so a case does not change when num_train or num_test changes.
    return np.random.default_rng([seed, {"train": 0, "test": 1}[split], index])


def _draw_lesions(rng: np.random.Generator, size: int, three_d: bool) -> list[dict]:
    h = size / 4
    n_targets = int(rng.integers(1, 4))
    targets = set(int(i) for i in rng.choice(len(ZONES), size=n_targets, replace=False))
    lesions = []
    for i, zone in enumerate(ZONES):
        sv, sh = _ZONE_SIGNS[zone]
        # Pixel centres sit at integer coordinates; the image centre is (size - 1) / 2.
        centre_yx = [(size - 1) / 2 + s * h + rng.uniform(-_JITTER, _JITTER) * h for s in (sv, sh)]
        radius = rng.uniform(*_RADIUS_RANGE) * h
        n_axes = 3 if three_d else 2
        radii = [radius * rng.uniform(*_AXIS_STRETCH) for _ in range(n_axes)]
        centre = centre_yx
        if three_d:
            centre = [(size - 1) / 2 + rng.uniform(-_Z_JITTER, _Z_JITTER) * size] + centre_yx
        lesions.append({
            "zone": zone,
            # Rounded so that rendering from the JSON metadata reproduces the written label exactly.
            "center": [round(float(c), 4) for c in centre],
            "radii": [round(float(r), 4) for r in radii],
            "contrast": round(float(rng.uniform(*_CONTRAST_RANGE)), 4),
            "target": i in targets,
        })
    return lesions


def _normalised_distance(shape: tuple, lesion: dict) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    return np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, lesion["center"], lesion["radii"])))


def render_mask(shape: tuple, lesions: list[dict], zones: Optional[list[str]] = None) -> np.ndarray:
    """uint8 mask (0/1) of the lesions in ``zones`` (default: the lesions marked as targets)."""
    mask = np.zeros(shape, dtype=np.uint8)
    for lesion in lesions:
        if (lesion["zone"] in zones) if zones is not None else lesion["target"]:
            mask[_normalised_distance(shape, lesion) <= 1.0] = 1
    return mask


def _render_image(rng: np.random.Generator, shape: tuple, lesions: list[dict]) -> np.ndarray:
    coords = np.meshgrid(*[np.linspace(-0.5, 0.5, s) for s in shape], indexing="ij")
    background = 0.3 + sum(rng.uniform(-0.1, 0.1) * c for c in coords)
    phase = rng.uniform(0, 2 * np.pi)
    frequency = rng.uniform(0.5, 1.5, size=len(shape))
    background = background + 0.05 * np.sin(2 * np.pi * sum(f * c for f, c in zip(frequency, coords)) + phase)
    image = background
    for lesion in lesions:
        d = _normalised_distance(shape, lesion)
        image = image + lesion["contrast"] / (1.0 + np.exp(-_EDGE_SHARPNESS * (1.0 - d)))
    image = image + rng.normal(0.0, _NOISE_SD, size=shape)
    return np.clip(image, 0.0, 1.0)


def _png_bytes(array_uint8: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array_uint8).save(buf, format="PNG")
    return buf.getvalue()


def _write_nifti(path: str, array: np.ndarray) -> None:
    # SimpleITK writes to a path only; a temp file in the same folder plus os.replace keeps the write atomic.
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".nii.gz")
    os.close(fd)
    try:
        sitk.WriteImage(sitk.GetImageFromArray(array), tmp, useCompression=True)
        # mkstemp creates the file private (0600); a dataset should get the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_case(image: Optional[np.ndarray], label: Optional[np.ndarray], case_id: str, images_folder: Optional[str],
                labels_folder: str, three_d: bool) -> None:
    if three_d:
        if image is not None:
            _write_nifti(join(images_folder, f"{case_id}_0000.nii.gz"), image.astype(np.float32))
        _write_nifti(join(labels_folder, f"{case_id}.nii.gz"), label)
    else:
        if image is not None:
            atomic_write_bytes(join(images_folder, f"{case_id}_0000.png"), _png_bytes(np.round(image * 255).astype(np.uint8)))
        atomic_write_bytes(join(labels_folder, f"{case_id}.png"), _png_bytes(label))


def _dataset_folder_name(dataset_id: int, name: str) -> str:
    return f"Dataset{dataset_id:03d}_{name}"


def _check_target_folder(raw_folder: str, dataset_id: int, name: str, overwrite: bool) -> str:
    folder_name = _dataset_folder_name(dataset_id, name)
    clashes = [d for d in subdirs(raw_folder, prefix=f"Dataset{dataset_id:03d}_", join=False) if d != folder_name] \
        if os.path.isdir(raw_folder) else []
    if clashes:
        # nnU-Net resolves datasets by id; two folders with one id make every later command ambiguous.
        raise FileExistsError(f"{raw_folder} already holds {clashes[0]} with dataset id {dataset_id}. "
                              f"Pick another dataset id.")
    folder = join(raw_folder, folder_name)
    if os.path.exists(folder):
        if not overwrite:
            raise FileExistsError(f"{folder} already exists. Pass overwrite=True (or the CLI's --overwrite) to "
                                  f"replace it, or pick another dataset id.")
        shutil.rmtree(folder)
    return folder


def generate_demo_dataset(raw_folder: Optional[str] = None, dataset_id: int = 990, name: str = "TeViADemo",
                          num_train: int = 100, num_test: int = 20, size: Optional[int] = None,
                          three_d: bool = False, seed: int = 0, overwrite: bool = False) -> str:
    """Write the demo dataset to ``raw_folder/DatasetXXX_<name>`` and return that folder.

    raw_folder defaults to ``$nnUNet_raw``. size is the edge length of the square (cube) image, default 64 in
    2D and 32 in 3D, for which nnU-Net plans a patch that covers the whole image. It must be a multiple of 4
    and at least 16. Raises FileExistsError when the folder exists (unless overwrite) or when another
    folder in raw_folder uses the same dataset id.
    """
    if raw_folder is None:
        from nnunetv2.paths import nnUNet_raw
        if nnUNet_raw is None:
            raise ValueError("No output folder given and nnUNet_raw is not set. Set nnUNet_raw or pass raw_folder.")
        raw_folder = nnUNet_raw
    size = _DEFAULT_SIZE[bool(three_d)] if size is None else int(size)
    if size < 16 or size % 4:
        raise ValueError(f"size must be a multiple of 4 and at least 16, got {size}")
    if num_train < 1 or num_test < 0:
        raise ValueError(f"need num_train >= 1 and num_test >= 0, got {num_train} and {num_test}")
    if not 0 < dataset_id < 1000:
        raise ValueError(f"dataset_id must be between 1 and 999, got {dataset_id}")

    folder = _check_target_folder(raw_folder, dataset_id, name, overwrite)
    file_ending = ".nii.gz" if three_d else ".png"
    shape = (size,) * (3 if three_d else 2)
    sub = {k: join(folder, k) for k in ("imagesTr", "labelsTr", "imagesTs", "labelsTs")}
    for f in sub.values():
        maybe_mkdir_p(f)

    reports, cases_meta = {}, {}
    for split, count in (("train", num_train), ("test", num_test)):
        for index in range(count):
            case_id = f"{split}_{index:03d}"
            rng = _case_rng(seed, split, index)
            lesions = _draw_lesions(rng, size, three_d)
            image = _render_image(rng, shape, lesions)
            label = render_mask(shape, lesions)
            reports[case_id] = format_report([l["zone"] for l in lesions if l["target"]], rng)
            suffix = "Tr" if split == "train" else "Ts"
            _write_case(image, label, case_id, sub["images" + suffix], sub["labels" + suffix], three_d)
            cases_meta[case_id] = {"split": split, "report": reports[case_id], "lesions": lesions}

    # Written directly (not via nnU-Net's generate_dataset_json) so that the write is atomic.
    atomic_write_json(join(folder, "dataset.json"), {
        "channel_names": {"0": "synthetic"},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": num_train,
        "file_ending": file_ending,
        "name": name,
        "description": "nnunetv2_tevia synthetic demo: four look-alike lesions per image, the report names "
                       "which are targets; only the targets are labelled.",
        "licence": "CC0 (synthetic data)",
        "converted_by": "nnunetv2_tevia.demo.generate_demo_dataset",
    })
    save_prompts(PromptFile(path=join(folder, PROMPTS_FILENAME), cases=reports,
                            classes={"lesion": "the lesions named in the report"}, mirror=demo_mirror_map(three_d)))
    atomic_write_json(join(folder, METADATA_FILENAME), {
        "format": METADATA_FORMAT, "version": METADATA_VERSION, "seed": seed, "size": size, "three_d": bool(three_d),
        "file_ending": file_ending, "zones": list(ZONES),
        "axes": "z, y, x (SimpleITK array order); upper = small y, left = small x" if three_d
        else "row, column; upper = small row, left = small column",
        "cases": cases_meta,
    })
    return folder


def load_metadata(dataset_folder: str) -> dict:
    path = join(dataset_folder, METADATA_FILENAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {dataset_folder} was not written by generate_demo_dataset. "
                                f"Regenerate it with nnUNetv2_tevia_demo.")
    meta = load_json(path)
    if meta.get("format") != METADATA_FORMAT or meta.get("version") != METADATA_VERSION:
        raise ValueError(f"{path} is not a {METADATA_FORMAT} version {METADATA_VERSION} file. Regenerate the dataset.")
    return meta
