"""Turn an LViT / Ariadne's Thread / TeViA style folder into an nnU-Net raw dataset and its prompt file."""
import multiprocessing
import os
import re
import shutil
from dataclasses import dataclass, field

from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from tqdm import tqdm

from nnunetv2_tevia.convert.images import FOREGROUND_THRESHOLD, CaseJob, convert_case, is_colour, read_channels
from nnunetv2_tevia.convert.layouts import SourceSplit, detect_layout
from nnunetv2_tevia.convert.pairing import CaseSource, pair_layout
from nnunetv2_tevia.errors import ConversionError
from nnunetv2_tevia.io_utils import atomic_write_json
from nnunetv2_tevia.prompts.mirror_words import mirror_map_from_json
from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, PromptFile, save_prompts

TEST_SPLIT_CHOICES = ("skip", "imagesTs")
CHANNEL_CHOICES = ("auto", "gray", "rgb")
SOURCES_FILENAME = "tevia_convert_sources.json"
_CHANNEL_PROBE = 8          # images looked at to decide colour vs. greyscale
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


@dataclass
class SplitSummary:
    name: str
    role: str
    destination: str            # "imagesTr", "imagesTs" or "skipped"
    converted: int = 0
    images_without_row: int = 0
    images_without_mask: int = 0
    conflicting_rows: int = 0
    examples_without_row: list = field(default_factory=list)


@dataclass
class ConversionReport:
    dataset_folder: str
    layout: str
    channel_names: dict
    num_training: int
    num_test: int
    splits: list
    rows_without_image: int
    examples_rows_without_image: list
    columns: dict               # table -> [id column, text column]
    warnings: list


def sanitize_case_id(stem: str) -> str:
    """File-system and nnU-Net safe id that still reads like the source name (``covid_1001``)."""
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", stem).strip("_") or "case"


def _assign_case_ids(cases: list[CaseSource]) -> list[str]:
    taken, ids = set(), []
    for case in cases:
        base = sanitize_case_id(case.stem)
        candidate, n = base, 1
        if candidate in taken:
            candidate = f"{base}_{sanitize_case_id(case.split.name).lower()}"
        while candidate in taken:
            n += 1
            candidate = f"{base}_{sanitize_case_id(case.split.name).lower()}{n}"
        taken.add(candidate)
        ids.append(candidate)
    return ids


def _destination(split: SourceSplit, test_split_into: str) -> str:
    if split.role == "train":
        return "imagesTr"
    if split.role == "test" and test_split_into == "skip":
        return "skipped"
    return "imagesTs"


def _decide_rgb(cases: list[CaseSource], channels: str) -> bool:
    if channels != "auto":
        return channels == "rgb"
    step = max(1, len(cases) // _CHANNEL_PROBE)
    return any(is_colour(read_channels(c.image)) for c in cases[::step][:_CHANNEL_PROBE])


def _raw_root(output_root: str | None) -> str:
    root = output_root or os.environ.get("nnUNet_raw")
    if not root:
        raise ConversionError("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw (see nnU-Net's "
                              "set_environment_variables.md) or pass -o OUTPUT_ROOT")
    return os.path.abspath(root)


def _check_dataset_id(raw_root: str, dataset_id: int, dataset_name: str, overwrite: bool) -> list[str]:
    prefix = f"Dataset{dataset_id:03d}_"
    warnings = []
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = raw_root if var == "nnUNet_raw" else os.environ.get(var)
        if not folder or not os.path.isdir(folder):
            continue
        others = sorted(d for d in os.listdir(folder) if d.startswith(prefix) and d != dataset_name
                        and os.path.isdir(os.path.join(folder, d)))
        if others and var == "nnUNet_raw":
            raise ConversionError(f"{folder} already holds {others[0]} with id {dataset_id}; nnU-Net needs one name "
                                  f"per id: pick another -d or remove {os.path.join(folder, others[0])}")
        if others:
            warnings.append(f"{var} ({folder}) holds {others[0]} with the same id {dataset_id}: nnU-Net will refuse "
                            f"the id until one of them is renamed or removed")
    target = os.path.join(raw_root, dataset_name)
    if os.path.exists(target) and not overwrite:
        raise ConversionError(f"{target} already exists: pass --overwrite to replace it, or pick another -d/-n")
    return warnings


def _run_jobs(jobs: list[CaseJob], num_processes: int, progress: bool) -> list:
    bar = tqdm(total=len(jobs), desc="converting", unit="case", disable=not progress)
    results = []
    try:
        if num_processes <= 1 or len(jobs) < 2 * num_processes:
            for job in jobs:
                results.append(convert_case(job))
                bar.update()
        else:
            # spawn: a caller that already runs threads (torch, a GUI) must not be forked.
            with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
                for result in pool.imap_unordered(convert_case, jobs, chunksize=8):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()
    return results


def _install(tmp: str, target: str) -> None:
    """Swap the finished dataset in with renames, so no reader ever sees half a dataset."""
    old = None
    if os.path.exists(target):
        old = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.replaced-{os.getpid()}")
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old)


def convert_dataset(source_dir: str, dataset_id: int, name: str, *, output_root: str | None = None,
                    size: int | None = None, overwrite: bool = False, label_name: str = "lesion",
                    test_split_into: str = "skip", id_column: str | None = None, text_column: str | None = None,
                    channels: str = "auto", keep_images_without_text: bool = False, limit: int | None = None,
                    num_processes: int | None = None, progress: bool = True,
                    mirror_preset: str | None = None) -> ConversionReport:
    """Convert ``source_dir`` into ``<nnUNet_raw or output_root>/DatasetXXX_<name>`` (see docs/convert.md).
    ``mirror_preset`` ("2d") writes the prompt file's word map, with which TeViA mirrors images and reports."""
    if not 1 <= int(dataset_id) <= 999:
        raise ConversionError(f"dataset id {dataset_id} is outside 1..999, the range nnU-Net names as DatasetXXX")
    if not _DATASET_NAME.match(name or ""):
        raise ConversionError(f"dataset name {name!r}: use letters, digits, '_' and '-' only (e.g. QaTaCOV19)")
    if size is not None and size < 1:
        raise ConversionError(f"--size {size}: give a positive edge length in pixels, e.g. --size 224")
    if limit is not None and limit < 1:
        raise ConversionError(f"--limit {limit}: give a positive number of cases per split")
    if not label_name or label_name.strip().lower() == "background":
        raise ConversionError(f"--label-name {label_name!r}: name the foreground class, e.g. lesion or polyp")
    if test_split_into not in TEST_SPLIT_CHOICES:
        raise ConversionError(f"--test-split-into {test_split_into!r}: choose one of {TEST_SPLIT_CHOICES}")
    if channels not in CHANNEL_CHOICES:
        raise ConversionError(f"--channels {channels!r}: choose one of {CHANNEL_CHOICES}")

    raw_root = _raw_root(output_root)
    dataset_name = f"Dataset{int(dataset_id):03d}_{name}"
    warnings = _check_dataset_id(raw_root, int(dataset_id), dataset_name, overwrite)

    layout = detect_layout(source_dir)
    pairing = pair_layout(layout, id_column=id_column, text_column=text_column)
    if layout.ignored:
        warnings.append(f"ignored split folders with unknown names: {', '.join(layout.ignored)}")

    summaries, selected = [], []
    for sp in pairing.splits:
        dest = _destination(sp.split, test_split_into)
        summary = SplitSummary(sp.split.name, sp.split.role, dest, images_without_row=len(sp.images_without_row),
                               images_without_mask=len(sp.images_without_mask),
                               conflicting_rows=len(sp.conflicting_rows), examples_without_row=sp.images_without_row[:5])
        summaries.append(summary)
        if dest == "skipped":
            continue
        if dest == "imagesTr" and sp.split.masks_dir is None:
            raise ConversionError(f"training split {sp.split.name} has no mask folder next to "
                                  f"{sp.split.images_dir} (expected masks/ or labelcol/): training needs labels")
        cases = [c for c in sp.cases if c.text is not None or keep_images_without_text]
        if limit is not None:
            cases = cases[:limit]
        summary.converted = len(cases)
        selected += [(c, dest) for c in cases]
        if sp.conflicting_rows:
            warnings.append(f"{len(sp.conflicting_rows)} image(s) of {sp.split.name} have different texts in two "
                            f"tables (first: {sp.conflicting_rows[0]}); the first table's text was kept")

    if not selected:
        raise ConversionError(
            f"{layout.root}: no image matched a table row ({len(pairing.rows_without_image)} row(s) without an image, "
            f"{sum(s.images_without_row for s in summaries)} image(s) without a row). Check that the table's id "
            f"column holds the image or mask file names (columns used: {pairing.columns}), or pass "
            f"--keep-images-without-text")
    if sum(1 for _, d in selected if d == "imagesTr") == 0:
        warnings.append("no training case was converted (imagesTr is empty): nnU-Net cannot plan or train on this "
                        "dataset")
    if test_split_into == "imagesTs" and {s.role for s in summaries if s.destination == "imagesTs"} >= {"val", "test"}:
        warnings.append(f"val and test cases both went to imagesTs; {SOURCES_FILENAME} records each case's split, "
                        f"so evaluate them separately")

    case_ids = _assign_case_ids([c for c, _ in selected])
    rgb = _decide_rgb([c for c, _ in selected], channels)
    tmp = os.path.join(raw_root, f".{dataset_name}.converting-{os.getpid()}")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    try:
        jobs = []
        for (case, dest), cid in zip(selected, case_ids):
            labels_dir = None if case.mask is None else os.path.join(tmp, dest.replace("images", "labels"))
            jobs.append(CaseJob(cid, case.image, case.mask, os.path.join(tmp, dest), labels_dir, rgb, size))
        for folder in {j.images_dir for j in jobs} | {j.labels_dir for j in jobs if j.labels_dir}:
            os.makedirs(folder, exist_ok=True)
        if num_processes is None:
            num_processes = min(os.cpu_count() or 1, 8)
        results = _run_jobs(jobs, num_processes, progress)

        changed = sum(r.channels_changed for r in results)
        unexpected = sum(r.unexpected_mask_values for r in results)
        if changed:
            target = "3 channels (grey copied to R, G, B)" if rgb else "greyscale (ITU-R 601 luma)"
            warnings.append(f"{changed} image(s) did not match the dataset's channel layout and were turned into "
                            f"{target}; pass --channels to choose the layout")
        if unexpected:
            warnings.append(f"{unexpected} mask(s) held values other than 0 and 255 (anti-aliasing, JPEG or several "
                            f"classes?); pixels above {FOREGROUND_THRESHOLD} were taken as '{label_name}'")

        channel_names = {0: "R", 1: "G", 2: "B"} if rgb else {0: "gray"}
        num_training = sum(1 for _, d in selected if d == "imagesTr")
        num_test = sum(1 for _, d in selected if d == "imagesTs")
        columns = {os.path.relpath(t, layout.root): list(c) for t, c in pairing.columns.items()}
        generate_dataset_json(
            tmp, dict(channel_names), {"background": 0, label_name: 1}, num_training, ".png",
            dataset_name=dataset_name, overwrite_image_reader_writer="NaturalImage2DIO",
            description=f"Converted by nnUNetv2_tevia_convert from {layout.root} ({layout.kind} layout)",
            license="see the source dataset's licence", converted_by="nnUNetv2_tevia_convert",
            tevia_conversion={"source": layout.root, "layout": layout.kind, "size": size, "columns": columns,
                              "splits": {s.name: {"destination": s.destination, "cases": s.converted}
                                         for s in summaries}})
        texts = {cid: c.text for (c, _), cid in zip(selected, case_ids) if c.text is not None}
        mirror = mirror_map_from_json({"preset": mirror_preset}, "--mirror", 2) if mirror_preset else None
        save_prompts(PromptFile(path=None, cases=texts, mirror=mirror), os.path.join(tmp, PROMPTS_FILENAME))
        atomic_write_json(os.path.join(tmp, SOURCES_FILENAME), {
            "source": layout.root,
            "cases": {cid: {"split": c.split.name, "folder": d, "image": os.path.relpath(c.image, layout.root),
                            "mask": os.path.relpath(c.mask, layout.root) if c.mask else None}
                      for (c, d), cid in zip(selected, case_ids)}})
        target = os.path.join(raw_root, dataset_name)
        _install(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    return ConversionReport(
        dataset_folder=target, layout=layout.kind, channel_names=channel_names, num_training=num_training,
        num_test=num_test, splits=summaries, rows_without_image=len(pairing.rows_without_image),
        examples_rows_without_image=[k for _, k in pairing.rows_without_image[:5]], columns=columns,
        warnings=warnings)


def format_report(report: ConversionReport) -> str:
    lines = [f"wrote {report.dataset_folder} ({report.layout} layout): {report.num_training} training case(s) in "
             f"imagesTr, {report.num_test} in imagesTs, channels {list(report.channel_names.values())}"]
    for s in report.splits:
        extra = []
        if s.images_without_row:
            extra.append(f"{s.images_without_row} image(s) without a table row "
                         f"(e.g. {', '.join(s.examples_without_row[:3])})")
        if s.images_without_mask:
            extra.append(f"{s.images_without_mask} image(s) without a mask, left out")
        lines.append(f"  {s.name} ({s.role}) -> {s.destination}: {s.converted} converted"
                     + (f"; {'; '.join(extra)}" if extra else ""))
    if report.rows_without_image:
        lines.append(f"  {report.rows_without_image} table row(s) matched no image "
                     f"(e.g. {', '.join(report.examples_rows_without_image[:3])})")
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)
