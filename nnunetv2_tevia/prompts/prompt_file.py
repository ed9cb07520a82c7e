"""The prompt file: one JSON per dataset holding each case's report text.

    {"format": "nnunetv2-tevia-prompts", "version": 1,
     "default": "text for cases without a report (optional)",
     "classes": {"<label name>": "description"},
     "mirror": {"preset": "2d"} (optional: words that swap when the image is flipped, see mirror_words.py),
     "paraphrase": {"preset": "en", "synonyms": [["lung", "lung field"]], "variants": 4} (optional, paraphrase.py),
     "cases": {"<case id>": "report text"},
     "alternatives": {"<case id>": ["another phrasing of its report", ...]} (optional)}

Training samples one of a case's texts per step: its report, its alternatives, and the paraphrases of both.

A case without a text (absent from "cases", or the "" placeholder that `nnUNetv2_tevia_prompts init`
writes) gets what prompts/text_choice.py decides, in training and prediction alike: the "default", the no-report
text (:func:`no_report_text`) or a refusal. Where the file has no no-report text, a "" placeholder is an error
outside of template editing (``allow_empty``), so a forgotten report is caught when the file is loaded rather than
when its case is first needed.
"""
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Optional

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.io_utils import atomic_write_json
from nnunetv2_tevia.prompts.mirror_words import MirrorMap, mirror_map_from_json, mirror_map_to_json, mirror_problems
from nnunetv2_tevia.prompts.paraphrase import ParaphraseSettings, section_problems, settings_from_json
from nnunetv2_tevia.prompts.json_checks import decode_utf8
from nnunetv2_tevia.prompts.json_checks import object_with_duplicates as _object_with_duplicates
from nnunetv2_tevia.prompts.json_checks import type_name as _type_name
from nnunetv2_tevia.prompts.json_checks import utf8_problem as _utf8_problem
from nnunetv2_tevia.prompts.phrasings import alternatives_problems
from nnunetv2_tevia.prompts.text_choice import has_report

PROMPTS_FILENAME = "tevia_prompts.json"
FORMAT = "nnunetv2-tevia-prompts"
VERSION = 1
# Checked before reading: a wrong --prompts pointing at an image volume must not be read into memory.
MAX_PROMPT_FILE_BYTES = 256 * 1024 * 1024
TOP_LEVEL_KEYS = ("format", "version", "default", "classes", "mirror", "paraphrase", "cases", "alternatives")

_FIX_VALIDATE = "run `nnUNetv2_tevia_prompts validate -d <dataset>` to list every problem"


@dataclass
class PromptFile:
    path: Optional[str]
    cases: dict
    default: Optional[str] = None
    classes: dict = field(default_factory=dict)
    mirror: Optional[MirrorMap] = None  # the optional "mirror" section (issue 13): nnUNetTrainerTeViA_mirrorText
    alternatives: dict = field(default_factory=dict)  # case id -> [other phrasings of its report]
    paraphrase: Optional[dict] = None  # the optional "paraphrase" section as written; None: the defaults

    @property
    def paraphrase_settings(self) -> ParaphraseSettings:
        return settings_from_json(self.paraphrase)


def check_not_a_directory(path: str) -> None:
    if os.path.isdir(path):
        raise PromptFileError(f"prompt file {path} is a directory: pass --prompts with the JSON file's own path "
                              f"(e.g. {os.path.join(path, PROMPTS_FILENAME)})")


def _only_control_characters(text: str) -> bool:
    # a binary export or a broken encoding leaves NULs and control codes; whitespace-only texts are placeholders
    return bool(text.strip()) and not any(ch.isprintable() and not ch.isspace() for ch in text)


def read_prompt_document(path: str):
    """Read and parse the JSON (size, UTF-8, syntax, top-level object). Field checks are separate."""
    path = os.fspath(path)
    check_not_a_directory(path)
    if not os.path.isfile(path):
        raise PromptFileError(f"prompt file {path} does not exist: create it with "
                              f"`nnUNetv2_tevia_prompts init -d <dataset>` or point --prompts at the right file")
    size = os.path.getsize(path)
    if size > MAX_PROMPT_FILE_BYTES:
        raise PromptFileError(f"prompt file {path} is {size / 2 ** 20:.0f} MiB, over the "
                              f"{MAX_PROMPT_FILE_BYTES / 2 ** 20:.0f} MiB limit: is --prompts pointing at the "
                              f"wrong file? A prompt file holds only JSON text")
    with open(path, "rb") as f:
        raw = f.read()
    text = decode_utf8(raw, f"prompt file {path}", "save the file with UTF-8 encoding")
    try:
        doc = json.loads(text, object_pairs_hook=_object_with_duplicates)
    except json.JSONDecodeError as e:
        raise PromptFileError(f"prompt file {path} is not valid JSON ({e.msg}, line {e.lineno}, column {e.colno}): "
                              f"fix the syntax there (a JSON linter shows it)") from None
    except RecursionError:
        raise PromptFileError(f"prompt file {path} is nested too deeply to be a prompt file: "
                              f"see docs/prompt_format.md for the layout") from None
    except ValueError as e:  # e.g. an integer literal with thousands of digits
        raise PromptFileError(f"prompt file {path} cannot be parsed: {e}: fix the value") from None
    if not isinstance(doc, dict):
        raise PromptFileError(f"prompt file {path} holds {_type_name(doc)}, not a JSON object: "
                              f"see docs/prompt_format.md for the layout, or run `nnUNetv2_tevia_prompts init`")
    return doc


def document_problems(doc: dict, path: str, *, allow_empty: bool = False) -> list:
    """Every problem of a parsed prompt document, one message each, naming the file and the case."""
    problems = []
    if getattr(doc, "duplicates", None):
        problems.append(f"{path}: top-level key {doc.duplicates[0]!r} appears more than once: keep one")
    unknown = [k for k in doc if k not in TOP_LEVEL_KEYS]
    if unknown:
        problems.append(f"{path}: unknown top-level key(s) {', '.join(map(repr, unknown[:5]))}"
                        f"{' ...' if len(unknown) > 5 else ''}: allowed are {', '.join(TOP_LEVEL_KEYS)} "
                        f"(case texts belong inside \"cases\")")
    if doc.get("format") != FORMAT:
        what = "has no \"format\"" if "format" not in doc else f"has \"format\": {doc['format']!r}"
        problems.append(f"{path} {what}; a TeViA prompt file needs \"format\": \"{FORMAT}\": "
                        f"create one with `nnUNetv2_tevia_prompts init -d <dataset>`")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        if type(version) is int and version > VERSION:
            problems.append(f"{path} has \"version\": {version}, written by a newer nnunetv2_tevia; this one reads "
                            f"version {VERSION}: upgrade nnunetv2_tevia")
        else:
            what = "has no \"version\"" if "version" not in doc else f"has \"version\": {version!r}"
            problems.append(f"{path} {what}: set \"version\": {VERSION}")

    if "default" in doc:
        default = doc["default"]
        if not isinstance(default, str):
            problems.append(f"{path}: \"default\" is {_type_name(default)}, not a string: write the text in quotes")
        elif not allow_empty and not default.strip():
            problems.append(f"{path}: \"default\" is empty: write the text for cases without a report, "
                            f"or remove the key")
        elif _utf8_problem(default):
            problems.append(f"{path}: \"default\" {_utf8_problem(default)}: fix the text")

    classes = doc.get("classes", {})
    if not isinstance(classes, dict):
        problems.append(f"{path}: \"classes\" is {_type_name(classes)}, not an object of label name -> description")
    else:
        for name in getattr(classes, "duplicates", []):
            problems.append(f"{path}: class {name!r} appears more than once in \"classes\": keep one")
        for name, desc in classes.items():
            if not isinstance(desc, str):
                problems.append(f"{path}: class {name!r}: description is {_type_name(desc)}, not a string: "
                                f"write it in quotes")
            elif _utf8_problem(name) or _utf8_problem(desc):
                problems.append(f"{path}: class {name!r} {_utf8_problem(name) or _utf8_problem(desc)}: fix it")

    if "mirror" in doc:
        problems.extend(mirror_problems(doc["mirror"], path))

    if "cases" not in doc:
        problems.append(f"{path} has no \"cases\" object: add \"cases\": {{}} (case id -> report text)")
        return problems
    cases = doc["cases"]
    fallback = no_report_text(PromptFile(
        path=None, cases={}, default=doc.get("default") if isinstance(doc.get("default"), str) else None,
        classes={k: v for k, v in classes.items() if isinstance(v, str)} if isinstance(classes, dict) else {}))
    if not isinstance(cases, dict):
        problems.append(f"{path}: \"cases\" is {_type_name(cases)}, not an object of case id -> report text")
        return problems
    for cid in getattr(cases, "duplicates", []):
        problems.append(f"{path}: case {cid!r} appears more than once in \"cases\": keep one text")
    for cid, text in cases.items():
        if not cid.strip():
            problems.append(f"{path}: a case id in \"cases\" is empty: use the case id (image file name without "
                            f"_0000 and file ending)")
        elif _utf8_problem(cid):
            problems.append(f"{path}: case id {cid!r} {_utf8_problem(cid)}: fix the id")
        elif not isinstance(text, str):
            problems.append(f"{path}: case {cid!r}: text is {_type_name(text)}, not a string: write the report "
                            f"in quotes")
        elif _only_control_characters(text):
            problems.append(f"{path}: case {cid!r}: text holds only control characters ({text[:8]!r}), not a "
                            f"report: write its report, or \"\" for the no-report text")
        elif not text.strip():
            if not allow_empty and not fallback:
                problems.append(f"{path}: case {cid!r} has no text: write its report there, or set \"default\" "
                                f"(the text for cases without a report)")
        elif _utf8_problem(text):
            problems.append(f"{path}: case {cid!r}: text {_utf8_problem(text)}: fix the text")
    if "paraphrase" in doc:
        problems.extend(section_problems(doc["paraphrase"], path))
    if "alternatives" in doc:
        problems.extend(alternatives_problems(doc["alternatives"], cases, path))
    return problems


def prompts_from_document(doc: dict, path: Optional[str]) -> PromptFile:
    """Build a PromptFile from a document that passed :func:`document_problems`."""
    return PromptFile(path=path, cases=dict(doc["cases"]), default=doc.get("default"),
                      classes=dict(doc.get("classes", {})),
                      mirror=mirror_map_from_json(doc["mirror"], path) if "mirror" in doc else None,
                      alternatives={k: list(v) for k, v in doc.get("alternatives", {}).items()},
                      paraphrase=dict(doc["paraphrase"]) if "paraphrase" in doc else None)


def load_prompts(path, *, allow_empty: bool = False) -> PromptFile:
    """Load and strictly check a prompt file. ``allow_empty`` accepts the "" placeholders of a template."""
    path = os.fspath(path)
    doc = read_prompt_document(path)
    problems = document_problems(doc, path, allow_empty=allow_empty)
    if problems:
        more = f" (and {len(problems) - 1} more: {_FIX_VALIDATE})" if len(problems) > 1 else ""
        raise PromptFileError(problems[0] + more)
    return prompts_from_document(doc, path)


def save_prompts(pf: PromptFile, path=None) -> str:
    """Write atomically as UTF-8 JSON, case ids sorted so that diffs between versions stay readable."""
    path = os.fspath(path) if path is not None else pf.path
    if path is None:
        raise ValueError("save_prompts needs a path: the PromptFile has none")
    doc = {"format": FORMAT, "version": VERSION}
    if pf.default is not None:
        doc["default"] = pf.default
    doc["classes"] = dict(pf.classes)
    if pf.mirror is not None:
        doc["mirror"] = mirror_map_to_json(pf.mirror)
    if pf.paraphrase is not None:
        doc["paraphrase"] = dict(pf.paraphrase)
    doc["cases"] = {k: pf.cases[k] for k in sorted(pf.cases)}
    if pf.alternatives:
        doc["alternatives"] = {k: list(pf.alternatives[k]) for k in sorted(pf.alternatives)}
    atomic_write_json(path, doc)
    return path


def no_report_text(pf: PromptFile) -> str:
    """The no-report text of a prompt file: "default", else a sentence from the class descriptions, else "".

    Embedding files it as the cache's no-report text; which case gets it is prompts/text_choice.py's rule.
    """
    if has_report(pf.default):
        return pf.default
    descriptions = [d.strip().rstrip(".").strip() for d in pf.classes.values() if isinstance(d, str)]
    descriptions = [d for d in descriptions if d]
    if descriptions:
        return "No report. Possible findings: " + "; ".join(descriptions) + "."
    return ""


def default_prompt_path(dataset_name_or_id) -> str:
    from nnunetv2_tevia.prompts.dataset_cases import dataset_folder

    return os.path.join(dataset_folder(dataset_name_or_id), PROMPTS_FILENAME)


def resolve_prompt_path(dataset_name_or_id, prompts_arg: Optional[str]) -> str:
    if prompts_arg:
        return os.path.abspath(os.fspath(prompts_arg))
    return default_prompt_path(dataset_name_or_id)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
