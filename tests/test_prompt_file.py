import glob
import hashlib
import json
import os
from pathlib import Path

import pytest

from nnunetv2_tevia.errors import MissingTextError, PromptFileError
from nnunetv2_tevia.prompts import prompt_file
# Aliased: pytest would collect a module-level name starting with test_.
from nnunetv2_tevia.prompts.dataset_cases import dataset_folder, label_names, training_case_ids
from nnunetv2_tevia.prompts.dataset_cases import test_case_ids as imagests_case_ids
from nnunetv2_tevia.prompts.prompt_file import (FORMAT, PROMPTS_FILENAME, VERSION, PromptFile, default_prompt_path,
                                                load_prompts, no_report_text, resolve_prompt_path, save_prompts,
                                                text_sha256)

TEXT_PROMPTS = Path(__file__).resolve().parents[1] / "text_prompts"


def make_raw_dataset(raw_root, name="Dataset001_Toy", train=("a", "b"), test=(), file_ending=".png",
                     labels=None, n_channels=1):
    folder = Path(raw_root) / name
    for sub, ids in (("imagesTr", train), ("imagesTs", test)):
        if ids:
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for cid in ids:
            for c in range(n_channels):
                (folder / sub / f"{cid}_{c:04d}{file_ending}").touch()
    folder.mkdir(parents=True, exist_ok=True)
    dj = {"channel_names": {str(c): f"ch{c}" for c in range(n_channels)},
          "labels": labels or {"background": 0, "lesion": 1}, "numTraining": len(train), "file_ending": file_ending}
    (folder / "dataset.json").write_text(json.dumps(dj))
    return folder


def write_doc(path, doc):
    Path(path).write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def doc(**over):
    d = {"format": FORMAT, "version": VERSION, "cases": {"a": "left lung."}}
    d.update(over)
    return d


# ---- loading and saving -------------------------------------------------------------------------

def test_save_load_roundtrip_keeps_unicode_and_sorts_ids(tmp_path):
    pf = PromptFile(path=None, cases={"z9": "Läsion im rechten Lungenflügel 肺", "a1": "two areas."},
                    default="No report.", classes={"lesion": "opacity", "edema": ""})
    path = save_prompts(pf, tmp_path / PROMPTS_FILENAME)
    raw = Path(path).read_text(encoding="utf-8")
    assert "肺" in raw  # written as UTF-8, not \u escapes
    assert list(json.loads(raw)["cases"]) == ["a1", "z9"]
    back = load_prompts(path)
    assert back.cases == pf.cases and back.default == pf.default and back.classes == pf.classes
    assert list(back.classes) == ["lesion", "edema"]  # label order is kept
    assert back.path == str(path)


def test_save_without_default_omits_key(tmp_path):
    path = save_prompts(PromptFile(path=str(tmp_path / "p.json"), cases={"a": "t"}))
    assert "default" not in json.loads(Path(path).read_text())


def test_utf8_bom_is_accepted(tmp_path):
    p = tmp_path / "p.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc()).encode())
    assert load_prompts(p).cases == {"a": "left lung."}


@pytest.mark.parametrize("content, expected", [
    (b'{"format": "nnunetv2-tevia-prompts",\n "version": 1,\n "cases": {"a": "x",}}', "line 3, column"),
    (b"", "not valid JSON"),
    (b"[1, 2]", "holds a list, not a JSON object"),
])
def test_malformed_json_is_reported_with_position(tmp_path, content, expected):
    p = tmp_path / "p.json"
    p.write_bytes(content)
    with pytest.raises(PromptFileError, match=expected) as e:
        load_prompts(p)
    assert str(p) in str(e.value)


def test_non_utf8_names_byte_offset(tmp_path):
    p = tmp_path / "p.json"
    good = json.dumps(doc()).encode()
    bad = good.replace(b"left", b"l\xe9ft")  # Latin-1 e-acute
    p.write_bytes(bad)
    offset = bad.index(b"\xe9")
    with pytest.raises(PromptFileError, match=rf"byte 0xe9 at byte offset {offset} \(line 1\)") as e:
        load_prompts(p)
    assert "UTF-8" in str(e.value) and str(p) in str(e.value)


@pytest.mark.parametrize("override, expected", [
    ({"format": "something-else"}, r'"format": \'something-else\'.*nnUNetv2_tevia_prompts init'),
    ({"format": None}, r'"format": None'),
    ({"version": 2}, r"newer nnunetv2_tevia.*upgrade"),
    ({"version": "1"}, r'"version": \'1\': set "version": 1'),
    ({"version": True}, r'"version": True'),
    ({"cases": ["a", "b"]}, r'"cases" is a list, not an object'),
    ({"cases": {"a": 3}}, r"case 'a': text is a number, not a string"),
    ({"cases": {"a": None}}, r"case 'a': text is null"),
    ({"cases": {"a": "  \n"}}, r"case 'a' has no text: write its report there, or set \"default\""),
    ({"cases": {"": "t"}}, r"case id in \"cases\" is empty"),
    ({"default": 5}, r'"default" is a number'),
    ({"default": " "}, r'"default" is empty'),
    ({"classes": {"lesion": ["x"]}}, r"class 'lesion': description is a list"),
    ({"classes": "lesion"}, r'"classes" is a string, not an object'),
    ({"extra": 1, "covid_1": "x"}, r"unknown top-level key\(s\) 'extra', 'covid_1'.*inside \"cases\""),
])
def test_field_errors_name_file_and_case(tmp_path, override, expected):
    path = write_doc(tmp_path / "p.json", doc(**override))
    with pytest.raises(PromptFileError, match=expected) as e:
        load_prompts(path)
    assert path in str(e.value)


def test_missing_keys(tmp_path):
    for key in ("format", "version", "cases"):
        d = doc()
        del d[key]
        with pytest.raises(PromptFileError, match=f'no "{key}"'):
            load_prompts(write_doc(tmp_path / f"no_{key}.json", d))


def test_duplicate_case_id_is_an_error(tmp_path):
    p = tmp_path / "p.json"
    p.write_text('{"format": "nnunetv2-tevia-prompts", "version": 1, "cases": {"a": "x", "a": "y"}}')
    with pytest.raises(PromptFileError, match="case 'a' appears more than once"):
        load_prompts(p)


def test_unpaired_surrogate_escape_is_an_error_not_a_crash(tmp_path):
    p = tmp_path / "p.json"
    p.write_text('{"format": "nnunetv2-tevia-prompts", "version": 1, "cases": {"a": "x\\ud800y"}}')
    with pytest.raises(PromptFileError, match=r"case 'a'.*unpaired surrogate"):
        load_prompts(p)


def test_first_problem_reported_with_count_of_the_rest(tmp_path):
    path = write_doc(tmp_path / "p.json", doc(cases={"a": 1, "b": 2, "c": 3}))
    with pytest.raises(PromptFileError, match=r"case 'a'.*and 2 more.*validate"):
        load_prompts(path)


def test_empty_placeholder_allowed_only_for_templates_or_with_fallback(tmp_path):
    path = write_doc(tmp_path / "p.json", doc(cases={"a": "", "b": "right lung."}))
    with pytest.raises(PromptFileError, match="case 'a' has no text"):
        load_prompts(path)
    assert load_prompts(path, allow_empty=True).cases["a"] == ""
    # With a no-report text the placeholder means "no report" and training may use the file.
    assert load_prompts(write_doc(tmp_path / "d.json", doc(cases={"a": ""}, default="No report."))).cases == {"a": ""}
    assert load_prompts(write_doc(tmp_path / "c.json", doc(cases={"a": ""}, classes={"x": "opacity"}))).cases


def test_missing_file(tmp_path):
    with pytest.raises(PromptFileError, match="does not exist.*init"):
        load_prompts(tmp_path / "nope.json")


def test_oversize_file_rejected_before_reading(tmp_path, monkeypatch):
    path = write_doc(tmp_path / "p.json", doc())
    monkeypatch.setattr(prompt_file, "MAX_PROMPT_FILE_BYTES", 10)
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    with pytest.raises(PromptFileError, match="over the .* limit"):
        load_prompts(path)
    assert path not in opened


# ---- no-report text, text lookup, hashing -------------------------------------------------------

def test_no_report_text_rule():
    assert no_report_text(PromptFile(None, {}, default="Normal chest X-ray.", classes={"x": "y"})) \
        == "Normal chest X-ray."
    pf = PromptFile(None, {}, default=None, classes={"edema": "oedema around it.", "core": "", "enh": " bright rim "})
    assert no_report_text(pf) == "No report. Possible findings: oedema around it; bright rim."
    assert no_report_text(PromptFile(None, {}, default="  ", classes={"a": "b"})) == "No report. Possible findings: b."
    assert no_report_text(PromptFile(None, {}, classes={"a": ""})) == ""
    assert no_report_text(PromptFile(None, {})) == ""


def test_a_case_gets_its_report_else_the_default_else_a_refusal_naming_file_case_and_fix():
    """The one rule (prompts/text_choice.py) read with a prompt file, as prediction reads it."""
    from nnunetv2_tevia.prompts.text_choice import DEFAULT, REPORT, choose_texts, prediction_rule

    def rule(pf):
        return prediction_rule("", serves_no_report=False, case_text=True, allow_missing_text=False,
                               default=pf.default, prompt_path=pf.path)

    pf = PromptFile("/x/p.json", {"a": "left.", "b": ""}, default="No report.")
    chosen = choose_texts(["a", "b", "zz"], pf.cases, rule(pf))
    assert chosen == {"a": (REPORT, "left."), "b": (DEFAULT, "No report."), "zz": (DEFAULT, "No report.")}
    bare = PromptFile("/x/p.json", {"b": ""})
    with pytest.raises(MissingTextError, match=r"1 case\(s\) to predict have no report text in /x/p.json: b\. .*"
                                               r"set a \"default\""):
        choose_texts(["b"], bare.cases, rule(bare))


def test_text_sha256_is_sha256_of_utf8():
    assert text_sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert text_sha256("Läsion") == hashlib.sha256("Läsion".encode("utf-8")).hexdigest()
    assert text_sha256("a ") != text_sha256("a")


# ---- dataset case ids ---------------------------------------------------------------------------

def test_case_ids_png_and_multichannel_nifti(tmp_path):
    png = make_raw_dataset(tmp_path, "Dataset001_P", train=("covid_2", "covid_10"), test=("t1",))
    (png / "imagesTr" / "notes.png").touch()  # no channel suffix: not a case
    (png / "imagesTr" / "readme.txt").touch()
    assert training_case_ids(str(png)) == ["covid_10", "covid_2"]
    assert imagests_case_ids(str(png)) == ["t1"]
    nii = make_raw_dataset(tmp_path, "Dataset002_N", train=("case_00000", "case_00001"), file_ending=".nii.gz",
                           n_channels=4)
    assert training_case_ids(str(nii)) == ["case_00000", "case_00001"]
    assert imagests_case_ids(str(nii)) == []


def test_case_ids_from_dataset_key(tmp_path):
    folder = make_raw_dataset(tmp_path, train=())
    dj = json.loads((folder / "dataset.json").read_text())
    dj["dataset"] = {"x2": {"images": ["/d/x2.png"], "label": "/d/x2_l.png"}, "x1": {"images": [], "label": ""}}
    (folder / "dataset.json").write_text(json.dumps(dj))
    assert training_case_ids(str(folder)) == ["x1", "x2"]


def test_label_names_exclude_background_and_keep_regions(tmp_path):
    folder = make_raw_dataset(tmp_path, labels={"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3],
                                                "enhancing tumor": 3})
    assert label_names(str(folder)) == ["whole tumor", "tumor core", "enhancing tumor"]


def test_dataset_json_problems(tmp_path):
    folder = tmp_path / "Dataset009_Bad"
    folder.mkdir()
    with pytest.raises(PromptFileError, match="dataset.json does not exist"):
        training_case_ids(str(folder))
    (folder / "dataset.json").write_text("{not json")
    with pytest.raises(PromptFileError, match="dataset.json cannot be read"):
        training_case_ids(str(folder))
    (folder / "dataset.json").write_text('{"labels": {"background": 0}}')
    with pytest.raises(PromptFileError, match="file_ending"):
        training_case_ids(str(folder))


def test_dataset_folder_reads_environment_at_call_time(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    folder = make_raw_dataset(raw, "Dataset042_Toy")
    monkeypatch.setenv("nnUNet_raw", str(raw))
    assert dataset_folder(42) == str(folder)
    assert dataset_folder("42") == str(folder)
    assert dataset_folder("Dataset042_Toy") == str(folder)
    assert dataset_folder(str(folder)) == str(folder)
    assert default_prompt_path(42) == str(folder / PROMPTS_FILENAME)
    assert resolve_prompt_path(42, None) == str(folder / PROMPTS_FILENAME)
    assert resolve_prompt_path(999, "rel.json") == os.path.abspath("rel.json")  # no dataset lookup needed
    with pytest.raises(PromptFileError, match="no dataset with id 7"):
        dataset_folder(7)
    with pytest.raises(PromptFileError, match="neither a dataset id"):
        dataset_folder("Liver")
    make_raw_dataset(raw, "Dataset042_Other")
    with pytest.raises(PromptFileError, match="matches several folders"):
        dataset_folder(42)
    monkeypatch.delenv("nnUNet_raw")
    with pytest.raises(PromptFileError, match="nnUNet_raw is not set"):
        dataset_folder(42)


# ---- shipped JSON files -------------------------------------------------------------------------

SHIPPED = sorted(p for p in glob.glob(str(TEXT_PROMPTS / "*.json")) if not p.endswith(".schema.json"))


def test_shipped_files_exist():
    names = {Path(p).name for p in SHIPPED}
    expected = {f"MSD_Task{i:02d}_{n}.json" for i, n in enumerate(
        ["BrainTumour", "Heart", "Liver", "Hippocampus", "Prostate", "Lung", "Pancreas", "HepaticVessel", "Spleen",
         "Colon"], start=1)} | {"KiTS23.json", "BraTS2021.json", "AMOS22.json", "example_tevia_prompts.json"}
    assert expected <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: Path(p).name)
def test_shipped_file_loads_and_matches_schema(path):
    pf = load_prompts(path)
    assert no_report_text(pf)  # every shipped file gives a usable no-report text
    if Path(path).name != "example_tevia_prompts.json":
        assert pf.cases == {} and pf.classes and all(d.strip() for d in pf.classes.values())
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((TEXT_PROMPTS / "tevia_prompts.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(Path(path).read_text(encoding="utf-8")), schema,
                        cls=jsonschema.Draft202012Validator)


def test_templates_use_the_label_names_of_the_nnunet_conversions():
    def classes(name):
        return list(load_prompts(TEXT_PROMPTS / name).classes)

    assert classes("MSD_Task01_BrainTumour.json") == ["edema", "non-enhancing tumor", "enhancing tumour"]
    assert classes("MSD_Task05_Prostate.json") == ["PZ", "TZ"]
    assert classes("BraTS2021.json") == ["whole tumor", "tumor core", "enhancing tumor"]
    assert classes("KiTS23.json") == ["kidney", "masses", "tumor"]
    amos = classes("AMOS22.json")
    assert len(amos) == 15 and amos[0] == "spleen" and amos[-1] == "prostate/uterus"


@pytest.mark.parametrize("document, valid", [
    (doc(), True),
    (doc(cases={"a": ""}), False),
    (doc(cases={"a": ""}, default="No report."), True),
    (doc(cases={"a": ""}, classes={"x": ""}), False),
    (doc(cases={"a": ""}, classes={"x": "", "y": "opacity"}), True),
    (doc(default=""), False),
    (doc(version=2), False),
    (doc(extra=1), False),
    (doc(cases={"": "t"}), False),
    (doc(cases={"a": 3}), False),
    (doc(classes={"x": 1}), False),
])
def test_schema_and_loader_agree(tmp_path, document, valid):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((TEXT_PROMPTS / "tevia_prompts.schema.json").read_text())
    assert jsonschema.Draft202012Validator(schema).is_valid(document) == valid
    path = write_doc(tmp_path / "p.json", document)
    if valid:
        load_prompts(path)
    else:
        with pytest.raises(PromptFileError):
            load_prompts(path)
