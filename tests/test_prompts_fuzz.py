"""Any input gives a valid result or a PromptFileError: never another exception (which would be a traceback)."""
import csv
import io
import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts.prompt_file import (FORMAT, TOP_LEVEL_KEYS, PromptFile, load_prompts, no_report_text,
                                                save_prompts, text_sha256)
from nnunetv2_tevia.prompts.tables import match_key_to_case, read_text_table
from nnunetv2_tevia.prompts.text_choice import TextRule, choose_texts

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)
texts = st.text(max_size=30)  # includes "", whitespace and lone surrogates
prompt_like = st.fixed_dictionaries(
    {},
    optional={
        "format": st.just(FORMAT) | json_scalars,
        "version": st.just(1) | json_scalars,
        "default": texts | json_scalars,
        "classes": st.dictionaries(st.text(max_size=10), texts | json_scalars, max_size=4) | json_values,
        "cases": st.dictionaries(st.text(max_size=10), texts | json_values, max_size=6) | json_values,
        "extra": json_values,
    })


def _write(data: bytes, suffix: str):
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _check_loaded(pf: PromptFile, allow_empty: bool):
    assert isinstance(pf.cases, dict) and isinstance(pf.classes, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in pf.cases.items())
    assert all(isinstance(v, str) for v in pf.classes.values())
    fallback = no_report_text(pf)
    assert isinstance(fallback, str)
    if not allow_empty and not fallback:
        assert all(v.strip() for v in pf.cases.values())
    for cid, text in pf.cases.items():
        text_sha256(text)  # every accepted text is encodable
        try:  # the training rule: the report, else the file's no-report text where it has one
            assert choose_texts([cid], pf.cases, TextRule(fallback, bool(fallback)))[cid].text
        except Exception as e:  # only a missing text may stop it
            assert type(e).__name__ == "MissingTextError" and allow_empty


def _load_any(path):
    for allow_empty in (False, True):
        try:
            _check_loaded(load_prompts(path, allow_empty=allow_empty), allow_empty)
        except PromptFileError:
            pass


@FUZZ
@given(st.binary(max_size=300))
def test_load_prompts_on_arbitrary_bytes(data):
    path = _write(data, ".json")
    try:
        _load_any(path)
    finally:
        os.remove(path)


@FUZZ
@given(prompt_like, st.booleans())
def test_load_prompts_on_json_like_documents(doc, ensure_ascii):
    try:
        raw = json.dumps(doc, ensure_ascii=ensure_ascii).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot be written without \u escapes
        raw = json.dumps(doc, ensure_ascii=True).encode("utf-8")
    path = _write(raw, ".json")
    try:
        try:
            pf = load_prompts(path, allow_empty=True)
        except PromptFileError:
            return
        _check_loaded(pf, True)
        # An accepted file survives a save/load round trip unchanged.
        save_prompts(pf, path)
        again = load_prompts(path, allow_empty=True)
        assert (again.cases, again.default, again.classes) == (pf.cases, pf.default, pf.classes)
        assert set(json.loads(open(path, encoding="utf-8").read())) <= set(TOP_LEVEL_KEYS)
    finally:
        os.remove(path)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".csv", ".tsv", ".xlsx", ".txt"]))
def test_read_text_table_on_arbitrary_bytes(data, suffix):
    path = _write(data, suffix)
    try:
        rows = read_text_table(path)
        assert all(isinstance(k, str) and k and isinstance(t, str) and t.strip() for k, t in rows)
    except PromptFileError:
        pass
    finally:
        os.remove(path)


cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@FUZZ
@given(st.lists(st.lists(cells, max_size=4), max_size=6), st.booleans(), st.sampled_from([",", ";", "\t"]))
def test_read_text_table_on_csv_shaped_input(body, header_ok, delimiter):
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter)
    w.writerow(["Image", "Description"] if header_ok else ["Image", "Report"])
    w.writerows(body)
    path = _write(buf.getvalue().encode("utf-8"), ".csv")
    try:
        rows = read_text_table(path)
        keys = [k for k, _ in rows]
        assert len(keys) == len(set(keys))
        assert all(k == k.strip() and k and t.strip() for k, t in rows)
    except PromptFileError:
        pass
    finally:
        os.remove(path)


@FUZZ
@given(st.text(max_size=40), st.sets(st.text(max_size=12), max_size=6))
def test_match_key_to_case_returns_a_case_or_none(key, case_ids):
    result = match_key_to_case(key, case_ids)
    assert result is None or result in case_ids
