"""The demo's reports: which of the four lesions are targets, in several paraphrased templates.

"Two lesions: upper left and lower right.", "Targets in the lower-right and upper-left quadrants.", "3 lesions (top
right, bottom left, top left)." ...: the zone words and their order vary, so that a network must read the words,
not the positions of tokens in a sentence.
"""
import numpy as np

from nnunetv2_tevia.prompts.mirror_words import MirrorMap, mirror_map_from_json

# Zone order fixes the index used in the demo's metadata.
ZONES = ("upper left", "upper right", "lower left", "lower right")
_COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
_DEFAULT_SIZE = {False: 64, True: 32}


def _zone_phrase(zone: str, style: str) -> str:
    if style == "hyphen":
        return zone.replace(" ", "-")
    if style == "topbottom":
        return zone.replace("upper", "top").replace("lower", "bottom")
    return zone


def _join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _template_0(zones, noun):  # "Two lesions: upper left and lower right."
    n = len(zones)
    return f"{_COUNT_WORDS[n].capitalize()} {_plural(n, noun)}: {_join_and(zones)}."


def _template_1(zones, noun):  # "Targets in the lower-right and upper-left quadrants."
    n = len(zones)
    return f"{_plural(n, 'Target')} in the {_join_and([_zone_phrase(z, 'hyphen') for z in zones])} {_plural(n, 'quadrant')}."


def _template_2(zones, noun):  # "2 lesions (top left, bottom right)."
    n = len(zones)
    return f"{n} {_plural(n, noun)} ({', '.join(_zone_phrase(z, 'topbottom') for z in zones)})."


def _template_3(zones, noun):  # "Segment the two lesions in the upper left and lower right quadrants."
    n = len(zones)
    count = "" if n == 1 else _COUNT_WORDS[n] + " "
    return f"Segment the {count}{_plural(n, noun)} in the {_join_and(zones)} {_plural(n, 'quadrant')}."


def _template_4(zones, noun):  # "Findings: two lesions, at the top left and at the bottom right."
    n = len(zones)
    places = [f"at the {_zone_phrase(z, 'topbottom')}" for z in zones]
    return f"Findings: {_COUNT_WORDS[n]} {_plural(n, noun)}, {_join_and(places)}."


def _template_5(zones, noun):  # "Upper-left and lower-right lesions are the targets."
    n = len(zones)
    subject = _join_and([_zone_phrase(z, "hyphen") for z in zones])
    return f"{subject[0].upper()}{subject[1:]} {_plural(n, noun)} {'is the target' if n == 1 else 'are the targets'}."


_TEMPLATES = (_template_0, _template_1, _template_2, _template_3, _template_4, _template_5)
_NOUNS = ("lesion", "nodule")


def format_report(target_zones: list[str], rng: np.random.Generator) -> str:
    """Report text naming ``target_zones`` (1 to 3 entries of ZONES), phrasing and order drawn from ``rng``."""
    if not 1 <= len(target_zones) <= 3 or any(z not in ZONES for z in target_zones):
        raise ValueError(f"target_zones must be 1 to 3 of {ZONES}, got {target_zones}")
    zones = [target_zones[i] for i in rng.permutation(len(target_zones))]
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template(zones, _NOUNS[int(rng.integers(len(_NOUNS)))])


def demo_mirror_section(three_d: bool) -> dict:
    """The prompt file's ``"mirror"`` section: in 2D the English preset (rows: upper/lower, top/bottom; columns:
    left/right); in 3D the same words on y and x, and z listed without words (no report names a z direction, so a
    z flip changes no report)."""
    if not three_d:
        return {"preset": "2d"}
    return {"axes": {"0": [], "1": [["upper", "lower"], ["top", "bottom"]], "2": [["left", "right"]]}}


def demo_mirror_map(three_d: bool) -> MirrorMap:
    return mirror_map_from_json(demo_mirror_section(three_d), "the demo's mirror section", 3 if three_d else 2)
