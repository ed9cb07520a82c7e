"""Mirror word maps (issue 13, text side): rewriting reports for flipped images, the "mirror" section of the
prompt file, its validation, and its summary in `nnUNetv2_tevia_prompts stats`."""
import json

import pytest

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts import prompt_file
from nnunetv2_tevia.prompts.mirror_words import (DEFAULT_2D_MAP, PRESETS, MirrorMap, distinct_texts,
                                                 mirror_map_from_json, mirror_map_to_json, mirror_problems,
                                                 mirror_summary, mirror_text, text_variants)
from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, PromptFile, load_prompts, save_prompts

M = DEFAULT_2D_MAP
ROWS, COLS, BOTH = (0,), (1,), (0, 1)


# ---- mirror_text --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, axes, expected", [
    ("lower left lung", COLS, "lower right lung"),
    ("lower left lung", ROWS, "upper left lung"),
    ("lower left lung", BOTH, "upper right lung"),
    ("Left lung. LEFT lung. left lung.", COLS, "Right lung. RIGHT lung. right lung."),
    ("Upper LOBE, Lower", ROWS, "Lower LOBE, Upper"),
    ("left-sided effusion", COLS, "right-sided effusion"),
    ("Left-Sided", COLS, "Right-Sided"),
    ("lower-left quadrant", BOTH, "upper-right quadrant"),
    ("upper-left quadrant", COLS, "upper-right quadrant"),
    ("upper-left quadrant", ROWS, "lower-left quadrant"),
    ("left-to-right shunt", COLS, "right-to-left shunt"),  # three parts: a direction, reversed
    ("tops and bottoms of the lungs", ROWS, "bottoms and tops of the lungs"),
    ("leftmost, uppermost", BOTH, "rightmost, lowermost"),
    ("opacity (right), left, [upper]; right.", BOTH, "opacity (left), right, [lower]; left."),
    ('"left"?', COLS, '"right"?'),
    ("left/right", ROWS, "left/right"),
])
def test_mirror_text_swaps_whole_words_keeping_case_and_punctuation(text, axes, expected):
    assert mirror_text(text, axes, M) == expected


def test_swaps_are_simultaneous():
    assert mirror_text("left and right lung", COLS, M) == "right and left lung"
    assert mirror_text("upper, lower, upper", ROWS, M) == "lower, upper, lower"
    # Applying the same flip twice gives the original back.
    text = "Lower LEFT lung, right-sided, upper-left; top."
    assert mirror_text(mirror_text(text, BOTH, M), BOTH, M) == text


@pytest.mark.parametrize("text", ["leftover material", "bright spot", "copyright notice", "Albright syndrome",
                                  "Wright stain", "left_side", "uppercase", "topography", "inferiority",
                                  "left2", "no finding."])
def test_words_inside_other_words_are_untouched(text):
    assert mirror_text(text, BOTH, M) == text


@pytest.mark.parametrize("text", ["left-right axis", "Left-Right axis", "right-left axis", "upper/lower border",
                                  "left\u2013right", "LEFT/RIGHT asymmetry"])
def test_a_compound_of_both_ends_of_one_axis_is_kept(text):
    assert mirror_text(text, BOTH, M) == text


def test_left_to_right_with_words_between_is_swapped_word_by_word():
    assert mirror_text("extends from left to right", COLS, M) == "extends from right to left"


def test_only_the_flipped_axes_swap():
    assert mirror_text("upper left", (), M) == "upper left"
    assert mirror_text("upper left", (2,), M) == "upper left"  # an axis without words
    assert mirror_text("upper left", [1, 0], M) == "lower right"  # any iterable, any order


def test_report_without_location_words_maps_to_itself():
    text = "Bilateral pulmonary infection, two infected areas."
    variants = text_variants(text, M)
    assert set(variants) == {(), (0,), (1,), (0, 1)}
    assert set(variants.values()) == {text}
    assert distinct_texts([text], M) == [text]


def test_text_variants_and_distinct_texts():
    variants = text_variants("lower left lung", M)
    assert variants == {(): "lower left lung", (0,): "upper left lung", (1,): "lower right lung",
                        (0, 1): "upper right lung"}
    assert list(text_variants("left", M, axes=(1, 2))) == [(), (1,), (2,), (1, 2)]
    assert distinct_texts(["left lung", "right lung", "no finding"], M) == ["left lung", "no finding", "right lung"]
    assert len(distinct_texts(["upper left", "lower right"], M)) == 4


def test_custom_map_and_other_languages():
    m = MirrorMap.of({2: [("links", "rechts")], 0: [("oben", "unten")]})
    assert m.axis_indices == (0, 2) and m.pairs(2) == (("links", "rechts"),) and m.pairs(1) == ()
    assert mirror_text("Läsion links oben", (2,), m) == "Läsion rechts oben"
    assert mirror_text("Läsion links oben", (0, 2), m) == "Läsion rechts unten"
    assert mirror_text("left lung", (0, 1, 2), m) == "left lung"  # this map has no English words
    # Built from lists, a map is normalised to tuples: hashable (mirror_text caches on it) and equal.
    assert MirrorMap(axes=[(1, [["left", "right"]]), (0, [])]) == MirrorMap.of({1: [("left", "right")], 0: []})
    assert mirror_text("Left", [1], MirrorMap(axes=[(1, [["left", "right"]])])) == "Right"


def test_an_axis_without_words_may_be_flipped_and_changes_no_text():
    """``"0": []`` says that no report names a direction along axis 0 (e.g. a volume's z for reports about the
    in-plane quadrants): the axis is kept in the map, so the trainer mirrors it, and no variant changes a text."""
    m = mirror_map_from_json({"axes": {"0": [], "1": [["upper", "lower"]], "2": [["left", "right"]]}}, "p.json", 3)
    assert m.axis_indices == (0, 1, 2)
    assert mirror_text("upper left", (0,), m) == "upper left"
    assert mirror_text("upper left", (0, 2), m) == "upper right"
    assert mirror_map_from_json(mirror_map_to_json(m), "p.json", 3) == m
    assert mirror_map_to_json(m)["axes"]["0"] == []


def test_mirror_map_rejects_bad_pairs_when_built_in_code():
    with pytest.raises(ValueError, match="'left' is in two pairs"):
        MirrorMap.of({0: [("left", "right")], 1: [("left", "sinister")]})
    with pytest.raises(ValueError, match="not a single word"):
        MirrorMap.of({1: [("left side", "right side")]})


# ---- the "mirror" section: parsing, validation, JSON --------------------------------------------

def test_preset_and_axes_combine_and_round_trip():
    assert mirror_map_from_json({"preset": "2d"}, "p.json") == M
    assert mirror_map_to_json(M) == {"preset": "2d"}
    section = {"preset": "2d", "axes": {"1": [["sinister", "dexter"]], "2": [["anterior", "posterior"]]}}
    m = mirror_map_from_json(section, "p.json")
    assert m.preset == "2d" and ("left", "right") in m.pairs(1) and ("sinister", "dexter") in m.pairs(1)
    assert m.pairs(2) == (("anterior", "posterior"),)
    assert mirror_text("sinister upper", BOTH, m) == "dexter lower"
    assert mirror_map_to_json(m) == section
    axes_only = {"axes": {"0": [["upper", "lower"]]}}
    assert mirror_map_to_json(mirror_map_from_json(axes_only, "p.json")) == axes_only
    # A map that lost a preset pair is written out in full, not as the preset.
    partial = MirrorMap.of({1: [("left", "right")]}, preset="2d")
    assert mirror_map_to_json(partial) == {"axes": {"1": [["left", "right"]]}}


@pytest.mark.parametrize("section, ndim, expected", [
    (None, None, '"mirror" is null, not an object: write e.g. {"preset": "2d"}'),
    ([], None, '"mirror" is a list, not an object'),
    ({}, None, '"mirror" names no words'),
    ({"preset": "3d"}, None, "unknown preset '3d': known presets are '2d'"),
    ({"preset": 2}, None, "unknown preset 2"),
    ({"preset": "2d"}, 3, "preset '2d' is for 2D images, these are 3D"),
    ({"preset": "2d", "axis": {}}, None, "unknown key(s) 'axis': allowed are preset, axes"),
    ({"axes": [["left", "right"]]}, None, '"axes" is a list, not an object of axis -> word pairs'),
    ({"axes": {"x": [["left", "right"]]}}, None, "axis 'x' is not a spatial axis index: use \"0\" ... \"2\""),
    ({"axes": {"-1": [["left", "right"]]}}, None, "axis '-1' is not a spatial axis index"),
    ({"axes": {"01": [["left", "right"]]}}, None, "axis '01' is not a spatial axis index"),
    ({"axes": {"2": [["left", "right"]]}}, 2, "axis '2' is not a spatial axis index: use \"0\" ... \"1\""),
    ({"axes": {"1": "left right"}}, None, "axis '1' holds a string, not a list of word pairs"),
    ({"axes": {"1": [["left", "right", "centre"]]}}, None, "is not a pair: write two words"),
    ({"axes": {"1": [["left", 3]]}}, None, "axis '1': 3 is not a single word"),
    ({"axes": {"1": [["left", ""]]}}, None, "axis '1': '' is not a single word"),
    ({"axes": {"1": [["left side", "right side"]]}}, None, "'left side' is not a single word"),
    ({"axes": {"1": [["left-sided", "right-sided"]]}}, None, "each part of a hyphenated word is matched on its own"),
    ({"axes": {"1": [["Left", "right"]]}}, None, "write ['Left', 'right'] in lower case"),
    ({"axes": {"1": [["left", "left"]]}}, None, "pair ['left', 'left'] swaps a word with itself"),
    ({"axes": {"1": [["left", "right"], ["right", "left"]]}}, None,
     "pair ['right', 'left'] is listed twice (axis '1' and axis '1')"),
    ({"axes": {"1": [["left", "right"], ["left", "sinister"]]}}, None, "word 'left' is in two pairs"),
    ({"axes": {"0": [["left", "right"]], "1": [["left", "right"]]}}, None, "is listed twice (axis '0' and axis '1')"),
    ({"preset": "2d", "axes": {"0": [["right", "dexter"]]}}, None,
     "word 'right' is in two pairs (preset '2d' and axis '0')"),
])
def test_mirror_problems_name_the_file_and_the_fix(section, ndim, expected):
    problems = mirror_problems(section, "/d/p.json", ndim)
    assert problems and all(p.startswith('/d/p.json: "mirror"') for p in problems)
    assert any(expected in p for p in problems), problems


def test_valid_sections_have_no_problems():
    for section in ({"preset": "2d"}, {"axes": {}}, {"axes": {"2": [["anterior", "posterior"]]}},
                    {"preset": "2d", "axes": {"1": [["sinister", "dexter"]]}}):
        assert mirror_problems(section, "p.json") == []
    assert mirror_problems({"axes": {"2": [["a", "b"]]}}, "p.json", ndim=3) == []
    assert set(PRESETS) == {"2d"}


def test_from_json_raises_the_first_problem_and_counts_the_rest():
    with pytest.raises(PromptFileError, match=r"unknown preset '3d'.*\(and 1 more\)"):
        mirror_map_from_json({"preset": "3d", "axes": {"9": []}}, "p.json")


def _doc(**extra):
    return {"format": prompt_file.FORMAT, "version": 1, **extra, "cases": {"a": "lower left lung."}}


def test_prompt_file_round_trip_keeps_the_section(tmp_path):
    path = tmp_path / PROMPTS_FILENAME
    section = {"preset": "2d", "axes": {"1": [["sinister", "dexter"]]}}
    path.write_text(json.dumps(_doc(mirror=section)), encoding="utf-8")
    pf = load_prompts(path)
    assert pf.mirror == mirror_map_from_json(section, "x") and pf.mirror.preset == "2d"
    save_prompts(pf, tmp_path / "again.json")
    written = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))
    assert written["mirror"] == section and list(written)[-1] == "cases"
    assert load_prompts(tmp_path / "again.json").mirror == pf.mirror
    # A PromptFile built in code saves its map, and one without a map saves no section.
    save_prompts(PromptFile(path=None, cases={"a": "t"}, mirror=M), path)
    assert json.loads(path.read_text(encoding="utf-8"))["mirror"] == {"preset": "2d"}
    save_prompts(PromptFile(path=None, cases={"a": "t"}), path)
    assert "mirror" not in json.loads(path.read_text(encoding="utf-8"))
    assert load_prompts(path).mirror is None


def test_loading_a_bad_section_fails_naming_the_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_doc(mirror={"preset": "2D"})), encoding="utf-8")
    with pytest.raises(PromptFileError, match=rf'{path}: "mirror": unknown preset \'2D\''):
        load_prompts(path)
    path.write_text('{"format": "nnunetv2-tevia-prompts", "version": 1, "cases": {},'
                    ' "mirror": {"preset": "2d", "preset": "2d"}}', encoding="utf-8")
    with pytest.raises(PromptFileError, match="key 'preset' appears more than once"):
        load_prompts(path)


# ---- the commands -------------------------------------------------------------------------------

@pytest.fixture
def dataset(tmp_path, monkeypatch):
    folder = tmp_path / "raw" / "Dataset502_Mirror"
    (folder / "imagesTr").mkdir(parents=True)
    for cid in ("c1", "c2", "c3"):
        (folder / "imagesTr" / f"{cid}_0000.png").touch()
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "X-ray"}, "labels": {"background": 0, "infection": 1}, "numTraining": 3,
        "file_ending": ".png"}))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    return folder


class _WordCounter:
    encoder_id = "words"

    @staticmethod
    def count_tokens(texts):
        return [len(t.split()) for t in texts]


def _call(capsys, monkeypatch, *args):
    from nnunetv2_tevia.cli import embed_cmds
    from nnunetv2_tevia.cli.prompts_cli import prompts_entry

    monkeypatch.setattr(embed_cmds, "_load_encoder", lambda args: _WordCounter())
    code = 0
    try:
        prompts_entry(list(args))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


CASES = {"c1": "Lower left lung, one area.", "c2": "No finding.", "c3": "Upper-right lung and upper left lung."}


def test_stats_summarises_each_flip(dataset, capsys, monkeypatch):
    (dataset / PROMPTS_FILENAME).write_text(json.dumps(_doc(mirror={"preset": "2d"}) | {"cases": CASES}))
    code, out, _ = _call(capsys, monkeypatch, "stats", "-d", "502")
    assert code == 0
    assert "3 case(s), 3 with text, 3 distinct text(s), 0 duplicate(s)" in out  # the usual lines come first
    assert "mirror words (preset '2d', axes 0 (11 pair(s)), 1 (4 pair(s))): reports that change, of 3 case(s)" in out
    lines = out.splitlines()
    for flip, first_example in (("flip axis 0", "'Lower left lung, one area.' -> 'Upper left lung, one area.'"),
                                ("flip axis 1", "'Lower left lung, one area.' -> 'Lower right lung, one area.'"),
                                ("flip axes 0+1", "'Lower left lung, one area.' -> 'Upper right lung, one area.'")):
        i = lines.index(f"  {flip}: 2 case(s) change")
        assert lines[i + 1] == f"    e.g. c1: {first_example}"
        assert lines[i + 2].startswith("    e.g. c3: 'Upper-right lung and upper left lung.' -> ")
    assert "  distinct texts over all flips: 9 (3 without flips)" in lines
    # Without the section, stats prints exactly the lines it printed before.
    (dataset / PROMPTS_FILENAME).write_text(json.dumps(_doc() | {"cases": CASES}))
    code, plain, _ = _call(capsys, monkeypatch, "stats", "-d", "502")
    assert code == 0 and plain.splitlines() == lines[:len(plain.splitlines())]
    assert "mirror" not in plain and "flip" not in plain


def test_validate_reports_every_mirror_problem(dataset, capsys, monkeypatch):
    section = {"preset": "2d", "axes": {"3": [["a", "b"]], "1": [["left", "right"]]}}
    (dataset / PROMPTS_FILENAME).write_text(json.dumps(_doc(mirror=section) | {"cases": CASES}))
    code, _, err = _call(capsys, monkeypatch, "validate", "-d", "502")
    assert code == 1
    assert "axis '3' is not a spatial axis index" in err
    assert "pair ['left', 'right'] is listed twice (preset '2d' and axis '1')" in err
    assert "2 problem(s)" in err


def test_summary_cuts_long_reports_around_the_change():
    long = "word " * 40 + "left lung " + "word " * 40
    lines = mirror_summary({"x": long}, MirrorMap.of({1: [("left", "right")]}))
    example = next(line for line in lines if line.startswith("    e.g. x: "))
    assert "left lung" in example and "right lung" in example and example.count("...") == 4
    assert len(example) < len(long)


def test_saved_mirror_section_matches_the_published_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path
    schema = json.loads((Path(__file__).parents[1] / "text_prompts" / "tevia_prompts.schema.json").read_text())
    path = str(tmp_path / PROMPTS_FILENAME)
    mirror = mirror_map_from_json({"preset": "2d", "axes": {"1": [["sinistra", "destra"]]}}, path)
    save_prompts(PromptFile(path=path, cases={"a": "left lung"}, mirror=mirror))
    doc = json.loads(Path(path).read_text())
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    for bad in ({"preset": "3d"}, {"axes": {"1": [["left-sided", "right-sided"]]}}, {}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(dict(doc, mirror=bad), schema, cls=jsonschema.Draft202012Validator)
        assert prompt_file.document_problems(dict(doc, mirror=bad), path)  # the loader refuses them too


def test_one_enumeration_of_flips_and_one_flip_key():
    """Which flips there are (prompts/mirror_words.flip_combinations, nnU-Net's test-time order) and how a flip is
    named (text/cache/mirror.flip_key / parse_flip_key) exist once: every other module imports them."""
    import itertools
    import re
    from pathlib import Path

    from nnunetv2_tevia.prompts.mirror_words import flip_combinations
    from nnunetv2_tevia.text.cache.mirror import flip_key, parse_flip_key

    for axes in [(0, 1, 2), (0, 1), (2, 0), (1,), ()]:  # nnU-Net's own enumeration in its predictor
        nnunet = [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]
        assert flip_combinations(axes) == [()] + nnunet
    for combo in flip_combinations((0, 1, 2)):
        assert parse_flip_key(flip_key(combo)) == combo
    assert flip_key((1, 0)) == "0+1" and parse_flip_key("") == ()  # the keys of caches written before, too
    package = Path(__file__).resolve().parents[1] / "nnunetv2_tevia"
    found = {str(p.relative_to(package)): text for p in package.rglob("*.py") for text in [p.read_text()]}
    assert sorted(k for k, t in found.items() if re.search(r"itertools\.combinations\(", t)) == \
        ["prompts/mirror_words.py"]
    assert sorted(k for k, t in found.items() if re.search(r"def (flip_key|parse_flip_key|flip_combinations)\(", t)) \
        == ["prompts/mirror_words.py", "text/cache/mirror.py"]
    assert not any("#flip" in t for t in found.values())
