"""Which text each case gets: its report, the prompt file's "default", the no-report text, or a refusal.

The one rule, for training and validation (the trainer's text table), prediction (``nnUNetv2_tevia_predict``, the
predictor's file and in-memory calls) alike; only what the rule is given differs (``training_rule``,
``prediction_rule``). The no-report text itself is ``prompt_file.no_report_text``. Pure: no torch.
"""
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, NamedTuple, Optional

from nnunetv2_tevia.errors import MissingTextError

REPORT, DEFAULT, NO_REPORT = "report", "default", "no report"


def has_report(text) -> bool:
    """Whether a prompt file's entry is a report: a string with more than whitespace (``""`` is a placeholder)."""
    return isinstance(text, str) and bool(text.strip())


class TextChoice(NamedTuple):
    source: str  # REPORT, DEFAULT (the prompt file's "default") or NO_REPORT
    text: str    # the report as the caller gave it (a training cache gives its sha256), or the stand-in text


@dataclass(frozen=True)
class TextRule:
    """What a case without a report gets. The refusal reads "{n} {cases} have no report text in {source}: {ids}.
    {fix}", naming the file, every such case and what to do."""
    no_report_text: str           # the model's (in training: the text cache's) no-report text
    no_report_allowed: bool       # whether a case without a report may get it
    default: Optional[str] = None  # the prompt file's "default": before the no-report text (prediction)
    reads_reports: bool = True    # False (_noText): every case gets the no-report text, no report is read
    cases: str = "case(s)"
    source: str = "the prompt file"
    fix: str = "Write their reports there"


def choose_texts(case_ids: Iterable[str], reports: Mapping[str, object], rule: TextRule) -> Dict[str, TextChoice]:
    """Each case's text: its report (``reports[case]`` when ``has_report``), else the rule's "default", else the
    no-report text if the rule allows it; a MissingTextError naming every case that gets none."""
    case_ids = list(case_ids)
    if not rule.reads_reports:
        return {k: TextChoice(NO_REPORT, rule.no_report_text) for k in case_ids}
    chosen, missing = {}, []
    for k in case_ids:
        report = reports.get(k)
        if has_report(report):
            chosen[k] = TextChoice(REPORT, report)
        elif has_report(rule.default):
            chosen[k] = TextChoice(DEFAULT, rule.default)
        elif rule.no_report_allowed:
            chosen[k] = TextChoice(NO_REPORT, rule.no_report_text)
        else:
            missing.append(k)
    if missing:
        shown = ", ".join(missing[:10]) + (f" ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise MissingTextError(f"{len(missing)} {rule.cases} have no report text in {rule.source}: {shown}. "
                               f"{rule.fix}")
    return chosen


def training_rule(no_report_text: str, *, text_dropout: float, case_text: bool, dataset: str, cache_folder: str,
                  prompt_file: str) -> TextRule:
    """Training and validation: a case without a report trains on the text cache's no-report text when the prompt
    file has one (a "default" or class descriptions: writing it says such cases are meant), when text dropout trains
    every case on it anyway, and for _noText (``case_text`` False), which reads no report."""
    return TextRule(no_report_text, bool(no_report_text) or text_dropout > 0, reads_reports=case_text,
                    cases=f"training case(s) of {dataset}", source=f"the active text cache {cache_folder}",
                    fix=f"Write their reports into {prompt_file} (or set a \"default\" text there), then run: "
                        f"nnUNetv2_tevia_prompts embed -d {dataset}")


def prediction_rule(no_report_text: str, *, serves_no_report: bool, case_text: bool, allow_missing_text: bool,
                    default: Optional[str], prompt_path: Optional[str], given: bool = False) -> TextRule:
    """Prediction: the prompt file's "default" stands in for a missing report; else the model's no-report text when
    the model was trained on it (``serves_no_report``: text dropout, training cases without a report) or
    ``allow_missing_text`` asks for it (results for those cases are text-free). ``given``: the texts come with
    in-memory arrays, not from a prompt file (the refusal says how to give them)."""
    if given:
        source, fix = "the texts given with the arrays", (
            "Give each array its report (texts=[...], text=...), or create the predictor with "
            "allow_missing_text=True to use the model's no-report text for them")
    else:
        source, fix = prompt_path or "the prompt file (none was given)", (
            "Add their reports (nnUNetv2_tevia_prompts import/init), pass --prompts FILE, set a \"default\" text in "
            "the prompt file, or pass --allow-missing-text to use the model's no-report text for them")
    return TextRule(no_report_text, allow_missing_text or serves_no_report, default=default, reads_reports=case_text,
                    cases="case(s) to predict", source=source, fix=fix)
