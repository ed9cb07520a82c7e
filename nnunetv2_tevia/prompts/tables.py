"""Read report tables (CSV or Excel) and match their keys to nnU-Net case ids.

LViT-style tables (QaTa-COV19, MosMedData+) key each row by the *mask* file name
(``mask_covid_1.png``) while the image is ``covid_1.png``; both styles, and plain case ids, match.
"""
import csv
import io
import os
import re
from typing import Optional

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts.json_checks import decode_utf8

MAX_TABLE_BYTES = 256 * 1024 * 1024
_EXCEL_SUFFIXES = (".xlsx", ".xlsm")
# Excel writes ';' in locales whose decimal mark is ','; tabs come from copy-paste exports.
_CSV_DELIMITERS = (",", ";", "\t")
_DOUBLE_SUFFIXES = (".nii.gz", ".tar.gz")
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


def _cell_repr(value) -> str:
    return "empty" if value is None or value == "" else f"{type(value).__name__} {value!r}"


def _id_cell(value):
    # Excel stores numeric ids (1001) as numbers, sometimes as floats (1001.0).
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return None


def _rows_from_csv(path: str, raw: bytes, required: tuple):
    text = decode_utf8(raw, f"table {path}", "in Excel use File > Save As > 'CSV UTF-8', or save as .xlsx")
    rows = None
    for delimiter in _CSV_DELIMITERS:
        try:
            candidate = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except csv.Error as e:
            raise PromptFileError(f"table {path} is not a readable CSV file ({e}): fix the quoting there") from None
        if rows is None:
            rows = candidate
        if candidate and all(c in [h.strip() for h in candidate[0]] for c in required):
            return candidate
    return rows


def _rows_from_excel(path: str):
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            if not wb.worksheets:
                return []
            return [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        finally:
            wb.close()
    except PromptFileError:
        raise
    except Exception as e:  # openpyxl raises many types (zipfile, KeyError, XML) for damaged files
        raise PromptFileError(f"table {path} cannot be read as an Excel workbook ({type(e).__name__}: {e}): "
                              f"re-save it from Excel as .xlsx, or export it as CSV UTF-8") from None


def read_text_table(path, id_column: str = "Image", text_column: str = "Description", *,
                    skip_empty_text: bool = False) -> list:
    """(key, text) per row of a CSV (BOM allowed) or XLSX (first sheet, header in row 1), in file order.
    ``skip_empty_text``: a row whose text cell is empty is left out (optional columns such as alternatives).

    Row numbers in messages are spreadsheet rows: the header is row 1.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PromptFileError(f"table {path} does not exist: check --csv")
    size = os.path.getsize(path)
    if size > MAX_TABLE_BYTES:
        raise PromptFileError(f"table {path} is {size / 2 ** 20:.0f} MiB, over the {MAX_TABLE_BYTES / 2 ** 20:.0f} "
                              f"MiB limit: is --csv pointing at the right file?")
    required = (id_column, text_column)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".xls":
        raise PromptFileError(f"table {path} is an old .xls workbook, which is not supported: save it as .xlsx or "
                              f"as CSV UTF-8")
    if suffix in _EXCEL_SUFFIXES:
        rows = _rows_from_excel(path)
    else:
        with open(path, "rb") as f:
            rows = _rows_from_csv(path, f.read(), required)

    if not rows:
        raise PromptFileError(f"table {path} is empty: it needs a header row with columns {id_column!r} and "
                              f"{text_column!r}")
    header = [h.strip() if isinstance(h, str) else h for h in rows[0]]
    for column in required:
        if header.count(column) != 1:
            present = ", ".join(repr(h) for h in header if h not in (None, "")) or "none"
            what = "has no column" if column not in header else "has more than one column"
            option = "--id-column" if column == id_column else "--text-column"
            raise PromptFileError(f"table {path} {what} {column!r} (columns present: {present}): pass the right "
                                  f"name with {option}")
    id_idx, text_idx = header.index(id_column), header.index(text_column)

    out = []
    first_row_of = {}
    for row_number, row in enumerate(rows[1:], start=2):
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in row):
            continue  # blank lines that spreadsheets leave at the end
        key_cell = row[id_idx] if id_idx < len(row) else None
        text_cell = row[text_idx] if text_idx < len(row) else None
        key = _id_cell(key_cell)
        if not key:
            raise PromptFileError(f"table {path}, row {row_number}: column {id_column!r} is "
                                  f"{_cell_repr(key_cell)}, not a case id or file name: fill it in or delete the row")
        if skip_empty_text and (text_cell is None or (isinstance(text_cell, str) and not text_cell.strip())):
            continue
        if not isinstance(text_cell, str) or not text_cell.strip():
            raise PromptFileError(f"table {path}, row {row_number} ({key!r}): column {text_column!r} is "
                                  f"{_cell_repr(text_cell)}, not a report text: write the report there or delete "
                                  f"the row")
        if key in first_row_of:
            raise PromptFileError(f"table {path}: id {key!r} appears in row {first_row_of[key]} and row {row_number}:"
                                  f" keep one row per case")
        first_row_of[key] = row_number
        out.append((key, text_cell.strip()))
    return out


def _stems(name: str) -> list:
    stems = [name]
    for double in _DOUBLE_SUFFIXES:
        if name.endswith(double):
            stems.append(name[: -len(double)])
    base, ext = os.path.splitext(name)
    if ext and base:
        stems.append(base)
    return stems


def match_key_to_case(key: str, case_ids: set) -> Optional[str]:
    """The case id a table key refers to: the id itself, an image file name (``covid_1.png``,
    ``case_0000.nii.gz``, with or without folders) or an LViT mask name (``mask_covid_1.png``). None if no match.
    The most literal reading wins, so a case really named ``mask_x`` is not confused with ``x``.
    """
    key = key.strip()
    if key in case_ids:
        return key
    name = key.replace("\\", "/").rsplit("/", 1)[-1]
    names = [name]
    if name.startswith("mask_"):
        names.append(name[len("mask_"):])
    for n in names:
        for stem in _stems(n):
            for candidate in (stem, _CHANNEL_SUFFIX.sub("", stem)):
                if candidate and candidate in case_ids:
                    return candidate
    return None
