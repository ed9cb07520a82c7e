"""QaTa-COV19 reports rewritten in other styles, with the same content, to test whether a model reads what a report
means or only the wording it was trained on.

    python benchmarks/qata_rewrites.py -d 501 -o qata_rewrites        # one prompt file per style, imagesTs cases

QaTa-COV19's (LViT / SGSeg) reports follow one grammar: ``bilateral pulmonary infection, two infected areas, lower
left lung and lower right lung.`` Each is parsed into (laterality, count, zones per side) and written again in:

- ``reordered``: the same facts in another order, "zone" for "lung", digits for numbers, side before level
  ("2 infected areas in the left lower zone and the right lower zone; bilateral pulmonary infection.",
  "4 infected areas in the left upper middle lower zone and the right lower zone; ...");
- ``terse``: a findings line ("bilateral infection; left: lower; right: lower.");
- ``radiology``: radiology style with other zone words ("Bilateral airspace opacities in the left lower zone and
  the right lower zone."; "mid" for middle, "opacities" / "consolidation");
- ``validation``: a fourth style kept for design choices only ("COVID-19 pneumonia in both lungs, involving the
  lower part of the left lung and the lower part of the right lung.").

The first three are the held-out styles that the benchmark tables report; none of their words ("zone", "mid",
"opacity", "airspace", "consolidation", digits) is in a paraphrase preset (tests/test_qata_rewrites.py checks it),
and they were fixed before any design change that they measure. Written with ``--extra-reports
NAME=OUT/<style>.json`` of ``benchmarks/run_benchmark.py``.
"""
import argparse
import os
import re
import sys
from typing import Dict, List, Tuple

STYLES = ("reordered", "terse", "radiology", "validation")
HELD_OUT_STYLES = ("reordered", "terse", "radiology")
LEVELS = ("upper", "middle", "lower")
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_REPORT = re.compile(r"^(unilateral|bilateral) pulmonary infection, (\w+) infected areas?, (.+)\.$")
_SIDE = re.compile(r"^((?:(?:upper|middle|lower) ?)+) (left|right) lung$")


class UnparsedReport(ValueError):
    pass


def parse(text: str) -> Tuple[str, int, Dict[str, List[str]]]:
    """(laterality, infected area count, {side: [levels]}) of a QaTa-COV19 report."""
    m = _REPORT.match(text.strip())
    if not m or m.group(2) not in _NUMBERS:
        raise UnparsedReport(f"not a QaTa-COV19 report: {text!r}")
    sides: Dict[str, List[str]] = {}
    for part in m.group(3).split(" and "):
        s = _SIDE.match(part.strip())
        if not s:
            raise UnparsedReport(f"cannot read the zones {part!r} of {text!r}")
        sides[s.group(2)] = s.group(1).split()
    return m.group(1), _NUMBERS[m.group(2)], sides


def _join(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def rewrite(text: str, style: str) -> str:
    laterality, count, sides = parse(text)
    plural = count != 1
    if style == "reordered":
        zones = [f"the {side} {' '.join(levels)} zone" for side, levels in sides.items()]
        return f"{count} infected area{'s' if plural else ''} in {_join(zones)}; {laterality} pulmonary infection."
    if style == "terse":
        return f"{laterality} infection; " + "; ".join(f"{side}: {', '.join(levels)}" for side, levels in
                                                      sides.items()) + "."
    if style == "radiology":
        word = {"upper": "upper", "middle": "mid", "lower": "lower"}
        finding = "airspace opacities" if plural else "airspace opacity"
        zones = [f"the {side} {_join([word[l] for l in levels])} zone{'s' if len(levels) > 1 else ''}"
                 for side, levels in sides.items()]
        return f"{laterality.capitalize()} {finding} in {_join(zones)}."
    if style == "validation":
        where = "both lungs" if laterality == "bilateral" else f"the {next(iter(sides))} lung"
        parts = [f"the {_join(levels)} part{'s' if len(levels) > 1 else ''} of the {side} lung"
                 for side, levels in sides.items()]
        return f"COVID-19 pneumonia in {where}, involving {_join(parts)}."
    raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")


def main(argv=None) -> None:
    from batchgenerators.utilities.file_and_folder_operations import join

    from nnunetv2_tevia.prompts.dataset_cases import dataset_folder
    from nnunetv2_tevia.prompts.prompt_file import PROMPTS_FILENAME, PromptFile, load_prompts, save_prompts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", required=True, help="[REQUIRED] Dataset name or id (converted QaTa-COV19).")
    parser.add_argument("-o", required=True, help="[REQUIRED] Output folder for <style>.json.")
    parser.add_argument("--split", default="imagesTs", help="[OPTIONAL] Cases of this raw folder. Default: imagesTs")
    args = parser.parse_args(argv)
    raw = dataset_folder(args.d)
    pf = load_prompts(join(raw, PROMPTS_FILENAME))
    cases = sorted({f.rsplit("_", 1)[0] for f in os.listdir(join(raw, args.split)) if not f.startswith(".")})
    os.makedirs(args.o, exist_ok=True)
    for style in STYLES:
        texts = {c: rewrite(pf.cases[c], style) for c in cases}
        path = save_prompts(PromptFile(path=None, cases=texts, default=pf.default, classes=pf.classes),
                            join(args.o, f"{style}.json"))
        print(f"{style}: {len(texts)} cases -> {path}")


if __name__ == "__main__":
    sys.exit(main())
