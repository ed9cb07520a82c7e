"""Checks shared by the JSON files users write (the prompt file): UTF-8, duplicate keys, value types."""
import codecs
from typing import Optional

from nnunetv2_tevia.errors import PromptFileError


class JsonObject(dict):
    """A JSON object that remembers keys given twice (json keeps only the last one silently)."""

    duplicates: list


def object_with_duplicates(pairs):
    obj = JsonObject()
    obj.duplicates = []
    for k, v in pairs:
        if k in obj:
            obj.duplicates.append(k)
        obj[k] = v
    return obj


def type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def utf8_problem(s: str) -> Optional[str]:
    # JSON escapes such as "\ud800" decode to lone surrogates, which cannot be written back as UTF-8.
    try:
        s.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        return f"contains an unpaired surrogate escape (\\u{ord(s[e.start]):04x}) at character {e.start}"


def decode_utf8(raw: bytes, what: str, fix: str) -> str:
    """Decode UTF-8, tolerating the BOM that Windows editors and Excel prepend; errors give the byte offset."""
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = bom + e.start
        line = raw.count(b"\n", 0, offset) + 1
        raise PromptFileError(f"{what} is not valid UTF-8: byte 0x{raw[offset]:02x} at byte offset {offset} "
                              f"(line {line}): {fix}") from None
