"""A case's phrasings: its report, the prompt file's "alternatives" for it, and the paraphrases of both.

Training samples one of them per step (training/case_text.py); prediction and validation use the report.
"""
from nnunetv2_tevia.prompts.json_checks import type_name, utf8_problem
from nnunetv2_tevia.prompts.paraphrase import paraphrases
from nnunetv2_tevia.prompts.text_choice import has_report


def alternatives_problems(alternatives, cases: dict, path: str) -> list:
    if not isinstance(alternatives, dict):
        return [f"{path}: \"alternatives\" is {type_name(alternatives)}, not an object of case id -> list of texts"]
    problems = []
    for cid, texts in alternatives.items():
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            problems.append(f"{path}: alternatives of case {cid!r} must be a list of texts, got {type_name(texts)}")
            continue
        if not has_report(cases.get(cid)):
            problems.append(f"{path}: case {cid!r} has alternatives but no report under \"cases\": write its "
                            f"report there (the alternatives are other phrasings of it)")
        for i, t in enumerate(texts):
            if not t.strip():
                problems.append(f"{path}: alternative {i} of case {cid!r} is empty: write the text or remove it")
            elif utf8_problem(t):
                problems.append(f"{path}: alternative {i} of case {cid!r} {utf8_problem(t)}: fix the text")
    return problems


def case_texts(pf, case_id: str) -> list:
    """Every text that stands for a case's report in training: the report, its alternatives, and the paraphrases
    of both (prompts/paraphrase.py), without repeats; [] for a case without a report."""
    report = pf.cases.get(case_id)
    if not has_report(report):
        return []
    sources = [report] + [t for t in pf.alternatives.get(case_id, []) if t.strip()]
    settings = pf.paraphrase_settings
    out = []
    for text in sources + [p for s in sources for p in paraphrases(s, settings)]:
        if text not in out:
            out.append(text)
    return out
