import csv
import os
from pathlib import Path

import pytest

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts import tables
from nnunetv2_tevia.prompts.tables import match_key_to_case, read_text_table

ROWS = [("mask_covid_1.png", "bilateral pulmonary infection, two infected areas."),
        ("mask_covid_2.png", "Unilateral infection, lower left lung; Läsion.")]


def shared_data() -> Path:
    return Path(os.environ.get("TEVIA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def write_csv(path, rows, header=("Image", "Description", "extra"), bom=False, delimiter=","):
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        for r in rows:
            w.writerow(list(r) + ["x"] * (len(header) - len(r)))
    return str(path)


def write_xlsx(path, rows, header=("Image", "Description")):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return str(path)


@pytest.mark.parametrize("bom", [False, True])
def test_csv_with_and_without_bom(tmp_path, bom):
    path = write_csv(tmp_path / "t.csv", ROWS, bom=bom)
    assert read_text_table(path) == ROWS


def test_semicolon_csv_from_excel_locale(tmp_path):
    path = write_csv(tmp_path / "t.csv", ROWS, delimiter=";")
    assert read_text_table(path) == ROWS


def test_xlsx_first_sheet_and_numeric_ids(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["case", "report"])
    ws.append([1001, "one area."])
    ws.append([1002.0, "two areas."])
    ws.append([None, None])  # trailing blank row
    wb.create_sheet("other").append(["case", "report"])
    wb.save(tmp_path / "t.xlsx")
    assert read_text_table(tmp_path / "t.xlsx", "case", "report") == [("1001", "one area."), ("1002", "two areas.")]


def test_custom_columns_and_cell_whitespace(tmp_path):
    path = write_csv(tmp_path / "t.csv", [(" covid_1.png ", "  text one  ")], header=("file", "report"))
    assert read_text_table(path, id_column="file", text_column="report") == [("covid_1.png", "text one")]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_missing_column_lists_present_columns(tmp_path, kind):
    path = (write_csv(tmp_path / "t.csv", ROWS, header=("Image", "Text", "extra")) if kind == "csv"
            else write_xlsx(tmp_path / "t.xlsx", ROWS, header=("Image", "Text")))
    with pytest.raises(PromptFileError, match=r"no column 'Description' \(columns present: 'Image', 'Text'.*"
                                              r"--text-column") as e:
        read_text_table(path)
    assert path in str(e.value)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_duplicate_id_names_both_rows(tmp_path, kind):
    rows = [ROWS[0], ROWS[1], (ROWS[0][0], "another text")]
    path = write_csv(tmp_path / "t.csv", rows) if kind == "csv" else write_xlsx(tmp_path / "t.xlsx", rows)
    with pytest.raises(PromptFileError, match=r"id 'mask_covid_1.png' appears in row 2 and row 4"):
        read_text_table(path)


def test_empty_text_cell_names_row(tmp_path):
    path = write_csv(tmp_path / "t.csv", [ROWS[0], ("mask_covid_2.png", "  ")])
    with pytest.raises(PromptFileError, match=r"row 3 \('mask_covid_2.png'\): column 'Description' is"):
        read_text_table(path)


def test_empty_id_cell_names_row(tmp_path):
    path = write_csv(tmp_path / "t.csv", [ROWS[0], ("", "text")])
    with pytest.raises(PromptFileError, match=r"row 3: column 'Image' is empty"):
        read_text_table(path)


def test_non_string_text_in_xlsx_names_row(tmp_path):
    path = write_xlsx(tmp_path / "t.xlsx", [ROWS[0], ("mask_covid_2.png", 3.5)])
    with pytest.raises(PromptFileError, match=r"row 3 .*'Description' is float 3.5, not a report text"):
        read_text_table(path)


def test_non_utf8_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("Image,Description\ncovid_1.png,Läsion\n".encode("latin-1"))
    with pytest.raises(PromptFileError, match=r"not valid UTF-8: byte 0xe4 at byte offset 31 \(line 2\).*CSV UTF-8"):
        read_text_table(p)


def test_blank_rows_are_skipped(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Image,Description\n\ncovid_1.png,a\n,\n")
    assert read_text_table(p) == [("covid_1.png", "a")]


def test_unreadable_inputs(tmp_path):
    with pytest.raises(PromptFileError, match="does not exist"):
        read_text_table(tmp_path / "none.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(PromptFileError, match="is empty"):
        read_text_table(tmp_path / "e.csv")
    (tmp_path / "bad.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PromptFileError, match="cannot be read as an Excel workbook"):
        read_text_table(tmp_path / "bad.xlsx")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(PromptFileError, match=r"old .xls.*\.xlsx"):
        read_text_table(tmp_path / "old.xls")


def test_oversize_table(tmp_path, monkeypatch):
    path = write_csv(tmp_path / "t.csv", ROWS)
    monkeypatch.setattr(tables, "MAX_TABLE_BYTES", 10)
    with pytest.raises(PromptFileError, match="over the .* limit"):
        read_text_table(path)


@pytest.mark.parametrize("key, expected", [
    ("covid_1", "covid_1"),                       # case id
    ("covid_1.png", "covid_1"),                   # image file name
    ("covid_1_0000.png", "covid_1"),              # nnU-Net image file name
    ("mask_covid_1.png", "covid_1"),              # LViT mask file name
    ("train/images/covid_1.png", "covid_1"),      # relative path
    ("C:\\data\\masks\\mask_covid_1.png", "covid_1"),
    ("case_00012_0000.nii.gz", "case_00012"),
    ("case_00012.nii.gz", "case_00012"),
    ("mask_x.png", "mask_x"),                     # a case really named mask_x wins over x
    ("covid_99.png", None),
    ("", None),
    ("mask_.png", None),
])
def test_match_key_to_case(key, expected):
    ids = {"covid_1", "covid_10", "case_00012", "mask_x", "x"}
    assert match_key_to_case(key, ids) == expected


def test_real_qata_table_keys_all_match_image_names():
    folder = shared_data() / "qata_cov19_dev"
    if not (folder / "train.csv").is_file():
        pytest.skip(f"real data not found at {folder}")
    rows = read_text_table(folder / "train.csv")
    with open(folder / "train.csv", encoding="utf-8-sig", newline="") as f:
        image_ids = {Path(r["image_file"]).name[:-len(".png")] for r in csv.DictReader(f)}
    assert len(rows) == len(image_ids) == 2000
    matched = {match_key_to_case(k, image_ids) for k, _ in rows}
    assert matched == image_ids
    assert all(t.strip() for _, t in rows)
