"""The one rule for which text a case gets (prompts/text_choice.py), read by training and prediction alike; and the
source checks that nothing else decides it again."""
import re
from pathlib import Path

import pytest

from nnunetv2_tevia.errors import MissingTextError
from nnunetv2_tevia.prompts.text_choice import (DEFAULT, NO_REPORT, REPORT, TextRule, choose_texts, has_report,
                                                prediction_rule, training_rule)

PACKAGE = Path(__file__).resolve().parents[1] / "nnunetv2_tevia"
REPORTS = {"a": "left lung.", "b": "", "c": "   ", "d": None}


def test_has_report():
    assert has_report("left.") and has_report("  x ")
    assert not any(has_report(t) for t in ("", "  \n", None, 3, ["left."]))


def test_the_four_outcomes():
    ids = ["a", "b", "c", "d", "e"]
    allowed = TextRule("No report.", True)
    assert choose_texts(ids, REPORTS, allowed) == {"a": (REPORT, "left lung."), **{k: (NO_REPORT, "No report.")
                                                                                  for k in "bcde"}}
    with_default = TextRule("No report.", False, default="Normal.")
    assert choose_texts(["a", "b"], REPORTS, with_default) == {"a": (REPORT, "left lung."), "b": (DEFAULT, "Normal.")}
    refusing = TextRule("No report.", False, cases="case(s) to predict", source="/x/p.json", fix="Write them.")
    with pytest.raises(MissingTextError, match=r"^4 case\(s\) to predict have no report text in /x/p.json: b, c, d, e\. "
                                               r"Write them\.$"):
        choose_texts(ids, REPORTS, refusing)
    assert choose_texts(["a"], REPORTS, refusing) == {"a": (REPORT, "left lung.")}
    no_text = TextRule("No report.", False, reads_reports=False)  # _noText: no report is read
    assert choose_texts(["a", "b"], REPORTS, no_text) == {"a": (NO_REPORT, "No report."), "b": (NO_REPORT, "No report.")}


def test_a_long_refusal_names_ten_cases_and_counts_the_rest():
    ids = [f"case_{i:02d}" for i in range(13)]
    with pytest.raises(MissingTextError, match=r"13 case\(s\) .*case_09 \.\.\. and 3 more\."):
        choose_texts(ids, {}, TextRule("", False))


def test_training_serves_a_case_without_report_when_the_file_or_the_trainer_says_so():
    def rule(no_report_text, text_dropout, case_text=True):
        return training_rule(no_report_text, text_dropout=text_dropout, case_text=case_text, dataset="Dataset1",
                             cache_folder="/c", prompt_file="/p.json")
    assert rule("No report.", 0.0).no_report_allowed   # the prompt file has a no-report text
    assert rule("", 0.2).no_report_allowed             # text dropout trains every case on it anyway
    assert not rule("", 0.2, case_text=False).reads_reports
    with pytest.raises(MissingTextError, match=r"1 training case\(s\) of Dataset1 have no report text in the active "
                                               r"text cache /c: b\. Write their reports into /p.json .*embed -d "
                                               r"Dataset1$"):
        choose_texts(["a", "b"], REPORTS, rule("", 0.0))


def test_prediction_serves_a_case_without_report_when_the_model_was_trained_on_it_or_asked():
    def rule(serves, allow, default=None, given=False):
        return prediction_rule("Model no-report.", serves_no_report=serves, case_text=True, allow_missing_text=allow,
                               default=default, prompt_path="/x/p.json", given=given)
    assert choose_texts(["b"], REPORTS, rule(True, False))["b"] == (NO_REPORT, "Model no-report.")
    assert choose_texts(["b"], REPORTS, rule(False, True))["b"] == (NO_REPORT, "Model no-report.")
    assert choose_texts(["b"], REPORTS, rule(False, False, default="Normal."))["b"] == (DEFAULT, "Normal.")
    with pytest.raises(MissingTextError, match=r"in /x/p.json: b\. .*--allow-missing-text"):
        choose_texts(["b"], REPORTS, rule(False, False))
    with pytest.raises(MissingTextError, match=r"in the texts given with the arrays: b\. .*allow_missing_text=True"):
        choose_texts(["b"], REPORTS, rule(False, False, given=True))


def _sources():
    return [(p, p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))]


def test_the_blank_text_check_is_has_report_alone():
    """``isinstance(t, str) and t.strip()`` on a case's text in one place: has_report (paraphrase.py checks the
    words of a synonym group the same way; they are no reports)."""
    pattern = re.compile(r"isinstance\((\w+(?:\.\w+)*(?:\([^)]*\))?), str\) and (?:bool\()?\1\.strip\(\)")
    found = [f"{p.relative_to(PACKAGE)}:{i}" for p, text in _sources() for i, line in enumerate(text.splitlines(), 1)
             if pattern.search(line) and p.name not in ("text_choice.py", "paraphrase.py")]
    assert found == [], found


def test_only_the_seam_reads_the_no_report_switch():
    readers = sorted(str(p.relative_to(PACKAGE)) for p, text in _sources()
                     if re.search(r"environ[^\n]*ALLOW_NO_REPORT|getenv\([^)]*ALLOW_NO_REPORT", text))
    assert readers == ["nnunet_seam.py"], readers
