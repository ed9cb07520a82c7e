import importlib.util
import json
import os
import subprocess
import sys

import pytest

from nnunetv2_tevia.cli.prompts_cli import build_parser, prompts_entry
from nnunetv2_tevia.prompts import prompt_file
from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, load_prompts

TRAIN = ("covid_1", "covid_2", "covid_3")
TEST = ("covid_9",)
TEXTS = {"covid_1": "bilateral pulmonary infection, two infected areas.",
         "covid_2": "unilateral pulmonary infection, lower left lung.",
         "covid_3": "unilateral pulmonary infection, upper right lung."}


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    """A QaTa-like raw dataset (empty placeholder images are enough to list case ids)."""
    raw = tmp_path / "raw"
    folder = raw / "Dataset501_QaTaToy"
    for sub, ids in (("imagesTr", TRAIN), ("imagesTs", TEST)):
        (folder / sub).mkdir(parents=True)
        for cid in ids:
            (folder / sub / f"{cid}_0000.png").touch()
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "X-ray"}, "labels": {"background": 0, "infection": 1},
        "numTraining": len(TRAIN), "file_ending": ".png"}))
    monkeypatch.setenv("nnUNet_raw", str(raw))
    return folder


def run_cli(*args, env_raw=None):
    env = dict(os.environ)
    if env_raw is not None:
        env["nnUNet_raw"] = str(env_raw)
    return subprocess.run([sys.executable, "-m", "nnunetv2_tevia.cli.prompts_cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def call(capsys, *args):
    """Run in-process; returns (exit code, stdout, stderr)."""
    code = 0
    try:
        prompts_entry([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def write_prompts(folder, cases, **extra):
    doc = {"format": prompt_file.FORMAT, "version": 1, **extra, "cases": cases}
    (folder / PROMPTS_FILENAME).write_text(json.dumps(doc), encoding="utf-8")
    return folder / PROMPTS_FILENAME


# ---- as a subprocess ----------------------------------------------------------------------------

def test_init_then_validate_as_subprocess(dataset):
    raw = dataset.parent
    r = run_cli("init", "-d", "501", env_raw=raw)
    assert r.returncode == 0, r.stderr
    pf = load_prompts(dataset / PROMPTS_FILENAME, allow_empty=True)
    assert pf.cases == {c: "" for c in TRAIN + TEST}
    assert pf.classes == {"infection": ""} and pf.default is None

    # Template placeholders are not texts: one error line per case, no traceback.
    r = run_cli("validate", "-d", "Dataset501_QaTaToy", env_raw=raw)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    error_lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == len(TRAIN + TEST)
    for cid in TRAIN + TEST:
        assert sum(f"case {cid!r} has no text" in line for line in error_lines) == 1

    write_prompts(dataset, {**TEXTS, "covid_9": "left lung."}, classes={"infection": "opacity"})
    r = run_cli("validate", "-d", "501", env_raw=raw)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == [
        f"OK {dataset / PROMPTS_FILENAME}: 3/3 training and 1/1 test case(s) with text, 1 class(es), "
        f"no-report text: 'No report. Possible findings: opacity.'"]


def test_init_refuses_to_overwrite_as_subprocess(dataset):
    path = write_prompts(dataset, TEXTS)
    before = path.read_bytes()
    r = run_cli("init", "-d", "501", env_raw=dataset.parent)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: prompt file {path} already exists: edit it, merge a table into it with "
        f"`nnUNetv2_tevia_prompts import`, or pass --force to replace it with an empty template"]
    assert path.read_bytes() == before
    assert run_cli("init", "-d", "501", "--force", env_raw=dataset.parent).returncode == 0
    assert load_prompts(path, allow_empty=True).cases["covid_1"] == ""


@pytest.mark.parametrize("content", [b"{broken", b"\xff\xfe{}", b'{"format": "x", "version": 1, "cases": {}}'])
def test_validate_bad_file_as_subprocess_has_no_traceback(dataset, content):
    (dataset / PROMPTS_FILENAME).write_bytes(content)
    r = run_cli("validate", "-d", "501", env_raw=dataset.parent)
    assert r.returncode in (1, 2)
    assert "Traceback" not in r.stderr and str(dataset / PROMPTS_FILENAME) in r.stderr


def test_unknown_dataset_as_subprocess(tmp_path):
    r = run_cli("validate", "-d", "77", env_raw=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "no dataset with id 77" in r.stderr


# ---- import -------------------------------------------------------------------------------------

def _csv(path, rows, header="Image,Description", bom=False):
    import csv
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header.split(","))
        w.writerows(rows)
    return path


def _xlsx(path, rows, header=("Image", "Description")):
    import openpyxl
    wb = openpyxl.Workbook()
    wb.active.append(list(header))
    for r in rows:
        wb.active.append(list(r))
    wb.save(path)
    return path


KEY_STYLES = {"case id": lambda c: c, "image file": lambda c: f"{c}.png", "mask file": lambda c: f"mask_{c}.png",
              "nnU-Net file": lambda c: f"{c}_0000.png"}


@pytest.mark.parametrize("table_kind", ["csv", "csv-bom", "xlsx"])
@pytest.mark.parametrize("style", list(KEY_STYLES))
def test_import_creates_file_for_each_table_kind_and_key_style(dataset, tmp_path, capsys, table_kind, style):
    rows = [(KEY_STYLES[style](c), t) for c, t in TEXTS.items() if c != "covid_3"]
    table = (_xlsx(tmp_path / "t.xlsx", rows) if table_kind == "xlsx"
             else _csv(tmp_path / "t.csv", rows, bom=table_kind == "csv-bom"))
    code, out, err = call(capsys, "import", "-d", "501", "--csv", table)
    assert code == 0, err
    pf = load_prompts(dataset / PROMPTS_FILENAME, allow_empty=True)
    assert pf.cases == {"covid_1": TEXTS["covid_1"], "covid_2": TEXTS["covid_2"], "covid_3": "", "covid_9": ""}
    assert pf.classes == {"infection": ""}
    assert f"created {dataset / PROMPTS_FILENAME}" in out
    assert "matched 2 of 2 row(s): 2 new, 0 replaced, 0 unchanged" in out
    assert "cases without text: 1 training (covid_3), 1 test" in out


def test_import_merges_and_force_replaces(dataset, tmp_path, capsys):
    path = write_prompts(dataset, {"covid_1": "hand-edited text.", "covid_2": ""}, default="No report.")
    table = _csv(tmp_path / "t.csv", [("mask_covid_1.png", "table text."), ("mask_covid_2.png", "new."),
                                       ("mask_covid_3.png", TEXTS["covid_3"])])
    code, out, _ = call(capsys, "import", "-d", "501", "--csv", table)
    assert code == 0
    assert "matched 3 of 3 row(s): 2 new, 0 replaced, 0 unchanged, 1 kept although the table differs " \
           "(pass --force to replace them)" in out
    pf = load_prompts(path)
    assert pf.cases["covid_1"] == "hand-edited text." and pf.cases["covid_2"] == "new."
    assert pf.default == "No report."  # untouched by import

    code, out, _ = call(capsys, "import", "-d", "501", "--csv", table, "--force")
    assert code == 0 and "matched 3 of 3 row(s): 0 new, 1 replaced, 2 unchanged" in out
    assert load_prompts(path).cases["covid_1"] == "table text."


def test_import_lists_unmatched_rows_up_to_20(dataset, tmp_path, capsys):
    rows = [("covid_1.png", "a.")] + [(f"other_{i:02d}.png", "x.") for i in range(25)]
    code, out, _ = call(capsys, "import", "-d", "501", "--csv", _csv(tmp_path / "t.csv", rows))
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("unmatched rows"))
    assert line.startswith("unmatched rows (25): other_00.png, other_01.png")
    assert "other_19.png ... and 5 more" in line and "other_20.png" not in line


def test_import_with_custom_columns_and_prompts_path(dataset, tmp_path, capsys):
    target = tmp_path / "elsewhere" / "p.json"
    table = _csv(tmp_path / "t.csv", [("covid_1", "a.")], header="case,report")
    code, _, _ = call(capsys, "import", "-d", "501", "--csv", table, "--id-column", "case",
                      "--text-column", "report", "--prompts", target)
    assert code == 0
    assert load_prompts(target, allow_empty=True).cases["covid_1"] == "a."
    assert not (dataset / PROMPTS_FILENAME).exists()


def test_import_with_no_match_writes_nothing(dataset, tmp_path, capsys):
    table = _csv(tmp_path / "t.csv", [("1", "a."), ("2", "b.")])
    code, _, err = call(capsys, "import", "-d", "501", "--csv", table)
    assert code == 2
    assert "none of its 2 keys in column 'Image' (e.g. '1')" in err and "nothing was written" in err
    assert not (dataset / PROMPTS_FILENAME).exists()


def test_import_two_keys_for_one_case(dataset, tmp_path, capsys):
    table = _csv(tmp_path / "t.csv", [("covid_1.png", "a."), ("mask_covid_1.png", "b.")])
    code, _, err = call(capsys, "import", "-d", "501", "--csv", table)
    assert code == 2 and "keys 'covid_1.png' and 'mask_covid_1.png' both name case 'covid_1'" in err


def test_import_table_errors_are_one_line(dataset, tmp_path, capsys):
    table = _csv(tmp_path / "t.csv", [("covid_1.png", "a.")], header="Image,Text")
    code, _, err = call(capsys, "import", "-d", "501", "--csv", table)
    assert code == 2
    assert err.strip().count("\n") == 0 and "columns present: 'Image', 'Text'" in err


# ---- validate -----------------------------------------------------------------------------------

def test_validate_missing_text_error_without_fallback(dataset, capsys):
    write_prompts(dataset, {"covid_1": TEXTS["covid_1"]})
    code, out, err = call(capsys, "validate", "-d", "501")
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "training case 'covid_2' has no text" in errors[0] and "set \"default\"" in errors[0]
    assert "training case 'covid_3' has no text" in errors[1]
    assert "1 test case(s) in imagesTs have no text and need a text before inference: covid_9" in out


def test_validate_missing_text_is_a_note_with_default(dataset, capsys):
    write_prompts(dataset, {"covid_1": TEXTS["covid_1"], "covid_2": ""}, default="No report.")
    code, out, err = call(capsys, "validate", "-d", "501")
    assert code == 0, err
    assert "note: 2 training case(s) have no text and use the no-report text: covid_2, covid_3" in out
    assert out.strip().splitlines()[-1].startswith("OK ")
    assert "1/3 training" in out and "no-report text: 'No report.'" in out


def test_validate_unknown_ids_warn_or_fail_with_strict(dataset, capsys):
    write_prompts(dataset, {**TEXTS, "covid_404": "x.", "typo_1": "y."}, classes={"infecton": "z"})
    code, out, err = call(capsys, "validate", "-d", "501")
    assert code == 0
    assert "warning:" in err and "2 case id(s) are not images of imagesTr or imagesTs" in err
    assert "covid_404, typo_1" in err and "'infecton'" in err
    code, out, err = call(capsys, "validate", "-d", "501", "--strict")
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert any("case 'covid_404' is not an image" in e for e in errors)
    assert any("case 'typo_1' is not an image" in e for e in errors)
    assert any("class name(s) 'infecton' are not labels" in e for e in errors)


def test_validate_collects_every_type_error(dataset, capsys):
    write_prompts(dataset, {"covid_1": 5, "covid_2": ["a"], "covid_3": TEXTS["covid_3"]}, default=False)
    code, _, err = call(capsys, "validate", "-d", "501")
    assert code == 1
    assert "case 'covid_1': text is a number, not a string" in err
    assert "case 'covid_2': text is a list, not a string" in err
    assert '"default" is a boolean, not a string' in err


@pytest.mark.parametrize("content, expected", [
    (b"\xef\xbb\xbf{\"a\": \xff}", "is not valid UTF-8: byte 0xff at byte offset 9"),
    (b'{"format": "nnunetv2-tevia-prompts", "version": 1, "cases": {"a": "x"', "is not valid JSON"),
    (b'{"format": "nnunetv2-tevia-prompts-v0", "version": 1, "cases": {}}', '"format": \'nnunetv2-tevia-prompts-v0\''),
    (b'{"format": "nnunetv2-tevia-prompts", "version": 3, "cases": {}}', "upgrade nnunetv2_tevia"),
])
def test_validate_unreadable_or_foreign_files(dataset, capsys, content, expected):
    (dataset / PROMPTS_FILENAME).write_bytes(content)
    code, _, err = call(capsys, "validate", "-d", "501")
    assert code in (1, 2)
    assert expected in err


def test_validate_oversize(dataset, capsys, monkeypatch):
    write_prompts(dataset, TEXTS)
    monkeypatch.setattr(prompt_file, "MAX_PROMPT_FILE_BYTES", 16)
    code, _, err = call(capsys, "validate", "-d", "501")
    assert code == 2 and "over the 0 MiB limit" in err


def test_validate_missing_file_says_to_init(dataset, capsys):
    code, _, err = call(capsys, "validate", "-d", "501")
    assert code == 2 and "nnUNetv2_tevia_prompts init -d 501" in err


def test_validate_and_init_honour_prompts_option(dataset, tmp_path, capsys):
    other = tmp_path / "mine.json"
    code, _, _ = call(capsys, "init", "-d", "501", "--prompts", other)
    assert code == 0 and other.is_file() and not (dataset / PROMPTS_FILENAME).exists()
    code, _, err = call(capsys, "validate", "-d", "501", "--prompts", other)
    assert code == 1 and str(other) in err


def test_validate_ok_means_training_can_load_it(dataset, capsys):
    """The guarantee validate gives: a file it accepts loads on the strict, training-facing path."""
    write_prompts(dataset, {"covid_1": "a.", "covid_9": ""}, classes={"infection": "opacity"})
    code, _, _ = call(capsys, "validate", "-d", "501")
    assert code == 0
    load_prompts(dataset / PROMPTS_FILENAME)


def test_help_strings_follow_nnunet_style():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"init", "import", "validate"} <= set(sub.choices)
    for name in ("init", "import", "validate"):
        for action in sub.choices[name]._actions:
            if action.dest != "help":
                assert action.help.startswith(("[REQUIRED]", "[OPTIONAL]")), (name, action.dest)


@pytest.mark.skipif(importlib.util.find_spec("nnunetv2_tevia.cli.embed_cmds") is None,
                    reason="nnunetv2_tevia.cli.embed_cmds not written yet")
def test_text_subcommands_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"stats", "embed"} <= set(sub.choices)


def test_import_real_qata_table(tmp_path, monkeypatch, capsys):
    """The LViT-style QaTa table (keys are mask_<image>.png) fills every training case."""
    import csv
    from pathlib import Path

    shared = Path(os.environ.get("TEVIA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    table = shared / "qata_cov19_dev" / "train.csv"
    if not table.is_file():
        pytest.skip(f"real data not found at {table.parent}")
    folder = tmp_path / "raw" / "Dataset502_QaTa"
    (folder / "imagesTr").mkdir(parents=True)
    with open(table, encoding="utf-8-sig", newline="") as f:
        ids = [Path(r["image_file"]).stem for r in csv.DictReader(f)]
    for cid in ids:
        (folder / "imagesTr" / f"{cid}_0000.png").touch()
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "X-ray"}, "labels": {"background": 0, "infection": 1},
        "numTraining": len(ids), "file_ending": ".png"}))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    code, out, _ = call(capsys, "import", "-d", "502", "--csv", table)
    assert code == 0
    assert f"matched {len(ids)} of {len(ids)} row(s): {len(ids)} new" in out
    code, out, _ = call(capsys, "validate", "-d", "502", "--strict")
    assert code == 0 and f"{len(ids)}/{len(ids)} training" in out
