"""Mirror word maps (issue 13, text side): which words of a report swap when the image is flipped along an axis.

A flipped image must come with a report whose location words are flipped the same way ("lower left lung" becomes
"lower right lung" when the columns are flipped). This module holds the word map, its optional ``"mirror"`` section
of the prompt file, and the text rewriting. It is pure text: no torch, no images.

Rules of :func:`mirror_text` (see docs/prompt_format.md, "Mirror word maps"):

- whole words only, case-insensitively, keeping the case of the text (left/Left/LEFT -> right/Right/RIGHT);
  "leftover", "bright", "copyright" are untouched;
- each part of a hyphenated compound is a word ("left-sided" -> "right-sided", "upper-left" -> "lower-right");
- a two-part compound of both words of one pair ("left-right", "upper/lower") names the axis itself and is kept;
- all swaps of one call happen at once: left -> right and right -> left, never left -> right -> left.
"""
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, List, Optional, Sequence, Tuple

from nnunetv2_tevia.errors import PromptFileError
from nnunetv2_tevia.prompts.text_choice import has_report

MAX_SPATIAL_AXES = 3
MIRROR_KEYS = ("preset", "axes")
_WORD = re.compile(r"[^\W\d_]+")  # letters only: no space, hyphen, digit or underscore
_AXIS_KEY = re.compile(r"0|[1-9][0-9]*")
_SEP = "-/\u2013"  # hyphen, slash, en dash
_EXAMPLE = '{"preset": "2d"} or {"axes": {"1": [["left", "right"]]}}'


@dataclass(frozen=True)
class MirrorMap:
    """Per spatial image axis, the word pairs that swap when that axis is flipped.

    ``axes`` is ``((axis, ((word, partner), ...)), ...)`` sorted by axis. An axis is a spatial axis of the image as
    nnU-Net's reader returns it from the file (before the plans' ``transpose_forward``): 0..1 for 2D (row, column),
    0..2 for 3D (SimpleITK's z, y, x for NIfTI); model/mirror_axes.py translates. An axis listed with no pairs
    may be flipped and changes no word (no report names a direction along it).
    Words are lower case; matching ignores case. ``preset`` names the preset the map was built on (None if none), so
    that saving writes ``{"preset": ...}`` back instead of the expanded word list.
    """

    axes: tuple
    preset: Optional[str] = None

    def __post_init__(self):
        # Normalised to sorted tuples, so that a map built from lists is hashable and compares equal.
        object.__setattr__(self, "axes", tuple(sorted((int(axis), tuple((a, b) for a, b in pairs))
                                                      for axis, pairs in self.axes)))
        problems = _pair_problems([(axis, a, b, f"axis {axis}") for axis, pairs in self.axes for a, b in pairs],
                                  "MirrorMap")
        if problems:
            raise ValueError(problems[0])

    @classmethod
    def of(cls, axes: dict, preset: Optional[str] = None) -> "MirrorMap":
        """Build from ``{axis: [(word, partner), ...]}``; an axis with an empty list flips without changing words."""
        return cls(tuple(axes.items()), preset)

    @property
    def axis_indices(self) -> tuple:
        return tuple(axis for axis, _ in self.axes)

    def pairs(self, axis: int) -> tuple:
        return dict(self.axes).get(axis, ())

    def only(self, axes: Iterable[int]) -> "MirrorMap":
        """The map of ``axes`` alone (those it lists): the flips that prediction mirrors when it mirrors fewer axes."""
        keep = set(int(a) for a in axes)
        return MirrorMap(tuple((axis, pairs) for axis, pairs in self.axes if axis in keep))


def _json_type(value) -> str:
    names = {bool: "a boolean", dict: "an object", list: "a list", str: "a string", int: "a number",
             float: "a number", type(None): "null"}
    return next((n for t, n in names.items() if isinstance(value, t)), type(value).__name__)  # bool before int


def _pair_problems(entries: list, where: str) -> list:
    """Word checks on ``[(axis, word, partner, source), ...]``: single lower-case words, each word in one pair only."""
    problems, first_source, word_source = [], {}, {}
    for _, a, b, source in entries:
        bad = next((w for w in (a, b) if not isinstance(w, str) or not _WORD.fullmatch(w)), None)
        if bad is not None:
            hint = (": each part of a hyphenated word is matched on its own ('left-sided' becomes 'right-sided' "
                    "through ['left', 'right']), so list the single words" if isinstance(bad, str) and "-" in bad
                    else ": fix the pair")
            problems.append(f"{where}: {source}: {bad!r} is not a single word (letters only: no space, hyphen, digit "
                            f"or punctuation){hint}")
            continue
        if a.lower() != a or b.lower() != b:
            problems.append(f"{where}: {source}: write [{a!r}, {b!r}] in lower case (matching ignores case and keeps "
                            f"the case of the text)")
            continue
        if a == b:
            problems.append(f"{where}: {source}: pair [{a!r}, {b!r}] swaps a word with itself: "
                            f"list two different words")
            continue
        key = frozenset((a, b))
        if key in first_source:
            problems.append(f"{where}: pair [{a!r}, {b!r}] is listed twice ({first_source[key]} and {source}): "
                            f"keep one")
            continue
        first_source[key] = source
        for w in (a, b):
            if w in word_source:
                problems.append(f"{where}: word {w!r} is in two pairs ({word_source[w]} and {source}): a word swaps "
                                f"with one partner on one axis only: keep one pair")
            word_source.setdefault(w, source)
    return problems


# ---- presets ----------------------------------------------------------------------------------

# English defaults for 2D images (PNG X-rays, photographs): axis 0 = rows (up/down), axis 1 = columns (left/right).
# Not included, on purpose: "above"/"below" (also "above normal", "as above", "below 5 mm"), "up"/"down" ("follow-up").
DEFAULT_2D_MAP = MirrorMap.of({
    0: [("upper", "lower"), ("uppermost", "lowermost"), ("top", "bottom"), ("tops", "bottoms"),
        ("topmost", "bottommost"), ("superior", "inferior"), ("superiorly", "inferiorly"), ("cranial", "caudal"),
        ("cranially", "caudally"), ("upward", "downward"), ("upwards", "downwards")],
    1: [("left", "right"), ("leftmost", "rightmost"), ("leftward", "rightward"), ("leftwards", "rightwards")],
}, preset="2d")
# Preset names are "<n>d" (the image dimension), optionally "-<variant>" later. There is no 3D preset: which way
# a 3D volume's axes point depends on the dataset's orientation, so a 3D map is written out under "axes".
PRESETS = {"2d": DEFAULT_2D_MAP}
PRESET_NDIM = {"2d": 2}


# ---- rewriting ----------------------------------------------------------------------------------

def _case_like(source: str, word: str) -> str:
    if source.isupper():
        return word.upper()
    if source[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


@lru_cache(maxsize=256)
def _swapper(mirror_map: MirrorMap, axes: frozenset):
    """One compiled substitution for a map and a set of flipped axes (None when no word of the map swaps)."""
    partner = {}
    for axis, pairs in mirror_map.axes:
        if axis in axes:
            for a, b in pairs:
                partner[a], partner[b] = b, a
    if not partner:
        return None
    words = "|".join(sorted(map(re.escape, partner), key=len, reverse=True))
    sep = re.escape(_SEP)
    # Group 1-3: a compound of exactly two parts ("left-right", "upper-left"); group 4: any other single word.
    pattern = re.compile(rf"(?<![\w{sep}])({words})([{sep}])({words})(?!\w|[{sep}]\w)|\b({words})\b", re.IGNORECASE)

    def swap(word: str) -> str:
        other = partner.get(word.lower())
        return word if other is None else _case_like(word, other)

    def replace(m: re.Match) -> str:
        if m.group(4) is not None:
            return swap(m.group(4))
        a, sep_char, b = m.group(1, 2, 3)
        if partner.get(a.lower()) == b.lower():  # both ends of one axis: the flip leaves its meaning unchanged
            return m.group(0)
        return swap(a) + sep_char + swap(b)

    return lambda text: pattern.sub(replace, text)


def mirror_text(text: str, flipped_axes: Iterable[int], mirror_map: MirrorMap) -> str:
    """The report of the image flipped along ``flipped_axes``. A text without a word of those axes is returned as is."""
    swap = _swapper(mirror_map, frozenset(int(a) for a in flipped_axes))
    return swap(text) if swap else text


def flip_combinations(axes: Sequence[int]) -> List[Tuple[int, ...]]:
    """``()`` (no flip), then every non-empty combination of ``axes`` in nnU-Net's test-time order (one axis, then
    pairs, ...). The one enumeration of flips: the texts a cache holds, training's lookups and test-time mirroring."""
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(tuple(axes), r)]


def text_variants(text: str, mirror_map: MirrorMap, axes: Optional[Iterable[int]] = None) -> dict:
    """``{flipped axes: text}`` for every combination of ``axes`` (default: the map's axes), ``()`` included."""
    axes = sorted(set(int(a) for a in (mirror_map.axis_indices if axes is None else axes)))
    return {combo: mirror_text(text, combo, mirror_map) for combo in flip_combinations(axes)}


def distinct_texts(texts: Iterable[str], mirror_map: MirrorMap, axes: Optional[Iterable[int]] = None) -> list:
    """Every different text that the given texts become under any combination of flips, sorted: what to embed."""
    return sorted({v for t in texts for v in text_variants(t, mirror_map, axes).values()})


# ---- the "mirror" section of the prompt file ----------------------------------------------------

def mirror_problems(obj, path, ndim: Optional[int] = None) -> list:
    """Every problem of a ``"mirror"`` section, one message each, naming the file and the fix.

    ``ndim`` (2 or 3, if known) limits the axis indices and checks that a preset fits the images.
    """
    where = f"{path}: \"mirror\""
    if not isinstance(obj, dict):
        return [f"{where} is {_json_type(obj)}, not an object: write e.g. {_EXAMPLE}"]
    problems = [f"{where}: key {k!r} appears more than once: keep one" for k in getattr(obj, "duplicates", [])]
    unknown = [k for k in obj if k not in MIRROR_KEYS]
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}: allowed are "
                        f"{', '.join(MIRROR_KEYS)}")
    if not any(k in obj for k in MIRROR_KEYS):
        problems.append(f"{where} names no words: write e.g. {_EXAMPLE}, or remove the section")
    entries = []
    if "preset" in obj:
        preset = obj["preset"]
        if not isinstance(preset, str) or preset not in PRESETS:
            problems.append(f"{where}: unknown preset {preset!r}: known presets are {', '.join(map(repr, PRESETS))}; "
                            f"for other images write the word pairs under \"axes\"")
        elif ndim is not None and ndim != PRESET_NDIM[preset]:
            problems.append(f"{where}: preset {preset!r} is for {PRESET_NDIM[preset]}D images, these are {ndim}D: "
                            f"write the word pairs of each axis under \"axes\"")
        else:
            entries += [(axis, a, b, f"preset {preset!r}") for axis, pairs in PRESETS[preset].axes for a, b in pairs]
    axes = obj.get("axes", {})
    if not isinstance(axes, dict):
        problems.append(f"{where}: \"axes\" is {_json_type(axes)}, not an object of axis -> word pairs: write e.g. "
                        f"{{\"1\": [[\"left\", \"right\"]]}}")
        axes = {}
    problems += [f"{where}: axis {k!r} appears more than once in \"axes\": merge its pairs"
                 for k in getattr(axes, "duplicates", [])]
    n_axes = ndim or MAX_SPATIAL_AXES
    for key, pairs in axes.items():
        if not _AXIS_KEY.fullmatch(key) or int(key) >= n_axes:
            problems.append(f"{where}: axis {key!r} is not a spatial axis index: use \"0\" ... \"{n_axes - 1}\" "
                            f"(the image's axes as read from the file: row, column for 2D; z, y, x for NIfTI)")
            continue
        if not isinstance(pairs, list):
            problems.append(f"{where}: axis {key!r} holds {_json_type(pairs)}, not a list of word pairs: write e.g. "
                            f"[[\"left\", \"right\"]]")
            continue
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2):
                problems.append(f"{where}: axis {key!r}: {pair!r} is not a pair: write two words as [\"a\", \"b\"]")
            else:
                entries.append((int(key), pair[0], pair[1], f"axis {key!r}"))
    return problems + _pair_problems(entries, where)


def mirror_map_from_json(obj, path, ndim: Optional[int] = None) -> MirrorMap:
    """Parse a ``"mirror"`` section; a preset and ``"axes"`` combine (the axes' pairs are added to the preset's)."""
    problems = mirror_problems(obj, path, ndim)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PromptFileError(problems[0] + more)
    axes = {axis: list(pairs) for axis, pairs in PRESETS[obj["preset"]].axes} if "preset" in obj else {}
    for key, pairs in obj.get("axes", {}).items():
        axes.setdefault(int(key), []).extend((a, b) for a, b in pairs)
    return MirrorMap.of(axes, preset=obj.get("preset"))


def mirror_map_to_json(mirror_map: MirrorMap) -> dict:
    """The ``"mirror"`` section: the preset (if the map still holds all its pairs) plus the pairs beyond it."""
    held = {(axis, pair) for axis, pairs in mirror_map.axes for pair in pairs}
    preset = PRESETS.get(mirror_map.preset)
    base = {(axis, pair) for axis, pairs in preset.axes for pair in pairs} if preset else None
    out = {"preset": mirror_map.preset} if base is not None and base <= held else {}
    extra = {}
    for axis, pairs in mirror_map.axes:
        kept = [list(p) for p in pairs if "preset" not in out or (axis, p) not in base]
        if kept or not pairs:
            extra[str(axis)] = kept
    if extra or not out:
        out["axes"] = extra
    return out


# ---- summary for `nnUNetv2_tevia_prompts stats` -------------------------------------------------

def _excerpt(a: str, b: str, width: int = 90) -> tuple:
    """Both texts, cut to a window around their first difference when longer than ``width``."""
    if max(len(a), len(b)) <= width:
        return a, b
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), 0)
    start = max(0, i - width // 3)

    def cut(s):
        return ("..." if start else "") + s[start:start + width] + ("..." if start + width < len(s) else "")

    return cut(a), cut(b)


def mirror_summary(cases: dict, mirror_map: MirrorMap, examples: int = 2) -> list:
    """Lines telling, per flip (each axis and each combination), how many cases' reports change, with examples."""
    texts = {cid: t for cid, t in cases.items() if has_report(t)}
    axes = ", ".join(f"{axis} ({len(pairs)} pair(s))" for axis, pairs in mirror_map.axes)
    preset = f"preset {mirror_map.preset!r}, " if mirror_map.preset else ""
    lines = [f"mirror words ({preset}axes {axes or 'none'}): reports that change, of {len(texts)} case(s) with text"]
    for combo in flip_combinations(mirror_map.axis_indices)[1:]:
        changed = [(cid, t, m) for cid, t in texts.items() if (m := mirror_text(t, combo, mirror_map)) != t]
        name = f"axis {combo[0]}" if len(combo) == 1 else f"axes {'+'.join(map(str, combo))}"
        lines.append(f"  flip {name}: {len(changed)} case(s) change")
        for cid, before, after in changed[:examples]:
            before, after = _excerpt(before, after)
            lines.append(f"    e.g. {cid}: {before!r} -> {after!r}")
    lines.append(f"  distinct texts over all flips: {len(distinct_texts(texts.values(), mirror_map))} "
                 f"({len(set(texts.values()))} without flips)")
    return lines
