"""Paraphrases keep a report's meaning, are reproducible, and never contain the wordings held out for testing.

The held-out check is what keeps the generalisation numbers honest: a word of the demo's validation or held-out
wordings, or of the QaTa-COV19 rewrites, that slipped into a preset would be trained on.
"""
import itertools
import os
import re
import sys

import numpy as np
import pytest

from nnunetv2_tevia.demo.report_templates import WORDINGS, ZONES, format_report
from nnunetv2_tevia.prompts.paraphrase import (PRESETS, ParaphraseSettings, drop_articles, paraphrases, preset_words,
                                               reorder, section_problems, settings_from_json, swap_synonyms)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import qata_rewrites  # noqa: E402

QATA = ["bilateral pulmonary infection, two infected areas, lower left lung and lower right lung.",
        "unilateral pulmonary infection, one infected area, middle right lung.",
        "bilateral pulmonary infection, five infected areas, upper middle lower left lung and middle lower right lung."]
TARGET_SETS = [list(c) for k in (1, 2, 3) for c in itertools.combinations(ZONES, k)]
# words that carry the location or the finding in the held-out and validation wordings
HELD_OUT_WORDS = {"above", "below", "high", "low", "half", "side", "hand", "corner", "spot", "spots",
                  "zone", "zones", "mid", "opacity", "opacities", "airspace", "consolidation", "pneumonia", "part",
                  "parts", "marked", "outline", "delineate"}


def _canonical(text: str) -> str:
    """Every preset synonym mapped to its group's first word, articles dropped, lower case."""
    for group in PRESETS["en"]:
        for w in group[1:]:
            text = re.sub(rf"(?<!\w){re.escape(w)}(?!\w)", group[0], text, flags=re.IGNORECASE)
    return drop_articles(text).lower()


def _demo_zones(text: str) -> set:
    t = _canonical(text).replace("-", " ").replace("top", "upper").replace("bottom", "lower")
    return {z for z in ZONES if z in t}


def test_paraphrases_are_reproducible_distinct_and_not_the_original():
    s = ParaphraseSettings()
    for text in QATA:
        ps = paraphrases(text, s)
        assert ps == paraphrases(text, s)
        assert 1 <= len(ps) <= s.variants and len(set(ps)) == len(ps) and text not in ps
    assert paraphrases(QATA[0], ParaphraseSettings(variants=0)) == []
    assert paraphrases("   ", s) == []


def test_demo_paraphrases_name_the_same_lesions():
    rng = np.random.default_rng(0)
    for zones in TARGET_SETS:
        for _ in range(10):
            report = format_report(zones, rng)
            for p in paraphrases(report, ParaphraseSettings()):
                assert _demo_zones(p) == set(zones), (report, p)


def test_qata_paraphrases_keep_sides_levels_and_count():
    for text in QATA:
        want = qata_rewrites.parse(text)
        for p in paraphrases(text, ParaphraseSettings()):
            c = _canonical(p).replace("one-sided", "unilateral").replace("two-sided", "bilateral")
            c = c.replace("affected", "infected")
            clauses = c.rstrip(".").split(", ")
            lat = next(x for x in clauses if x.endswith("pulmonary infection"))
            count = next(x for x in clauses if "infected area" in x)
            zones = next(x for x in clauses if x.endswith("lung"))
            got = qata_rewrites.parse(f"{lat}, {count}, {zones}.")
            assert got[:2] == want[:2] and {k: set(v) for k, v in got[2].items()} == \
                {k: set(v) for k, v in want[2].items()}, (text, p)


def test_reorder_leaves_structured_text_alone_and_swaps_only_equal_sides():
    rng = np.random.default_rng(0)
    assert reorder("3 lesions (top left, bottom right).", rng) == "3 lesions (top left, bottom right)."
    assert reorder("Two lesions: upper left and lower right.", rng) == "Two lesions: upper left and lower right."
    outs = {reorder("in the lower right and upper left quadrants.", np.random.default_rng(i)) for i in range(20)}
    assert outs == {"in the lower right and upper left quadrants."}
    outs = {reorder("a, lower left lung and lower right lung.", np.random.default_rng(i)) for i in range(30)}
    assert "lower right lung and lower left lung, a." in outs and "a, lower left lung and lower right lung." in outs


def test_synonyms_keep_the_first_letters_case_and_whole_words():
    groups = [("upper", "top")]
    outs = {swap_synonyms("Upper-left, uppermost, upper.", groups, np.random.default_rng(i)) for i in range(20)}
    assert outs == {"Upper-left, uppermost, upper.", "Top-left, uppermost, top.", "Upper-left, uppermost, top.",
                    "Top-left, uppermost, upper."}


def test_held_out_wordings_are_in_no_preset_and_no_training_template():
    vocabulary = preset_words("en")
    assert not vocabulary & HELD_OUT_WORDS
    rng = np.random.default_rng(1)
    training_words = set()
    for zones in TARGET_SETS:
        for _ in range(30):
            training_words |= set(re.findall(r"[a-z]+", format_report(zones, rng, "training").lower()))
    assert not training_words & HELD_OUT_WORDS
    # ...and the held-out wordings do use them (the check is not vacuous)
    for wording in ("validation", "held-out"):
        words = {w for zones in TARGET_SETS for w in re.findall(r"[a-z]+", format_report(zones, rng, wording).lower())}
        assert words & HELD_OUT_WORDS, wording
    for style in ("reordered", "radiology", "validation"):  # "terse" changes the sentence shape only
        words = set(re.findall(r"[a-z]+", " ".join(qata_rewrites.rewrite(t, style) for t in QATA).lower()))
        assert words & HELD_OUT_WORDS, style


def test_the_validation_and_held_out_demo_wordings_are_disjoint_templates():
    assert not set(WORDINGS["validation"]) & set(WORDINGS["held-out"])
    assert not set(WORDINGS["training"]) & (set(WORDINGS["validation"]) | set(WORDINGS["held-out"]))


def test_qata_rewrites_keep_the_content():
    for text in QATA:
        lat, count, sides = qata_rewrites.parse(text)
        radiology = qata_rewrites.rewrite(text, "radiology").lower()
        assert radiology.startswith(lat) and all(side in radiology for side in sides)
        assert str(count) in qata_rewrites.rewrite(text, "reordered")
        terse = qata_rewrites.rewrite(text, "terse")
        for side, levels in sides.items():
            assert f"{side}: {', '.join(levels)}" in terse
    with pytest.raises(qata_rewrites.UnparsedReport):
        qata_rewrites.parse("no infection.")


@pytest.mark.parametrize("section, problem", [
    ([], "must be an object"), ({"preset": "xx"}, "unknown preset"), ({"variants": -1}, "whole number"),
    ({"variants": 1.5}, "whole number"), ({"synonyms": [["lung"]]}, "at least two"),
    ({"synonyms": "lung"}, "list of word lists"), ({"other": 1}, "unknown key")])
def test_section_problems_name_the_file_and_the_fix(section, problem):
    problems = section_problems(section, "p.json")
    assert problems and all(p.startswith("p.json") for p in problems) and any(problem in p for p in problems)


def test_prompt_file_synonyms_extend_the_preset():
    s = settings_from_json({"synonyms": [["lung", "lung field"]], "variants": 8})
    assert ("lung", "lung field") in s.groups() and s.variants == 8
    ps = paraphrases("lower left lung.", s)
    assert any("lung field" in p for p in ps)
    assert section_problems({"synonyms": [["lung", "lung field"]], "variants": 8, "preset": "none"}, "p") == []
