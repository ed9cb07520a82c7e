"""Pair each source image with its mask and its table row (report text)."""
import csv
import os
import re
from dataclasses import dataclass, field

from nnunetv2_tevia.convert.layouts import SourceLayout, SourceSplit, list_images
from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts.tables import match_key_to_case, read_text_table

# Header spellings seen in LViT, Ariadne's Thread, MosMedData+ and MoNuSeg tables, compared after
# lower-casing and dropping everything but letters and digits. Earlier entries win.
ID_COLUMN_VARIANTS = ("image", "imagename", "img", "imgname", "filename", "name", "mask", "maskname",
                      "imageid", "id", "caseid", "imagefile", "file")
TEXT_COLUMN_VARIANTS = ("description", "descriptions", "text", "textdescription", "report", "caption",
                        "prompt", "sentence", "findings", "impression")
MASK_PREFIX = "mask_"


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def table_header(path: str) -> list[str]:
    """Column names of a CSV (BOM or not) or XLSX table: the first row."""
    if path.lower().endswith(".xlsx"):
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            first = next(wb.worksheets[0].iter_rows(max_row=1, values_only=True), ())
        finally:
            wb.close()
        return [str(v).strip() for v in first if v is not None]
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [h.strip() for h in next(csv.reader(f), [])]


def choose_columns(path: str, id_column: str | None, text_column: str | None) -> tuple[str, str]:
    """The id and text columns of a table: as given, else the first known spelling present."""
    header = table_header(path)
    by_norm = {}
    for h in header:
        by_norm.setdefault(_norm(h), h)
    chosen = []
    for given, variants, flag in ((id_column, ID_COLUMN_VARIANTS, "--id-column"),
                                  (text_column, TEXT_COLUMN_VARIANTS, "--text-column")):
        if given is not None:
            if given not in header:
                raise PromptFileError(f"table {path} has no column {given!r} (given with {flag}); its columns "
                                      f"are {header}: pass one of those with {flag}")
            chosen.append(given)
            continue
        found = next((by_norm[v] for v in variants if v in by_norm), None)
        if found is None:
            what = "image name" if flag == "--id-column" else "report text"
            raise PromptFileError(f"table {path}: none of its columns {header} looks like the {what} column: "
                                  f"name it with {flag} COLUMN")
        chosen.append(found)
    if chosen[0] == chosen[1]:
        raise PromptFileError(f"table {path}: the image-name and text columns are both {chosen[0]!r}: "
                              f"pick them with --id-column and --text-column (columns: {header})")
    return chosen[0], chosen[1]


@dataclass
class CaseSource:
    stem: str                  # image file name without extension, as in the source
    image: str
    mask: str | None
    text: str | None           # None: no table row for this image
    split: SourceSplit


@dataclass
class SplitPairing:
    split: SourceSplit
    cases: list[CaseSource] = field(default_factory=list)
    images_without_mask: list[str] = field(default_factory=list)
    images_without_row: list[str] = field(default_factory=list)
    # Stems described differently by two tables (e.g. Train_text.xlsx and Train_Val_text.xlsx).
    conflicting_rows: list[str] = field(default_factory=list)


@dataclass
class LayoutPairing:
    splits: list[SplitPairing]
    rows_without_image: list[tuple[str, str]]                  # (table, key) that matched no image
    columns: dict[str, tuple[str, str]]                        # table -> (id column, text column)


def _mask_index(masks_dir: str | None) -> dict[str, str]:
    if masks_dir is None:
        return {}
    return {os.path.splitext(f)[0]: f for f in list_images(masks_dir)}


def _find_mask(stem: str, masks: dict[str, str]) -> str | None:
    # QaTa/LViT: mask_<stem>.png; Kvasir, MoNuSeg, MosMedData+: the image's stem, often another extension.
    for candidate in (MASK_PREFIX + stem, stem, stem + "_mask"):
        if candidate in masks:
            return masks[candidate]
    return None


def pair_layout(layout: SourceLayout, id_column: str | None = None,
                text_column: str | None = None) -> LayoutPairing:
    columns, rows = {}, {}
    for split in layout.splits:
        for table in split.tables:
            if table not in rows:
                columns[table] = choose_columns(table, id_column, text_column)
                rows[table] = read_text_table(table, id_column=columns[table][0], text_column=columns[table][1])
    matched_rows: set[tuple[str, int]] = set()

    result = []
    for split in layout.splits:
        pairing = SplitPairing(split)
        image_files = {os.path.splitext(f)[0]: f for f in list_images(split.images_dir)}
        stems = set(image_files)
        texts: dict[str, str] = {}
        for table in split.tables:
            for i, (key, text) in enumerate(rows[table]):
                stem = match_key_to_case(key, stems)
                if stem is None:
                    continue
                matched_rows.add((table, i))
                if stem in texts and texts[stem] != text:
                    pairing.conflicting_rows.append(stem)
                    continue
                texts[stem] = text
        masks = _mask_index(split.masks_dir)
        for stem in sorted(image_files):
            mask = _find_mask(stem, masks)
            if split.masks_dir is not None and mask is None:
                pairing.images_without_mask.append(image_files[stem])
                continue
            if stem not in texts:
                pairing.images_without_row.append(image_files[stem])
            pairing.cases.append(CaseSource(
                stem=stem, image=os.path.join(split.images_dir, image_files[stem]),
                mask=os.path.join(split.masks_dir, mask) if mask else None, text=texts.get(stem), split=split))
        result.append(pairing)

    unmatched = [(t, str(k)) for t, r in rows.items() for i, (k, _) in enumerate(r) if (t, i) not in matched_rows]
    return LayoutPairing(result, unmatched, columns)
