"""What `nnUNetv2_tevia_prompts init | import | validate` do, as functions that return their findings."""
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

from nnunetv2_tevia.prompts.paraphrase import settings_from_json

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts.dataset_cases import (dataset_folder, image_ndim, label_names, test_case_ids,
                                                  training_case_ids)
from nnunetv2_tevia.prompts.mirror_words import mirror_problems
from nnunetv2_tevia.prompts.prompt_file import (PromptFile, check_not_a_directory, document_problems, load_prompts,
                                                no_report_text, prompts_from_document, read_prompt_document,
                                                resolve_prompt_path, save_prompts)
from nnunetv2_tevia.prompts.tables import match_key_to_case, read_text_table
from nnunetv2_tevia.prompts.text_choice import has_report


def shorten(items, limit: int = 20) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


def make_template(raw_folder: str, path: Optional[str] = None) -> PromptFile:
    """Every training and test case with an empty placeholder text, every label with an empty description."""
    ids = training_case_ids(raw_folder) + test_case_ids(raw_folder)
    return PromptFile(path=path, cases={cid: "" for cid in ids}, default=None,
                      classes={name: "" for name in label_names(raw_folder)})


@dataclass
class InitResult:
    path: str
    n_training: int
    n_test: int
    n_classes: int


def init_prompts(dataset, prompts: Optional[str] = None, force: bool = False) -> InitResult:
    raw = dataset_folder(dataset)
    path = resolve_prompt_path(raw, prompts)
    check_not_a_directory(path)
    if os.path.exists(path) and not force:
        raise PromptFileError(f"prompt file {path} already exists: edit it, merge a table into it with "
                              f"`nnUNetv2_tevia_prompts import`, or pass --force to replace it with an empty template")
    pf = make_template(raw, path)
    save_prompts(pf, path)
    return InitResult(path, len(training_case_ids(raw)), len(test_case_ids(raw)), len(pf.classes))


@dataclass
class ImportResult:
    path: str
    created: bool
    rows: int
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    kept_different: int = 0
    unmatched: list = field(default_factory=list)
    training_without_text: list = field(default_factory=list)
    test_without_text: list = field(default_factory=list)
    alternatives_added: int = 0

    @property
    def matched(self) -> int:
        return self.added + self.replaced + self.unchanged + self.kept_different


def import_table(dataset, table: str, id_column: str = "Image", text_column: str = "Description",
                 prompts: Optional[str] = None, force: bool = False,
                 alternative_columns: Sequence[str] = ()) -> ImportResult:
    """Merge a table's texts into the prompt file (created from the template if absent).

    A non-empty text already in the file is replaced only with ``force``: hand edits are not lost by re-importing.
    ``alternative_columns``: columns of other phrasings of each report, added to the case's "alternatives"
    (empty cells and texts the case already has are skipped).
    """
    raw = dataset_folder(dataset)
    path = resolve_prompt_path(raw, prompts)
    check_not_a_directory(path)
    train_ids, test_ids = training_case_ids(raw), test_case_ids(raw)
    case_ids = set(train_ids) | set(test_ids)
    rows = read_text_table(table, id_column, text_column)

    created = not os.path.exists(path)
    pf = make_template(raw, path) if created else load_prompts(path, allow_empty=True)
    result = ImportResult(path=path, created=created, rows=len(rows))

    key_of_case = {}
    for key, text in rows:
        cid = match_key_to_case(key, case_ids)
        if cid is None:
            result.unmatched.append(key)
            continue
        if cid in key_of_case:
            raise PromptFileError(f"table {table}: keys {key_of_case[cid]!r} and {key!r} both name case {cid!r}: "
                                  f"keep one row per case")
        key_of_case[cid] = key
        old = pf.cases.get(cid, "")
        if old == text:
            result.unchanged += 1
        elif not has_report(old):
            pf.cases[cid] = text
            result.added += 1
        elif force:
            pf.cases[cid] = text
            result.replaced += 1
        else:
            result.kept_different += 1

    for column in alternative_columns:
        for key, text in read_text_table(table, id_column, column, skip_empty_text=True):
            cid = match_key_to_case(key, case_ids)
            if cid is None or not has_report(pf.cases.get(cid)):
                continue
            known = pf.alternatives.get(cid, [])
            if text != pf.cases[cid] and text not in known:
                pf.alternatives[cid] = known + [text]
                result.alternatives_added += 1

    if rows and not key_of_case:
        example_ids = shorten(sorted(case_ids), 3) or "none: imagesTr and imagesTs are empty"
        raise PromptFileError(f"table {table}: none of its {len(rows)} keys in column {id_column!r} (e.g. "
                              f"{rows[0][0]!r}) names a case of {raw} (case ids: {example_ids}): check --id-column "
                              f"and -d; nothing was written")
    save_prompts(pf, path)
    has_text = {cid for cid, t in pf.cases.items() if has_report(t)}
    result.training_without_text = [c for c in train_ids if c not in has_text]
    result.test_without_text = [c for c in test_ids if c not in has_text]
    return result


@dataclass
class ValidationReport:
    path: str
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    n_training: int = 0
    n_training_with_text: int = 0
    n_test: int = 0
    n_test_with_text: int = 0
    n_classes: int = 0
    no_report_text: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_prompts(dataset, prompts: Optional[str] = None, strict: bool = False) -> ValidationReport:
    """Check a prompt file against its dataset. Passing means training can load it as it is.

    A file that cannot be parsed at all raises PromptFileError; everything else is collected.
    """
    raw = dataset_folder(dataset)
    path = resolve_prompt_path(raw, prompts)
    if not os.path.exists(path):
        raise PromptFileError(f"no prompt file at {path}: create it with `nnUNetv2_tevia_prompts init -d {dataset}` "
                              f"or pass --prompts FILE")
    report = ValidationReport(path=path)
    doc = read_prompt_document(path)
    report.errors.extend(document_problems(doc, path, allow_empty=False))
    if "mirror" in doc:  # the axes the images really have, which the file alone cannot tell: these problems replace
        # the file-only ones (an axis beyond the images' would otherwise be reported twice, with two ranges)
        file_only = set(mirror_problems(doc["mirror"], path))
        report.errors = [p for p in report.errors if p not in file_only]
        report.errors.extend(mirror_problems(doc["mirror"], path, image_ndim(raw)))
    # Dataset-level checks still run on a file with field errors, on whatever part of it is well-formed.
    cases = doc.get("cases") if isinstance(doc.get("cases"), dict) else {}
    classes = doc.get("classes") if isinstance(doc.get("classes"), dict) else {}
    default = doc.get("default") if isinstance(doc.get("default"), str) else None
    pf = prompts_from_document({"cases": cases, "classes": {k: v for k, v in classes.items() if isinstance(v, str)},
                                "default": default}, path)
    report.no_report_text = no_report_text(pf)
    alternatives = doc.get("alternatives") if isinstance(doc.get("alternatives"), dict) else {}
    n_alternatives = sum(len(v) for v in alternatives.values() if isinstance(v, list))
    if ("alternatives" in doc or "paraphrase" in doc) and not any("paraphrase" in p for p in report.errors):
        settings = settings_from_json(doc.get("paraphrase"))
        report.notes.append(f"training samples each case's report, its alternatives ({n_alternatives} for "
                            f"{len(alternatives)} case(s)) and up to {settings.variants} paraphrase(s) of each "
                            f"(preset {settings.preset!r}, {len(settings.synonyms)} extra synonym group(s)); "
                            f"prediction uses the report")

    train_ids, test_ids = training_case_ids(raw), test_case_ids(raw)
    report.n_training, report.n_test, report.n_classes = len(train_ids), len(test_ids), len(classes)
    if not train_ids:
        report.warnings.append(f"{raw} has no training images in imagesTr (names must end in _0000 plus the "
                               f"file_ending of dataset.json)")
    train_without = [c for c in train_ids if not has_report(cases.get(c))]
    test_without = [c for c in test_ids if not has_report(cases.get(c))]
    report.n_training_with_text = len(train_ids) - len(train_without)
    report.n_test_with_text = len(test_ids) - len(test_without)
    if train_without and report.no_report_text:
        report.notes.append(f"{len(train_without)} training case(s) have no text and use the no-report text: "
                            f"{shorten(train_without, 10)}")
    elif train_without:
        # "" placeholders were already reported by document_problems; here the cases with no entry at all.
        for cid in (c for c in train_without if c not in cases):
            report.errors.append(f"{path}: training case {cid!r} has no text: write its report under \"cases\" "
                                 f"(or import a table with `nnUNetv2_tevia_prompts import`), or set \"default\"")
    if test_without:
        fallback = "use the no-report text" if report.no_report_text else "need a text before inference"
        report.notes.append(f"{len(test_without)} test case(s) in imagesTs have no text and {fallback}: "
                            f"{shorten(test_without, 10)}")

    unknown = sorted(set(cases) - set(train_ids) - set(test_ids))
    if unknown and strict:
        for cid in unknown:
            report.errors.append(f"{path}: case {cid!r} is not an image of imagesTr or imagesTs in {raw}: fix the id "
                                 f"or remove the entry")
    elif unknown:
        report.warnings.append(f"{path}: {len(unknown)} case id(s) are not images of imagesTr or imagesTs "
                               f"(their texts are embedded all the same, but training does not use them; --strict "
                               f"makes this an error): {shorten(unknown)}")

    known_labels = set(label_names(raw))
    unknown_classes = [c for c in classes if c not in known_labels]
    if unknown_classes:
        msg = (f"{path}: class name(s) {shorten(map(repr, unknown_classes))} are not labels of "
               f"{os.path.join(raw, 'dataset.json')}: use the label names from there")
        (report.errors if strict else report.warnings).append(msg)
    return report
