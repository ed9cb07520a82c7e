"""nnUNetv2_tevia_convert: tiny sources in each layout, read back the way nnU-Net reads them."""
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnunetv2_tevia.convert import ConversionError, convert_dataset, detect_layout, sanitize_case_id
from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, load_prompts

RNG = np.random.default_rng(0)
SHARED_DATA = Path(os.environ.get("TEVIA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# ---------------------------------------------------------------- source builders
def _grey(h=12, w=16):
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def _colour(h=12, w=16):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mask(h=12, w=16):
    m = np.zeros((h, w), np.uint8)
    m[: h // 2, : w // 2] = 255
    return m


def _save(arr, path, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def _write_csv(path, header, rows, bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _write_xlsx(path, header, rows):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(list(r))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    wb.save(path)


def _convert(src, out, dataset_id=7, name="Tiny", **kw):
    kw.setdefault("num_processes", 1)
    kw.setdefault("progress", False)
    return convert_dataset(str(src), dataset_id, name, output_root=str(out), **kw)


def _read(path):
    return np.asarray(Image.open(path))


def _dataset_json(folder):
    with open(os.path.join(folder, "dataset.json")) as f:
        return json.load(f)


def _nnunet_read(folder, case_id, split="Tr"):
    """Image and label as nnU-Net's NaturalImage2DIO hands them to planning: (C, 1, H, W)."""
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    if split == "Tr":
        entry = get_filenames_of_train_images_and_targets(folder)[case_id]
        files, label = entry["images"], entry["label"]
    else:
        files = sorted(str(p) for p in Path(folder, "imagesTs").glob(f"{case_id}_????.png"))
        label = os.path.join(folder, "labelsTs", f"{case_id}.png")
    io = NaturalImage2DIO()
    img, _ = io.read_images(files)
    seg, _ = io.read_seg(label)
    return img, seg


# ---------------------------------------------------------------- shared-data layout
def _qata_like(root, bom):
    """QaTa: grey PNGs, masks mask_<name>.png, tables keyed by the mask file name."""
    texts = {}
    for split, names in (("train", ["covid_1", "covid_2", "covid_3"]), ("val", ["covid_9", "covid_10"])):
        rows = []
        for n in names:
            _save(_grey(), f"{root}/{split}/images/{n}.png")
            _save(_mask(), f"{root}/{split}/masks/mask_{n}.png")
            texts[n] = f"left lung, case {n}."
            rows.append((f"mask_{n}.png", f"{split}/images/{n}.png", texts[n], 1))
        _write_csv(f"{root}/{split}.csv", ["Image", "image_file", "Description", "infected_area"], rows,
                   bom=bom and split == "train")
    return texts


def test_shared_layout_grey_csv_with_and_without_bom(tmp_path):
    texts = _qata_like(tmp_path / "src", bom=True)
    report = _convert(tmp_path / "src", tmp_path / "raw")
    folder = tmp_path / "raw" / "Dataset007_Tiny"
    assert report.dataset_folder == str(folder) and report.layout == "shared-data"

    dj = _dataset_json(folder)
    assert dj["channel_names"] == {"0": "gray"}
    assert dj["labels"] == {"background": 0, "lesion": 1}
    assert dj["numTraining"] == 3 and dj["file_ending"] == ".png"
    assert dj["overwrite_image_reader_writer"] == "NaturalImage2DIO"

    assert sorted(os.listdir(folder / "imagesTr")) == [f"covid_{i}_0000.png" for i in (1, 2, 3)]
    assert sorted(os.listdir(folder / "imagesTs")) == ["covid_10_0000.png", "covid_9_0000.png"]
    assert sorted(os.listdir(folder / "labelsTs")) == ["covid_10.png", "covid_9.png"]
    # Pixels are copied exactly, masks binarised.
    src = _read(tmp_path / "src/train/images/covid_2.png")
    np.testing.assert_array_equal(_read(folder / "imagesTr/covid_2_0000.png"), src)
    np.testing.assert_array_equal(_read(folder / "labelsTr/covid_2.png"), _mask() // 255)

    img, seg = _nnunet_read(str(folder), "covid_2")
    assert img.shape == (1, 1, 12, 16) and set(np.unique(seg)) == {0, 1}
    img, seg = _nnunet_read(str(folder), "covid_9", split="Ts")
    assert img.shape == (1, 1, 12, 16) and set(np.unique(seg)) == {0, 1}

    pf = load_prompts(folder / PROMPTS_FILENAME)
    assert pf.cases == texts
    sources = json.loads((folder / "tevia_convert_sources.json").read_text())
    assert sources["cases"]["covid_9"]["split"] == "val" and sources["cases"]["covid_9"]["folder"] == "imagesTs"


def _kvasir_like(root, n_train=3, size=16):
    """Kvasir: RGB JPEGs, masks with the image's stem as PNG, tables keyed by the image file name."""
    texts = {}
    for split, k in (("train", n_train), ("val", 1)):
        rows = []
        for i in range(k):
            name = f"cj{split}{i}"
            _save(_colour(size, size), f"{root}/{split}/images/{name}.jpg", quality=95)
            _save(_mask(size, size), f"{root}/{split}/masks/{name}.png")
            texts[name] = f"one small pink polyp {i}"
            rows.append((f"{name}.jpg", texts[name], "polyp"))
        _write_csv(f"{root}/{split}.csv", ["Image", "Description", "p1"], rows)
    return texts


def test_rgb_jpeg_gives_three_channels(tmp_path):
    texts = _kvasir_like(tmp_path / "src")
    _convert(tmp_path / "src", tmp_path / "raw", label_name="polyp")
    folder = tmp_path / "raw" / "Dataset007_Tiny"
    dj = _dataset_json(folder)
    assert dj["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert dj["labels"] == {"background": 0, "polyp": 1}
    assert sorted(os.listdir(folder / "imagesTr"))[:3] == ["cjtrain0_0000.png", "cjtrain0_0001.png",
                                                          "cjtrain0_0002.png"]
    decoded = np.asarray(Image.open(tmp_path / "src/train/images/cjtrain1.jpg").convert("RGB"))
    for c in range(3):
        np.testing.assert_array_equal(_read(folder / f"imagesTr/cjtrain1_{c:04d}.png"), decoded[..., c])
    img, seg = _nnunet_read(str(folder), "cjtrain1")
    assert img.shape == (3, 1, 16, 16) and seg.shape == (1, 1, 16, 16)
    assert load_prompts(folder / PROMPTS_FILENAME).cases == texts


def test_size_resamples_images_bilinear_and_masks_nearest(tmp_path):
    _kvasir_like(tmp_path / "src", n_train=1, size=16)
    flat = np.full((16, 16, 3), (10, 200, 90), np.uint8)
    _save(flat, tmp_path / "src/train/images/cjtrain0.png")  # lossless, so the flat colour stays exact
    os.remove(tmp_path / "src/train/images/cjtrain0.jpg")
    _write_csv(tmp_path / "src/train.csv", ["Image", "Description"], [("cjtrain0.png", "a polyp")])
    _convert(tmp_path / "src", tmp_path / "raw", size=8)
    folder = tmp_path / "raw" / "Dataset007_Tiny"
    for c, value in enumerate((10, 200, 90)):
        out = _read(folder / f"imagesTr/cjtrain0_{c:04d}.png")
        assert out.shape == (8, 8) and np.all(out == value)
    label = _read(folder / "labelsTr/cjtrain0.png")
    expected = np.zeros((8, 8), np.uint8)
    expected[:4, :4] = 1
    np.testing.assert_array_equal(label, expected)
    # Bilinear (antialiased) on a ramp: values stay within the source range and keep its order.
    ramp = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    from nnunetv2_tevia.convert.images import resize_channel

    small = resize_channel(ramp, 8, nearest=False)
    assert small.shape == (8, 8) and np.all(np.diff(small[0].astype(int)) > 0)
    assert 0 <= small.min() and small.max() <= 240
    assert _dataset_json(folder)["tevia_conversion"]["size"] == 8


def test_unexpected_mask_values_become_foreground_above_127_with_one_warning(tmp_path):
    _qata_like(tmp_path / "src", bom=False)
    soft = _mask()
    soft[0, :] = 128   # anti-aliased edge
    soft[1, :] = 127
    _save(soft, tmp_path / "src/train/masks/mask_covid_1.png")
    _save(np.where(_mask() > 0, 1, 0).astype(np.uint8), tmp_path / "src/train/masks/mask_covid_2.png")  # {0, 1}
    report = _convert(tmp_path / "src", tmp_path / "raw")
    label = _read(tmp_path / "raw/Dataset007_Tiny/labelsTr/covid_1.png")
    assert label[0].all() and not label[1].any()
    np.testing.assert_array_equal(_read(tmp_path / "raw/Dataset007_Tiny/labelsTr/covid_2.png"), _mask() // 255)
    mask_warnings = [w for w in report.warnings if "mask(s) held values" in w]
    assert len(mask_warnings) == 1 and mask_warnings[0].startswith("1 mask(s)")


# ---------------------------------------------------------------- LViT layout
def _lvit_like(root, *, mosmed_columns=False, combined_train_val=False):
    """LViT download: <Split>_Folder/img + labelcol, <Split>_text.xlsx; keys are mask names."""
    id_col, text_col = ("Image_name", "Text") if mosmed_columns else ("Image", "Description")
    texts, combined = {}, []
    for split, names in (("Train", ["study_1", "study_2"]), ("Val", ["study_5"]), ("Test", ["study_8"])):
        rows = []
        for n in names:
            _save(_grey(), f"{root}/{split}_Folder/img/{n}.png")
            _save(_mask(), f"{root}/{split}_Folder/labelcol/mask_{n}.png")
            texts[n] = f"{split} lesion in {n}"
            rows.append((f"mask_{n}.png", texts[n]))
        if combined_train_val and split != "Test":
            combined += rows
        else:
            _write_xlsx(f"{root}/{split}_Folder/{split}_text.xlsx", [id_col, text_col], rows)
    if combined_train_val:
        _write_xlsx(f"{root}/Train_Val_text.xlsx", [id_col, text_col], combined + [("mask_ghost.png", "no image")])
    return texts


def test_lvit_layout_xlsx_test_split_skipped_by_default(tmp_path):
    texts = _lvit_like(tmp_path / "src")
    layout = detect_layout(str(tmp_path / "src"))
    assert layout.kind == "lvit" and [s.role for s in layout.splits] == ["test", "train", "val"]
    report = _convert(tmp_path / "src", tmp_path / "raw")
    folder = tmp_path / "raw" / "Dataset007_Tiny"
    assert sorted(os.listdir(folder / "imagesTr")) == ["study_1_0000.png", "study_2_0000.png"]
    assert sorted(os.listdir(folder / "imagesTs")) == ["study_5_0000.png"]
    assert {s.name: s.destination for s in report.splits}["Test"] == "skipped"
    assert load_prompts(folder / PROMPTS_FILENAME).cases == {k: v for k, v in texts.items() if k != "study_8"}

    report = _convert(tmp_path / "src", tmp_path / "raw", test_split_into="imagesTs", overwrite=True)
    assert sorted(os.listdir(folder / "imagesTs")) == ["study_5_0000.png", "study_8_0000.png"]
    assert sorted(os.listdir(folder / "labelsTs")) == ["study_5.png", "study_8.png"]
    assert load_prompts(folder / PROMPTS_FILENAME).cases == texts
    assert any("val and test" in w for w in report.warnings)


def test_lvit_combined_table_and_unmatched_rows_and_images(tmp_path):
    texts = _lvit_like(tmp_path / "src", combined_train_val=True)
    _save(_grey(), tmp_path / "src/Train_Folder/img/study_3.png")          # image without a row
    _save(_mask(), tmp_path / "src/Train_Folder/labelcol/mask_study_3.png")
    report = _convert(tmp_path / "src", tmp_path / "raw")
    folder = tmp_path / "raw" / "Dataset007_Tiny"
    assert report.rows_without_image == 1 and report.examples_rows_without_image == ["mask_ghost.png"]
    train = next(s for s in report.splits if s.name == "Train")
    assert train.images_without_row == 1 and train.converted == 2
    assert not (folder / "imagesTr/study_3_0000.png").exists()

    report = _convert(tmp_path / "src", tmp_path / "raw", overwrite=True, keep_images_without_text=True)
    assert (folder / "imagesTr/study_3_0000.png").exists() and _dataset_json(folder)["numTraining"] == 3
    cases = load_prompts(folder / PROMPTS_FILENAME).cases
    assert "study_3" not in cases and cases["study_5"] == texts["study_5"]


def test_mosmed_like_column_names_are_found_and_can_be_named(tmp_path):
    texts = _lvit_like(tmp_path / "src", mosmed_columns=True)
    report = _convert(tmp_path / "src", tmp_path / "raw")
    assert len(report.columns) == 3 and all(c == ["Image_name", "Text"] for c in report.columns.values())
    cases = load_prompts(tmp_path / "raw/Dataset007_Tiny" / PROMPTS_FILENAME).cases
    assert cases["study_1"] == texts["study_1"]

    # Every table of the download shares the odd header; an explicit column must exist in each of them.
    for split, names in (("Train", ["study_1", "study_2"]), ("Val", ["study_5"]), ("Test", ["study_8"])):
        _write_xlsx(tmp_path / f"src/{split}_Folder/{split}_text.xlsx", ["file", "Findings text", "remark"],
                    [(f"mask_{n}.png", f"custom {n}", "x") for n in names])
    with pytest.raises(PromptFileError, match=r"none of its columns .* looks like the report text column.*--text-col"):
        _convert(tmp_path / "src", tmp_path / "raw", overwrite=True)
    with pytest.raises(PromptFileError, match=r"no column 'nope'.*'file', 'Findings text', 'remark'"):
        _convert(tmp_path / "src", tmp_path / "raw", overwrite=True, text_column="nope")
    _convert(tmp_path / "src", tmp_path / "raw", overwrite=True, id_column="file", text_column="Findings text")
    assert load_prompts(tmp_path / "raw/Dataset007_Tiny" / PROMPTS_FILENAME).cases["study_2"] == "custom study_2"


# ---------------------------------------------------------------- case ids, output folder, errors
def test_case_ids_are_sanitised_and_unique_across_splits(tmp_path):
    src = tmp_path / "src"
    for split in ("train", "val"):
        _save(_grey(), f"{src}/{split}/images/scan 1 (a).png")
        _save(_mask(), f"{src}/{split}/masks/scan 1 (a).png")
        _write_csv(f"{src}/{split}.csv", ["Image", "Description"], [("scan 1 (a).png", f"{split} text")])
    _convert(src, tmp_path / "raw")
    folder = tmp_path / "raw" / "Dataset007_Tiny"
    assert os.listdir(folder / "imagesTr") == ["scan_1_a_0000.png"]
    assert os.listdir(folder / "imagesTs") == ["scan_1_a_val_0000.png"]
    assert load_prompts(folder / PROMPTS_FILENAME).cases == {"scan_1_a": "train text", "scan_1_a_val": "val text"}
    assert sanitize_case_id("covid_1001") == "covid_1001"


def test_existing_dataset_needs_overwrite_and_is_replaced_whole(tmp_path):
    _qata_like(tmp_path / "src", bom=False)
    _convert(tmp_path / "src", tmp_path / "raw")
    folder = tmp_path / "raw" / "Dataset007_Tiny"
    (folder / "imagesTr" / "stale_0000.png").write_bytes(b"old")
    with pytest.raises(ConversionError, match="--overwrite"):
        _convert(tmp_path / "src", tmp_path / "raw")
    _convert(tmp_path / "src", tmp_path / "raw", overwrite=True)
    assert not (folder / "imagesTr" / "stale_0000.png").exists()
    assert sorted(os.listdir(tmp_path / "raw")) == ["Dataset007_Tiny"]  # no temporary folders left
    with pytest.raises(ConversionError, match="Dataset007_Tiny with id 7"):
        _convert(tmp_path / "src", tmp_path / "raw", name="Other", overwrite=True)


def test_output_root_comes_from_nnUNet_raw_at_call_time(tmp_path, monkeypatch):
    _qata_like(tmp_path / "src", bom=False)
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(ConversionError, match="nnUNet_raw is not set"):
        convert_dataset(str(tmp_path / "src"), 8, "Env", num_processes=1, progress=False)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "envraw"))
    report = convert_dataset(str(tmp_path / "src"), 8, "Env", num_processes=1, progress=False)
    assert report.dataset_folder == str(tmp_path / "envraw" / "Dataset008_Env")


def test_mismatched_mask_size_names_both_files(tmp_path):
    _qata_like(tmp_path / "src", bom=False)
    _save(_mask(6, 6), tmp_path / "src/train/masks/mask_covid_3.png")
    with pytest.raises(ConversionError, match=r"case covid_3: mask .*mask_covid_3.png is 6x6 but image .*16x12"):
        _convert(tmp_path / "src", tmp_path / "raw")
    assert not (tmp_path / "raw" / "Dataset007_Tiny").exists()
    assert os.listdir(tmp_path / "raw") == []


def test_cli_exits_2_with_one_line_when_nothing_matches(tmp_path, monkeypatch, capsys):
    from nnunetv2_tevia.cli.convert import convert_entry

    _qata_like(tmp_path / "src", bom=False)
    for split in ("train", "val"):
        _write_csv(tmp_path / f"src/{split}.csv", ["Image", "Description"], [("unrelated.png", "text")])
    monkeypatch.setattr(sys, "argv", ["nnUNetv2_tevia_convert", "-i", str(tmp_path / "src"), "-d", "9", "-n", "X",
                                      "-o", str(tmp_path / "raw"), "--no-progress", "-np", "1"])
    with pytest.raises(SystemExit) as e:
        convert_entry()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no image matched a table row" in err and "\n" not in err
    assert "5 image(s) without a row" in err


def test_cli_mirror_writes_the_word_map_and_no_flag_writes_none(tmp_path, monkeypatch):
    from nnunetv2_tevia.cli.convert import convert_entry
    from nnunetv2_tevia.prompts.mirror_words import DEFAULT_2D_MAP

    _kvasir_like(tmp_path / "src")
    for flag, dataset_id in (["--mirror", "2d"], 11), ([], 12):
        monkeypatch.setattr(sys, "argv", ["nnUNetv2_tevia_convert", "-i", str(tmp_path / "src"), "-d", str(dataset_id),
                                          "-n", "K", "-o", str(tmp_path / "raw"), "--no-progress", "-np", "1", *flag])
        convert_entry()
        pf = load_prompts(tmp_path / "raw" / f"Dataset0{dataset_id}_K" / PROMPTS_FILENAME)
        assert pf.mirror == (DEFAULT_2D_MAP if flag else None)


def test_unknown_folder_is_explained(tmp_path):
    (tmp_path / "src" / "pictures").mkdir(parents=True)
    with pytest.raises(ConversionError, match="found neither"):
        detect_layout(str(tmp_path / "src"))


# ---------------------------------------------------------------- real data (skips when absent)
@pytest.mark.parametrize("folder, label", [("qata_cov19_dev", "lesion"), ("kvasir_seg_text", "polyp")])
def test_real_shared_data_few_cases(tmp_path, folder, label):
    src = SHARED_DATA / folder
    if not (src / "train.csv").is_file():
        pytest.skip(f"{src} is absent (real data lives in ../shared/data beside the checkout)")
    report = convert_dataset(str(src), 11, "Real", output_root=str(tmp_path), size=32, limit=3,
                             label_name=label, num_processes=2, progress=False)
    out = Path(report.dataset_folder)
    dj = _dataset_json(out)
    assert dj["numTraining"] == 3 and report.num_test == 3
    n_channels = 3 if folder.startswith("kvasir") else 1
    assert len(dj["channel_names"]) == n_channels
    with open(src / "train.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    expected = {}
    for r in rows:
        stem = os.path.splitext(os.path.basename(r["image_file"]))[0]
        expected[stem] = r["Description"].strip()
    cases = load_prompts(out / PROMPTS_FILENAME).cases
    train_ids = sorted(p.name[:-9] for p in (out / "imagesTr").glob("*_0000.png"))
    assert len(train_ids) == 3 and all(cases[c] == expected[c] for c in train_ids)
    for c in train_ids:
        img, seg = _nnunet_read(str(out), c)
        assert img.shape == (n_channels, 1, 32, 32) and set(np.unique(seg)) <= {0, 1} and seg.max() == 1
