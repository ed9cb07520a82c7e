"""The other phrasings of each report in a text cache: the prompt file's ``"alternatives"`` and the paraphrases
(prompts/paraphrase.py) that training samples from.

The manifest holds ``"variants": {"settings": <paraphrase settings>, "cases": {case id: [sha256, ...]},
"flips": {sha256: {flip key: sha256}}}``: per case the texts other than its report, and, when the prompt file has
a ``"mirror"`` word map, each such text's flipped variants (as ``"mirror"`` holds them for the reports). The texts
are filed under their sha256 like every other text, so a phrasing shared by many cases is embedded once.
"""
from typing import Dict, Iterable, List, Optional, Tuple

from nnunetv2_tevia.prompts.phrasings import case_texts
from nnunetv2_tevia.prompts.prompt_file import text_sha256

MANIFEST_KEY = "variants"


def variant_texts(pf, case_sha: Dict[str, str]) -> Tuple[Dict[str, List[str]], Dict[str, str]]:
    """({case id: [sha256 of each text other than its report]}, {sha256: text}) for the cases in ``case_sha``."""
    cases, texts = {}, {}
    for cid, sha in case_sha.items():
        shas = []
        for text in case_texts(pf, cid)[1:]:
            vsha = text_sha256(text)
            if vsha != sha and vsha not in shas:
                shas.append(vsha)
                texts[vsha] = text
        if shas:
            cases[cid] = shas
    return cases, texts


def variants_manifest(pf, cases: Dict[str, List[str]], flips: Dict[str, Dict[str, str]],
                      embedded: Iterable[str]) -> dict:
    """The manifest's ``"variants"`` section, listing only texts whose features are written (``embedded``)."""
    done = set(embedded)
    listed = {cid: [s for s in shas if s in done] for cid, shas in sorted(cases.items())}
    kept = {s for shas in listed.values() for s in shas}
    return {"settings": pf.paraphrase_settings.to_json(), "alternatives": _alternatives_sha(pf),
            "cases": {cid: shas for cid, shas in listed.items() if shas},
            "flips": {s: {k: v for k, v in f.items() if v in done} for s, f in sorted(flips.items()) if s in kept}}


def _alternatives_sha(pf) -> str:
    return text_sha256(repr(sorted((k, list(v)) for k, v in pf.alternatives.items())))


def variants_change(manifest: dict, pf) -> Optional[str]:
    """Why the cache's phrasings no longer match the prompt file, or None if they do."""
    section = manifest.get(MANIFEST_KEY)
    if section is None:
        return None if pf.paraphrase_settings.variants == 0 and not pf.alternatives else \
            "the cache holds no alternative phrasings or paraphrases of the reports (embedded by an older version)"
    if section.get("settings") != pf.paraphrase_settings.to_json():
        return "the \"paraphrase\" settings changed"
    if section.get("alternatives") != _alternatives_sha(pf):
        return "the \"alternatives\" changed"
    return None


def manifest_variants_problem(section) -> Optional[str]:
    if not isinstance(section, dict) or not isinstance(section.get("cases"), dict) \
            or not isinstance(section.get("flips"), dict):
        return "its \"variants\" section is not {\"settings\": ..., \"cases\": ..., \"flips\": ...}"
    if not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in section["cases"].values()):
        return "its \"variants\" cases are not {case id: [sha256, ...]}"
    return None
