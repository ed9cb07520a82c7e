"""Paraphrases of a report that keep its meaning: the text augmentation of training.

A model trained on one wording learns that wording's tokens, not what they mean (docs/architecture.md, "Reading
what a report means"). Each report therefore gets a few rule-based paraphrases when it is embedded, and training
samples one of a case's texts per step. Every rule keeps the meaning, so a location or a count never changes:

- **synonyms**: a word is swapped for another of its group (``upper`` / ``top`` / ``superior``); the prompt file's
  ``"paraphrase": {"synonyms": [[...], ...]}`` adds groups to the preset's;
- **list order**: the two sides of a clause's single ``and`` trade places when they are equally long (``lower left
  lung and lower right lung``, not ``the nodules in the lower right and upper left quadrants``), and comma-separated
  clauses are shuffled (only where the text has no brackets, colons or semicolons, whose structure a shuffle would break);
- **articles**: ``the`` / ``a`` / ``an`` are dropped.

The presets are deliberately small, and the wordings that the project tests generalisation with (held-out
wordings of the demo and of the QaTa-COV19 rewrites) are kept out of them: tests/test_paraphrase.py checks it.
The same text and settings always give the same paraphrases (the seed is the text's hash), so the cache is a
pure function of the prompt file.
"""
import hashlib
import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

# Groups of interchangeable words (whole words, matched case-insensitively, the first letter's case kept).
PRESETS = {
    "en": (
        ("upper", "top", "superior"),
        ("lower", "bottom", "inferior"),
        ("middle", "central"),
        ("lesion", "nodule", "focus"),
        ("lesions", "nodules", "foci"),
        ("quadrant", "region"),
        ("quadrants", "regions"),
        ("infected", "affected"),
        ("segment", "contour"),
        ("unilateral", "one-sided"),
        ("bilateral", "two-sided"),
    ),
    "none": (),
}
DEFAULT_PRESET = "en"
DEFAULT_VARIANTS = 4
MAX_VARIANTS = 32
SECTION_KEYS = ("preset", "synonyms", "variants")
_ARTICLE = re.compile(r"\b(the|a|an) (?=\w)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z-]*")


@dataclass(frozen=True)
class ParaphraseSettings:
    preset: str = DEFAULT_PRESET
    synonyms: Tuple[Tuple[str, ...], ...] = field(default_factory=tuple)  # extra groups from the prompt file
    variants: int = DEFAULT_VARIANTS  # paraphrases per report; 0 turns paraphrasing off

    def groups(self) -> Tuple[Tuple[str, ...], ...]:
        return tuple(PRESETS[self.preset]) + tuple(self.synonyms)

    def to_json(self) -> dict:
        return {"preset": self.preset, "synonyms": [list(g) for g in self.synonyms], "variants": self.variants}


def section_problems(section, path: str) -> List[str]:
    """Problems of a prompt file's ``"paraphrase"`` section, one message each, naming the file."""
    if not isinstance(section, dict):
        return [f"{path}: \"paraphrase\" must be an object such as {{\"preset\": \"en\", \"variants\": 4}}"]
    problems = []
    unknown = [k for k in section if k not in SECTION_KEYS]
    if unknown:
        problems.append(f"{path}: \"paraphrase\" has unknown key(s) {', '.join(map(repr, unknown))}: allowed are "
                        f"{', '.join(SECTION_KEYS)}")
    if "preset" in section and section["preset"] not in PRESETS:
        problems.append(f"{path}: \"paraphrase\": unknown preset {section['preset']!r}: use one of "
                        f"{', '.join(map(repr, PRESETS))}")
    variants = section.get("variants", DEFAULT_VARIANTS)
    if type(variants) is not int or not 0 <= variants <= MAX_VARIANTS:
        problems.append(f"{path}: \"paraphrase\": \"variants\" must be a whole number from 0 to {MAX_VARIANTS}, "
                        f"got {variants!r}")
    groups = section.get("synonyms", [])
    if not isinstance(groups, list):
        problems.append(f"{path}: \"paraphrase\": \"synonyms\" must be a list of word lists, such as "
                        f"[[\"lung\", \"lung field\"]]")
        return problems
    for i, group in enumerate(groups):
        if not isinstance(group, list) or len(group) < 2 or not all(isinstance(w, str) and w.strip() for w in group):
            problems.append(f"{path}: \"paraphrase\": synonyms[{i}] must list at least two words or phrases, "
                            f"got {group!r}")
    return problems


def settings_from_json(section: Optional[dict]) -> ParaphraseSettings:
    """Settings of a checked section; None (no section) gives the defaults."""
    if section is None:
        return ParaphraseSettings()
    return ParaphraseSettings(preset=section.get("preset", DEFAULT_PRESET),
                              synonyms=tuple(tuple(w.strip() for w in g) for g in section.get("synonyms", [])),
                              variants=section.get("variants", DEFAULT_VARIANTS))


def _match_case(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def swap_synonyms(text: str, groups: Sequence[Sequence[str]], rng: np.random.Generator) -> str:
    """Each occurrence of a group's member (whole word or phrase) replaced by a member drawn from ``rng``."""
    members = sorted({w.lower(): g for g in groups for w in g}.items(), key=lambda kv: -len(kv[0]))
    if not members:
        return text
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w, _ in members) + r")(?!\w)", re.IGNORECASE)
    lookup = dict(members)

    def pick(m: re.Match) -> str:
        group = lookup[m.group(1).lower()]
        return _match_case(group[int(rng.integers(len(group)))], m.group(1))
    return pattern.sub(pick, text)


def reorder(text: str, rng: np.random.Generator) -> str:
    """Clause order and the two sides of a single ``and`` shuffled, where the text's structure allows it."""
    if any(c in text for c in "():;[]"):
        return text
    body, end = (text[:-1], text[-1]) if text.endswith((".", "!")) else (text, "")
    clauses = body.split(", ")
    swapped = []
    for clause in clauses:
        parts = clause.split(" and ")
        if len(parts) == 2 and len(parts[0].split()) == len(parts[1].split()) and rng.random() < 0.5:
            clause = f"{parts[1]} and {parts[0]}"
        swapped.append(clause)
    order = rng.permutation(len(swapped))
    out = ", ".join(swapped[i] for i in order)
    if out[:1].islower() != body[:1].islower():  # a capital stays at the start of the sentence
        out = _match_case(out, body)
    return out + end


def drop_articles(text: str) -> str:
    return _ARTICLE.sub("", text)


def _seed(text: str, settings: ParaphraseSettings) -> int:
    key = repr((text, settings.to_json())).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")


def paraphrases(text: str, settings: ParaphraseSettings) -> List[str]:
    """Up to ``settings.variants`` distinct paraphrases of ``text`` (never ``text`` itself), deterministic."""
    if settings.variants <= 0 or not text.strip():
        return []
    rng = np.random.default_rng(_seed(text, settings))
    groups = settings.groups()
    out: List[str] = []
    for _ in range(settings.variants * 8):  # a short text may have fewer distinct paraphrases than asked for
        candidate = swap_synonyms(text, groups, rng)
        candidate = reorder(candidate, rng)
        if rng.random() < 0.5:
            candidate = drop_articles(candidate)
        if candidate != text and candidate not in out:
            out.append(candidate)
        if len(out) == settings.variants:
            break
    return out


def preset_words(preset: str = DEFAULT_PRESET) -> set:
    """Every lower-case word of a preset's groups (for the checks that keep held-out wordings out)."""
    return {w.lower() for g in PRESETS[preset] for phrase in g for w in _WORD.findall(phrase)}
