"""The mirrored reports of a text cache (issue 13): what ``embed_prompts`` adds when the prompt file has a
``"mirror"`` section, and how the cache reads it back.

The manifest then holds ``"mirror": {"map": <the section, mirror_map_to_json>, "cases": {case id: {flip key:
sha256}}}``: per case, the texts of the flips that change its report (a flip that changes nothing is left
out, the case's own text stands for it). A flip key names the flipped map axes, e.g. ``"1"`` or ``"0+1"``
(``flip_key`` / ``parse_flip_key``, the one format: training's text table and prediction read every flipped text
by (case, flip) from this section; prediction's own caches are written the same way).
The texts are filed under their sha256 like every other text, so a variant equal to another case's report
is embedded once. A prompt file without the section adds nothing, and its manifest is what it was before.
"""
from typing import Dict, Iterable, Optional, Tuple

from nnunetv2_tevia.prompts.mirror_words import (MirrorMap, mirror_map_from_json, mirror_map_to_json,
                                                 text_variants)
from nnunetv2_tevia.prompts.prompt_file import text_sha256

MANIFEST_KEY = "mirror"


def flip_key(flipped_axes: Iterable[int]) -> str:
    """``(0, 1)`` -> ``"0+1"``; the empty flip is ``""``."""
    return "+".join(str(a) for a in sorted(set(int(a) for a in flipped_axes)))


def parse_flip_key(key: str) -> Tuple[int, ...]:
    """``"0+1"`` -> ``(0, 1)``, the sorted map axes that ``CaseText.variant`` and the text table look up."""
    return tuple(int(a) for a in key.split("+")) if key else ()


def changed_flips(text: str, mirror_map: MirrorMap) -> Dict[str, str]:
    """{flip key: text} of every flip of the map's axes that changes ``text`` (the others read as ``text``)."""
    return {flip_key(combo): variant for combo, variant in text_variants(text, mirror_map).items()
            if combo and variant != text}


def mirror_variants(case_sha: Dict[str, str], by_sha: Dict[str, str],
                    mirror_map: MirrorMap) -> Tuple[Dict[str, Dict[str, str]], Dict[str, str]]:
    """({case id: {flip key: sha256}}, {sha256: text}) of every case's flipped reports that differ from it."""
    cases, texts = {}, {}
    for cid, sha in case_sha.items():
        flips = {}
        for key, text in changed_flips(by_sha[sha], mirror_map).items():
            flips[key] = vsha = text_sha256(text)
            texts[vsha] = text
        if flips:
            cases[cid] = flips
    return cases, texts


def mirror_manifest(mirror_map: MirrorMap, cases: Dict[str, Dict[str, str]], embedded: Iterable[str]) -> dict:
    """The manifest's ``"mirror"`` section, listing only the variants whose features are written (``embedded``)."""
    done = set(embedded)
    listed = {cid: {k: s for k, s in flips.items() if s in done} for cid, flips in sorted(cases.items())}
    return {"map": mirror_map_to_json(mirror_map), "cases": {cid: f for cid, f in listed.items() if f}}


def manifest_mirror_problem(section) -> Optional[str]:
    if not isinstance(section, dict) or not isinstance(section.get("map"), dict) \
            or not isinstance(section.get("cases"), dict):
        return "its \"mirror\" section is not {\"map\": ..., \"cases\": ...}"
    if not all(isinstance(f, dict) and all(isinstance(s, str) for s in f.values())
               for f in section["cases"].values()):
        return "its \"mirror\" cases are not {case id: {flip: sha256}}"
    return None


def cached_mirror_map(manifest: dict, where: str) -> Optional[MirrorMap]:
    section = manifest.get(MANIFEST_KEY)
    return None if section is None else mirror_map_from_json(section["map"], where)


def mirror_map_change(recorded: Optional[MirrorMap], current: Optional[MirrorMap]) -> Optional[str]:
    """Why the cache's mirrored texts no longer match the prompt file's map, or None if they do."""
    if recorded == current or (recorded is not None and current is not None
                               and recorded.axes == current.axes):
        return None
    if recorded is None:
        return "the prompt file has a \"mirror\" word map and the cache holds no mirrored texts"
    if current is None:
        return "the prompt file's \"mirror\" word map was removed"
    return "the \"mirror\" word map changed"
