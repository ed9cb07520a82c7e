"""Broken input through the real command-line tools: one line naming the file, the case and the fix, no traceback.

Every test runs an installed console script in a subprocess against one tiny raw dataset (dataset.json and
placeholder image files: the prompt and embed commands never read the pixels) and a fake results folder,
so nothing here needs nnU-Net preprocessing or training. docs/troubleshooting.md lists these messages.
"""
import ast
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnunetv2_tevia.cli._common import exit_on_user_error

REPO = Path(__file__).resolve().parents[1]
DATASET = "Dataset987_Errors"
TRAIN = ["case_a", "case_b", "case_c"]
TEST = ["test_a"]
REPORTS = {"case_a": "Two lesions in the left lung.", "case_b": "One lesion in the right lung.",
           "case_c": "No finding.", "test_a": "Lesion in the upper left lung."}
TRAINER_FOLDER = "nnUNetTrainerTeViA__nnUNetPlans__2d"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    raw = root / "raw" / DATASET
    for sub, ids in (("imagesTr", TRAIN), ("imagesTs", TEST)):
        (raw / sub).mkdir(parents=True)
        for cid in ids:
            (raw / sub / f"{cid}_0000.png").write_bytes(b"placeholder")
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "X-ray"}, "labels": {"background": 0, "lesion": 1},
        "numTraining": len(TRAIN), "file_ending": ".png"}))
    prompts = {"format": "nnunetv2-tevia-prompts", "version": 1, "cases": dict(REPORTS),
               "paraphrase": {"variants": 0}}  # the repair test counts the texts it recomputes
    (raw / "tevia_prompts.json").write_text(json.dumps(prompts, indent=2))
    (root / "pre").mkdir()
    # a model folder with fold 0 only: enough for the checks that run before any weights are loaded
    fold0 = root / "results" / DATASET / TRAINER_FOLDER / "fold_0"
    fold0.mkdir(parents=True)
    (fold0 / "checkpoint_final.pth").write_bytes(b"placeholder")
    (fold0.parent / "dataset.json").write_text((raw / "dataset.json").read_text())
    env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"),
               nnUNet_results=str(root / "results"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               nnUNet_compile="false", nnUNet_def_n_proc="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return {"root": root, "raw": raw, "prompts": prompts, "env": env}


def _script(name: str) -> str:
    # the console script of this interpreter's environment, even when that environment is not activated
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.isfile(beside) else (shutil.which(name) or name)


def run(ws, script, *args):
    return subprocess.run([_script(script), *map(str, args)], env=ws["env"], capture_output=True, text=True,
                          timeout=240, cwd=ws["root"])


def bad_prompts(ws, name, doc=None, raw=None) -> Path:
    path = ws["root"] / name
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    return path


def with_case(ws, cid, value) -> dict:
    doc = json.loads(json.dumps(ws["prompts"]))
    doc["cases"][cid] = value
    return doc


def assert_user_error(p, *needles, one_line=True, code=2):
    """Exit ``code``, no traceback, one ``error:`` line holding every needle. ``one_line``: nothing else on
    stderr (commands that fail before importing torch and transformers, whose warnings are not ours)."""
    err = p.stderr
    assert p.returncode == code, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or ": error: " in line]
    assert len(errors) == 1, err
    if one_line:
        assert lines == errors, err
    for needle in needles:
        assert str(needle) in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


# ------------------------------------------------------------------------------------------- prompt file
@pytest.mark.parametrize("command", ["validate", "embed", "stats"])
def test_malformed_json_names_file_and_position(ws, command):
    path = bad_prompts(ws, f"malformed_{command}.json",
                       raw=b'{"format": "nnunetv2-tevia-prompts",\n "cases": {"a": "x",}}')
    line = assert_user_error(run(ws, "nnUNetv2_tevia_prompts", command, "-d", DATASET, "--prompts", path),
                             path, "not valid JSON", "line 2")
    assert " at at " not in line


@pytest.mark.parametrize("doc, needles", [
    ({"format": "something-else", "version": 1, "cases": {}}, ['"format"', "nnUNetv2_tevia_prompts init"]),
    ({"format": "nnunetv2-tevia-prompts", "version": 7, "cases": {}}, ['"version": 7', "upgrade nnunetv2_tevia"]),
])
def test_wrong_format_or_version(ws, doc, needles):
    path = bad_prompts(ws, f"format_{doc['version']}.json", doc)
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "embed", "-d", DATASET, "--prompts", path), path, *needles)


@pytest.mark.parametrize("value, needles", [
    (42, ["'case_b'", "a number, not a string"]),
    ("   ", ["'case_b'", "has no text", '"default"']),
])
def test_text_not_a_string_or_empty_names_the_case(ws, value, needles):
    path = bad_prompts(ws, f"case_{type(value).__name__}.json", with_case(ws, "case_b", value))
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "embed", "-d", DATASET, "--prompts", path), path, *needles)


def test_plan_and_preprocess_checks_prompts_before_nnunet(ws):
    path = bad_prompts(ws, "pp_empty.json", with_case(ws, "case_c", ""))
    assert_user_error(run(ws, "nnUNetv2_tevia_plan_and_preprocess", "-d", DATASET, "-c", "2d", "--prompts", path),
                      path, "'case_c'")
    assert not (ws["root"] / "pre" / DATASET / "nnUNetPlans.json").exists()


def test_not_utf8(ws):
    raw = json.dumps(with_case(ws, "case_a", "Zwei Knötchen"), ensure_ascii=False).encode("latin-1")
    path = bad_prompts(ws, "latin1.json", raw=raw)
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "validate", "-d", DATASET, "--prompts", path),
                      path, "not valid UTF-8", "byte 0xf6", "save the file with UTF-8")


def test_over_256_mib_is_refused_without_reading(ws):
    path = ws["root"] / "huge.json"
    with open(path, "wb") as f:
        f.truncate(300 * 2 ** 20)  # sparse: no disk space, and the command must not read it
    try:
        assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "validate", "-d", DATASET, "--prompts", path),
                          path, "300 MiB", "256 MiB limit")
    finally:
        path.unlink()


def test_unknown_case_id_is_an_error_with_strict(ws):
    path = bad_prompts(ws, "ghost.json", with_case(ws, "ghost_1", "text"))
    p = run(ws, "nnUNetv2_tevia_prompts", "validate", "-d", DATASET, "--prompts", path, "--strict")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "'ghost_1' is not an image of imagesTr or imagesTs" in p.stderr and str(path) in p.stderr


# ------------------------------------------------------------------------------------------- tables
def test_duplicate_ids_in_csv_and_xlsx_write_nothing(ws):
    import openpyxl

    csv_path = ws["root"] / "dup.csv"
    csv_path.write_text("Image,Description\ncase_a.png,first\ncase_b.png,second\nmask_case_a.png,again\n")
    xlsx_path = ws["root"] / "dup.xlsx"
    wb = openpyxl.Workbook()
    for row in (["Image", "Description"], ["case_a.png", "a"], ["case_b.png", "b"], ["case_a.png", "c"]):
        wb.active.append(row)
    wb.save(xlsx_path)
    target = ws["root"] / "imported.json"
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "import", "-d", DATASET, "--csv", csv_path, "--prompts",
                          target), csv_path, "'case_a.png'", "'mask_case_a.png'", "case 'case_a'", "one row per case")
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "import", "-d", DATASET, "--csv", xlsx_path, "--prompts",
                          target), xlsx_path, "row 2 and row 4")
    assert not target.exists()


def test_table_not_utf8(ws):
    path = ws["root"] / "latin1.csv"
    path.write_bytes("Image,Description\ncase_a.png,Kn\xf6tchen\n".encode("latin-1"))
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "import", "-d", DATASET, "--csv", path, "--prompts",
                          ws["root"] / "unused.json"), path, "line 2", "CSV UTF-8")


# ------------------------------------------------------------------------------------------- encoders and cache
def test_max_tokens_out_of_range_fails_before_preprocessing(ws):
    assert_user_error(run(ws, "nnUNetv2_tevia_plan_and_preprocess", "-d", DATASET, "-c", "2d", "--max-tokens",
                          "100000"), "max_tokens=100000", "--max-tokens", one_line=False)
    assert not (ws["root"] / "pre" / DATASET / "nnUNetPlans.json").exists()


def test_max_tokens_out_of_range_leaves_no_cache_folder(tmp_path):
    from nnunetv2_tevia.errors import EncoderError
    from nnunetv2_tevia.prompts.prompt_file import PromptFile
    from nnunetv2_tevia.text.embed import embed_prompts
    from nnunetv2_tevia.text.encoders import TextEncoder

    class EightTokens(TextEncoder):
        spec, clip_pretrained, encoder_id, revision, dim, max_context = "stub", None, "stub", "r1", 4, 8

        def __init__(self):
            super().__init__("cpu")

    with pytest.raises(EncoderError, match=r"max_tokens=9 is outside 2\.\.8 .*--max-tokens"):
        embed_prompts(PromptFile(path=None, cases={"a": "text"}), str(tmp_path / "cache"), EightTokens(), 9,
                      progress=False)
    assert not (tmp_path / "cache").exists()


def test_remote_code_is_refused_unless_asked_and_never_runs(ws):
    # A model folder that ships its own code (as CXR-BERT does); transformers refuses it before any weights
    # are needed, so the folder holds no weights.
    folder = ws["root"] / "remote_model"
    folder.mkdir()
    marker = ws["root"] / "REMOTE_CODE_RAN"
    (folder / "custom_bert.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class CustomConfig(BertConfig):\n    model_type = 'custom_bert'\n"
        "class CustomModel(BertModel):\n    config_class = CustomConfig\n")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "custom_bert",
        "auto_map": {"AutoConfig": "custom_bert.CustomConfig", "AutoModel": "custom_bert.CustomModel"}}))
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nlesion\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "stats", "-d", DATASET, "-e", f"hf:{folder}"),
                      folder, "--trust-remote-code", one_line=False)
    assert not marker.exists()


def test_corrupt_cache_is_repaired_by_embed_and_nothing_else_recomputed(ws):
    first = run(ws, "nnUNetv2_tevia_prompts", "embed", "-d", DATASET, "--no-progress")
    assert first.returncode == 0, first.stderr
    folder = next(p for p in (ws["root"] / "pre" / DATASET / "tevia_text_cache").iterdir() if p.is_dir()
                  and (p / "manifest.json").exists())
    manifest = json.loads((folder / "manifest.json").read_text())
    npz = folder / "texts" / f"{manifest['cases']['case_b']}.npz"
    npz.write_bytes(npz.read_bytes()[:100])  # as a full disk or a kill during a non-atomic copy would leave it
    (folder / "manifest.json").write_text((folder / "manifest.json").read_text()[:50])
    again = run(ws, "nnUNetv2_tevia_prompts", "embed", "-d", DATASET, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "1 computed, 4 reused" in again.stdout


# ------------------------------------------------------------------------------------------- prediction
def predict(ws, *extra):
    return run(ws, "nnUNetv2_tevia_predict", "-i", ws["raw"] / "imagesTs", "-o", ws["root"] / "pred", "-d", DATASET,
               "-c", "2d", "-device", "cpu", *extra)


@pytest.mark.parametrize("extra, needles", [
    # -tr left at its default while the model was trained with a variant, or the reverse
    (["-f", "0", "-tr", "nnUNetTrainerTeViA_tiny"],
     ["no trained model at", "nnUNetTrainerTeViA_tiny__nnUNetPlans__2d", f"trained models of {DATASET}: "
                                                                           f"{TRAINER_FOLDER}"]),
    # -f left at its default (0 1 2 3 4) with only fold 0 trained
    ([], ["fold_1", "checkpoint_final.pth does not exist", "pass -f", "(0)"]),
    (["-f", "0", "--prompts", "no_prompts.json"], ["no_prompts.json", "--prompts FILE", "--allow-missing-text"]),
])
def test_predict_names_what_is_missing_before_loading_the_model(ws, extra, needles):
    assert_user_error(predict(ws, *extra), *needles, one_line=False)
    assert not (ws["root"] / "pred").exists()


# ------------------------------------------------------------------------------------------- demo and entries
def test_demo_id_clash_is_one_line(ws):
    workdir = ws["root"] / "demo"
    (workdir / "nnUNet_raw" / "Dataset990_SomethingElse").mkdir(parents=True)
    assert_user_error(run(ws, "nnUNetv2_tevia_demo", "-o", workdir, "--num-train", "5", "--num-test", "1"),
                      "Dataset990_SomethingElse", "-d ID", one_line=False)
    assert sorted(os.listdir(workdir / "nnUNet_raw")) == ["Dataset990_SomethingElse"]
    shutil.rmtree(workdir)


def _console_scripts():
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "console_scripts"
                                              for k in node.keys):
            scripts = node.values[[k.value for k in node.keys].index("console_scripts")]
            return [ast.literal_eval(e) for e in scripts.elts]
    raise AssertionError("setup.py declares no console_scripts")


@pytest.mark.parametrize("script", _console_scripts())
def test_every_entry_point_turns_user_errors_into_one_line(script):
    name, target = (s.strip() for s in script.split("="))
    module, func = target.split(":")
    entry = getattr(importlib.import_module(module), func)
    assert getattr(entry, "__code__", None) is exit_on_user_error(lambda: None).__code__, \
        f"{name} ({target}) is not decorated with exit_on_user_error"


# ------------------------------------------------------------------------------------------- issue 20
def test_init_force_on_a_directory(ws):
    folder = ws["root"] / "a_folder"
    folder.mkdir(exist_ok=True)
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "init", "-d", DATASET, "--prompts", folder, "--force"),
                      folder, "is a directory", "--prompts")
    assert folder.is_dir()


@pytest.mark.parametrize("command", ["validate", "embed"])
def test_prompt_path_that_is_a_directory_says_so(ws, command):
    folder = ws["root"] / "a_folder"
    folder.mkdir(exist_ok=True)
    line = assert_user_error(run(ws, "nnUNetv2_tevia_prompts", command, "-d", DATASET, "--prompts", folder),
                             folder, "is a directory")
    assert "does not exist" not in line


@pytest.mark.parametrize("value", ["\x00\x00\x00", "\x01\x1f\x7f", " \x00\t"])
def test_report_of_control_characters_only_names_the_case(ws, value):
    # with a "default", a whitespace-only text is a placeholder; a text of control characters is an error anyway
    path = bad_prompts(ws, f"control_{len(value)}_{ord(value[1])}.json",
                       dict(with_case(ws, "case_b", value), default="No report."))
    assert_user_error(run(ws, "nnUNetv2_tevia_prompts", "embed", "-d", DATASET, "--prompts", path),
                      path, "'case_b'", "control characters")


def test_validate_says_what_embed_does_with_unknown_case_ids(ws):
    path = bad_prompts(ws, "ghost_embedded.json", with_case(ws, "ghost_2", "Lesion in the right lung."))
    checked = run(ws, "nnUNetv2_tevia_prompts", "validate", "-d", DATASET, "--prompts", path)
    assert checked.returncode == 0, checked.stderr
    (warning,) = [x for x in checked.stderr.splitlines() if "ghost_2" in x]
    assert "embedded" in warning and "ignored" not in warning
    embedded = run(ws, "nnUNetv2_tevia_prompts", "embed", "-d", DATASET, "--prompts", path, "--no-progress")
    assert embedded.returncode == 0, embedded.stderr
    folder = next(p for p in (ws["root"] / "pre" / DATASET / "tevia_text_cache").iterdir() if p.is_dir())
    assert "ghost_2" in json.loads((folder / "manifest.json").read_text())["cases"]


@pytest.mark.parametrize("command", ["validate", "embed"])
def test_mirror_axis_the_images_do_not_have(ws, command):
    doc = dict(ws["prompts"], mirror={"axes": {"1": [["left", "right"]], "2": [["upper", "lower"]]}})
    path = bad_prompts(ws, "mirror_axis_2.json", doc)
    p = run(ws, "nnUNetv2_tevia_prompts", command, "-d", DATASET, "--prompts", path)
    assert p.returncode in (1, 2) and "Traceback" not in p.stderr, p.stderr
    (line,) = [x for x in p.stderr.splitlines() if x.startswith("error:")]
    assert str(path) in line and "axis '2'" in line and "2D" in line


def _exits_outside_entry_points(path: Path) -> list:
    """``sys.exit(...)`` / ``raise SystemExit`` outside a ``*_entry`` function of a module."""
    found = []

    def visit(node, entry):
        for child in ast.iter_child_nodes(node):
            inside = entry or (isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                               and child.name.endswith("_entry"))
            exits = (isinstance(child, ast.Raise) and child.exc is not None
                     and "SystemExit" in ast.unparse(child.exc).split("(")[0]) or \
                (isinstance(child, ast.Call) and ast.unparse(child.func) in ("sys.exit", "exit", "quit", "os._exit"))
            if exits and not inside:
                found.append(f"{path.relative_to(REPO)}:{child.lineno}")
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def test_library_code_raises_errors_and_only_entry_points_exit():
    """Library code raises the project's errors (nnunetv2_tevia/errors.py); only the console scripts' *_entry
    functions, through cli/_common.exit_on_user_error, turn them into an exit status. (cli/demo.py and demo/ are
    checked where the demo is.)"""
    package = REPO / "nnunetv2_tevia"
    skip = {package / "cli" / "_common.py", package / "cli" / "demo.py"}
    files = [p for p in package.rglob("*.py") if p not in skip and (package / "demo") not in p.parents]
    assert [hit for p in files for hit in _exits_outside_entry_points(p)] == []
