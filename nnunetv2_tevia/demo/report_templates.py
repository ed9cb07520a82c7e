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


# Wordings that no training report, no paraphrase list and no preset (prompts/paraphrase.py) uses, in two
# disjoint sets: "validation" for design choices, "held-out" only for reporting. Each set changes both the
# location words and the sentence shapes. tests/test_demo_generator.py checks that their words stay out of
# training and out of the presets.
def _split(zone: str) -> tuple:
    vertical, horizontal = zone.split()
    return vertical, horizontal


def _val_reversed(zones, rng):  # "Left top and right bottom are marked."
    places = [f"{h} {'top' if v == 'upper' else 'bottom'}" for v, h in map(_split, zones)]
    text = _join_and(places)
    return f"{text[0].upper()}{text[1:]} {'is' if len(zones) == 1 else 'are'} marked."


def _val_high_low(zones, rng):  # "The findings lie high on the left and low on the right."
    places = [f"{'high' if v == 'upper' else 'low'} on the {h}" for v, h in map(_split, zones)]
    return f"The {'finding lies' if len(zones) == 1 else 'findings lie'} {_join_and(places)}."


def _val_corner(zones, rng):  # "Outline the upper-left corner and the lower-right corner."
    return "Outline " + _join_and([f"the {_zone_phrase(z, 'hyphen')} corner" for z in zones]) + "."


def _held_above_below(zones, rng):  # "Abnormalities seen above on the left and below on the right."
    places = [f"{'above' if v == 'upper' else 'below'} on the {h}" for v, h in map(_split, zones)]
    return f"{'Abnormality' if len(zones) == 1 else 'Abnormalities'} seen {_join_and(places)}."


def _held_half_side(zones, rng):  # "Please delineate: upper half, left side; lower half, right side."
    return "Please delineate: " + "; ".join(f"{v} half, {h} side" for v, h in map(_split, zones)) + "."


def _held_hand(zones, rng):  # "Report: 2 suspicious spots, in the top left-hand and bottom right-hand parts."
    n = len(zones)
    places = [f"{_zone_phrase(v, 'topbottom')} {h}-hand" for v, h in map(_split, zones)]
    return f"Report: {n} suspicious {_plural(n, 'spot')}, in the {_join_and(places)} {_plural(n, 'part')}."


WORDINGS = {
    "training": _TEMPLATES,
    "validation": (_val_reversed, _val_high_low, _val_corner),
    "held-out": (_held_above_below, _held_half_side, _held_hand),
}


def format_report(target_zones: list[str], rng: np.random.Generator, wording: str = "training") -> str:
    """Report text naming ``target_zones`` (1 to 3 entries of ZONES), phrasing and order drawn from ``rng``.
    ``wording``: a key of WORDINGS; only "training" wordings are ever used to train."""
    if not 1 <= len(target_zones) <= 3 or any(z not in ZONES for z in target_zones):
        raise ValueError(f"target_zones must be 1 to 3 of {ZONES}, got {target_zones}")
    if wording not in WORDINGS:
        raise ValueError(f"unknown wording {wording!r}; known: {', '.join(WORDINGS)}")
    zones = [target_zones[i] for i in rng.permutation(len(target_zones))]
    templates = WORDINGS[wording]
    template = templates[int(rng.integers(len(templates)))]
    if wording == "training":
        return template(zones, _NOUNS[int(rng.integers(len(_NOUNS)))])
    return template(zones, rng)


def demo_mirror_section(three_d: bool) -> dict:
    """The prompt file's ``"mirror"`` section: in 2D the English preset (rows: upper/lower, top/bottom; columns:
    left/right); in 3D the same words on y and x, and z listed without words (no report names a z direction, so a
    z flip changes no report)."""
    if not three_d:
        return {"preset": "2d"}
    return {"axes": {"0": [], "1": [["upper", "lower"], ["top", "bottom"]], "2": [["left", "right"]]}}


def demo_mirror_map(three_d: bool) -> MirrorMap:
    return mirror_map_from_json(demo_mirror_section(three_d), "the demo's mirror section", 3 if three_d else 2)
