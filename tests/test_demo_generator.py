import hashlib
import os
import re

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from nnunetv2_tevia.demo.generator import generate_demo_dataset, load_metadata, render_mask
from nnunetv2_tevia.demo.report_templates import ZONES, format_report
from nnunetv2_tevia.demo.report_variants import swapped_report, write_swapped_variant
from nnunetv2_tevia.demo.report import _display_slice, dice, dice_table, write_overlays
from nnunetv2_tevia.prompts.prompt_file import load_prompts

_COUNT = {"one": 1, "two": 2, "three": 3, "1": 1, "2": 2, "3": 3}


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(path))


def _zones_in(text):
    """Zones a report names, whatever the phrasing ("top left", "upper-left", ...)."""
    t = text.lower().replace("-", " ").replace("top", "upper").replace("bottom", "lower")
    return [f"{v} {h}" for v, h in re.findall(r"\b(upper|lower) (left|right)\b", t)]


def _count_in(text):
    words = [_COUNT[w] for w in re.findall(r"\b(one|two|three|1|2|3)\b", text.lower())]
    return words[0] if words else None


def _tree_hashes(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _generate(tmp_path, sub, three_d, seed=0, num_train=6, num_test=3):
    folder = generate_demo_dataset(str(tmp_path / sub), dataset_id=990, num_train=num_train, num_test=num_test,
                                   three_d=three_d, seed=seed)
    write_swapped_variant(folder)
    return folder


@pytest.mark.parametrize("three_d", [False, True])
def test_same_seed_gives_identical_files_other_seed_differs(tmp_path, three_d):
    a = _tree_hashes(_generate(tmp_path, "a", three_d))
    b = _tree_hashes(_generate(tmp_path, "b", three_d))
    c = _tree_hashes(_generate(tmp_path, "c", three_d, seed=1))
    ending = ".nii.gz" if three_d else ".png"
    assert f"imagesTs/test_000_0000{ending}" in a and "labelsTs_swapped/test_000" + ending in a
    assert "tevia_prompts.json" in a and "demo_metadata.json" in a
    assert a == b
    assert set(a) == set(c)
    assert all(a[k] != c[k] for k in a if k.startswith("images"))
    assert a["tevia_prompts.json"] != c["tevia_prompts.json"]


def _lesion_contrast(image, lesion):
    """Mean intensity inside the lesion minus mean in a ring just outside it."""
    d = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(
        np.meshgrid(*[np.arange(s) for s in image.shape], indexing="ij"), lesion["center"], lesion["radii"])))
    return image[d <= 0.8].mean() - image[(d >= 1.4) & (d <= 2.0)].mean()


@pytest.mark.parametrize("three_d", [False, True])
def test_mask_holds_exactly_the_lesions_the_report_names(tmp_path, three_d):
    folder = _generate(tmp_path, "d", three_d, num_train=12, num_test=4)
    meta = load_metadata(folder)
    prompts = load_prompts(os.path.join(folder, "tevia_prompts.json"))
    ending = ".nii.gz" if three_d else ".png"
    size = 32 if three_d else 64
    assert set(prompts.cases) == set(meta["cases"]) and len(prompts.cases) == 16
    for case_id, case in meta["cases"].items():
        sub = "Tr" if case["split"] == "train" else "Ts"
        image = _read(os.path.join(folder, f"images{sub}", f"{case_id}_0000{ending}")).astype(np.float64)
        label = _read(os.path.join(folder, f"labels{sub}", case_id + ending))
        assert image.shape == (size,) * (3 if three_d else 2) and set(np.unique(label)) <= {0, 1}
        targets = [l["zone"] for l in case["lesions"] if l["target"]]
        text = prompts.cases[case_id]
        named = _zones_in(text)
        assert sorted(named) == sorted(targets), text
        assert _count_in(text) in (None, len(targets)), text
        assert 1 <= len(targets) <= 3
        _, n_components = ndimage.label(label)
        assert n_components == len(targets)
        # Each component sits in the zone the report names.
        half = size / 2
        for zone in named:
            v, h = (zone.split()[0] == "lower"), (zone.split()[1] == "right")
            quadrant = label[..., int(v * half):int((v + 1) * half), int(h * half):int((h + 1) * half)]
            assert quadrant.any(), (case_id, zone)
        # All four lesions, targets or not, are equally visible; the distractors are missing from the mask.
        assert len(case["lesions"]) == 4
        scale = 255.0 if not three_d else 1.0
        for lesion in case["lesions"]:
            assert _lesion_contrast(image / scale, lesion) > 0.2, (case_id, lesion["zone"])
            c = tuple(int(round(x)) for x in lesion["center"])
            assert label[c] == int(lesion["target"])
        assert np.array_equal(label, render_mask(image.shape, case["lesions"]))


def test_reports_vary_and_cover_every_count():
    rng = np.random.default_rng(0)
    texts = [format_report([ZONES[i] for i in sorted(rng.choice(4, n, replace=False))], rng)
             for n in (1, 2, 3) for _ in range(30)]
    assert len({re.sub(r"(upper|lower|top|bottom)[ -](left|right)", "Z", t) for t in texts}) >= 10
    for t in texts:
        assert 1 <= len(_zones_in(t)) <= 3
    with pytest.raises(ValueError):
        format_report(list(ZONES), rng)


def _flip_zone(zone: str, vertical: bool, horizontal: bool) -> str:
    v, h = zone.split()
    v = {"upper": "lower", "lower": "upper"}[v] if vertical else v
    h = {"left": "right", "right": "left"}[h] if horizontal else h
    return f"{v} {h}"


@pytest.mark.parametrize("three_d", [False, True])
def test_a_mirrored_report_names_exactly_the_mirrored_targets(three_d):
    """The demo's word map turns every report into the report of the flipped image, in every template: the
    mirrored text equals the report written for the flipped zones with the same phrasing draws."""
    from nnunetv2_tevia.demo.report_templates import demo_mirror_map
    from nnunetv2_tevia.prompts.mirror_words import mirror_text

    m = demo_mirror_map(three_d)
    vertical, horizontal = (1, 2) if three_d else (0, 1)
    combos = [(), (vertical,), (horizontal,), (vertical, horizontal)] + ([(0,), (0, 1, 2)] if three_d else [])
    pick = np.random.default_rng(1)
    for k in range(60):
        targets = [ZONES[i] for i in sorted(pick.choice(4, int(pick.integers(1, 4)), replace=False))]
        report = format_report(targets, np.random.default_rng(k))
        for combo in combos:
            flipped = [_flip_zone(z, vertical in combo, horizontal in combo) for z in targets]
            assert mirror_text(report, combo, m) == format_report(flipped, np.random.default_rng(k)), (report, combo)


def test_demo_prompt_files_carry_the_word_map(tmp_path):
    from nnunetv2_tevia.demo.report_templates import demo_mirror_map

    folder = generate_demo_dataset(str(tmp_path), dataset_id=990, num_train=5, num_test=2)
    write_swapped_variant(folder)
    assert load_prompts(os.path.join(folder, "tevia_prompts.json")).mirror == demo_mirror_map(False)
    assert load_prompts(os.path.join(folder, "tevia_prompts_swapped.json")).mirror == demo_mirror_map(False)


def test_counts_of_targets_vary(tmp_path):
    folder = generate_demo_dataset(str(tmp_path), dataset_id=990, num_train=40, num_test=0)
    counts = {sum(l["target"] for l in c["lesions"]) for c in load_metadata(folder)["cases"].values()}
    assert counts == {1, 2, 3}


@pytest.mark.parametrize("three_d", [False, True])
def test_swapped_variant_names_and_labels_the_distractors(tmp_path, three_d):
    folder = _generate(tmp_path, "s", three_d, num_train=2, num_test=4)
    meta = load_metadata(folder)
    swapped = load_prompts(os.path.join(folder, "tevia_prompts_swapped.json"))
    ending = ".nii.gz" if three_d else ".png"
    assert sorted(swapped.cases) == [f"test_{i:03d}" for i in range(4)]
    for case_id, text in swapped.cases.items():
        lesions = meta["cases"][case_id]["lesions"]
        distractors = sorted(l["zone"] for l in lesions if not l["target"])
        assert sorted(_zones_in(text)) == distractors
        assert swapped_report(meta["cases"][case_id])[0] == text
        original = _read(os.path.join(folder, "labelsTs", case_id + ending))
        swapped_label = _read(os.path.join(folder, "labelsTs_swapped", case_id + ending))
        assert not np.logical_and(original, swapped_label).any()
        assert np.array_equal(original | swapped_label, render_mask(original.shape, lesions, list(ZONES)))
        assert ndimage.label(swapped_label)[1] == len(distractors)


def test_refuses_to_overwrite_or_reuse_an_id(tmp_path):
    generate_demo_dataset(str(tmp_path), dataset_id=990, num_train=1, num_test=0)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_demo_dataset(str(tmp_path), dataset_id=990, num_train=1, num_test=0)
    generate_demo_dataset(str(tmp_path), dataset_id=990, num_train=2, num_test=0, overwrite=True)
    assert len(os.listdir(tmp_path / "Dataset990_TeViADemo" / "imagesTr")) == 2
    with pytest.raises(FileExistsError, match="dataset id"):
        generate_demo_dataset(str(tmp_path), dataset_id=990, name="Other", num_train=1, num_test=0)


def _write_png(path, array):
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def test_dice_table_exact_values(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    a_pred, a_gt = np.zeros((4, 4)), np.zeros((4, 4))
    a_pred[0, :2] = 1  # two pixels
    a_gt[0, 1:3] = 1  # two pixels, one shared -> 2*1/(2+2)
    b = np.zeros((4, 4))  # both empty -> 1.0
    c_pred = np.zeros((4, 4))
    c_pred[3, 3] = 1  # false positive on empty ground truth -> 0.0
    d_pred, d_gt = np.zeros((4, 4)), np.zeros((4, 4))
    d_pred[1, :3] = 1
    d_gt[1, :] = 1
    d_gt[2, 0] = 2  # other label is ignored: 2*3/(3+4)
    for case, p, g in (("a", a_pred, a_gt), ("b", b, b), ("c", c_pred, b), ("d", d_pred, d_gt)):
        _write_png(pred / f"{case}.png", p)
        _write_png(gt / f"{case}.png", g)
    table = dice_table(str(pred), str(gt), ".png")
    assert table["n"] == 4
    assert table["per_case"] == {"a": 0.5, "b": 1.0, "c": 0.0, "d": 6 / 7}
    assert table["mean"] == pytest.approx((0.5 + 1.0 + 0.0 + 6 / 7) / 4)
    assert dice_table(str(pred), str(gt), ".png", label=2)["per_case"]["d"] == 0.0
    _write_png(pred / "e.png", b)
    with pytest.raises(FileNotFoundError, match="e.png"):
        dice_table(str(pred), str(gt), ".png")


def test_dice_table_3d_and_helper(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    p, g = np.zeros((3, 4, 5), np.uint8), np.zeros((3, 4, 5), np.uint8)
    p[1, 1, 1:4] = 1
    g[1, 1, 2:5] = 1
    sitk.WriteImage(sitk.GetImageFromArray(p), str(pred / "x.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(g), str(gt / "x.nii.gz"))
    assert dice_table(str(pred), str(gt), ".nii.gz")["per_case"] == {"x": 2 * 2 / 6}
    assert dice(np.zeros(3), np.zeros(3)) == 1.0


def test_display_slice_picks_the_slice_with_most_ground_truth():
    gt = np.zeros((5, 4, 4), np.uint8)
    gt[1, 0, 0] = 1
    gt[3, :2, :2] = 1
    assert _display_slice(gt, None, gt.shape) == 3
    assert _display_slice(None, gt, gt.shape) == 3
    assert _display_slice(np.zeros_like(gt), None, gt.shape) == 2
    assert _display_slice(gt[0], None, gt[0].shape) is None


@pytest.mark.parametrize("three_d", [False, True])
def test_overlays_written_for_predictions(tmp_path, three_d):
    folder = generate_demo_dataset(str(tmp_path / "raw"), dataset_id=990, num_train=1, num_test=3, three_d=three_d)
    prompts = load_prompts(os.path.join(folder, "tevia_prompts.json"))
    # The ground truth itself stands in for a prediction.
    written = write_overlays(os.path.join(folder, "imagesTs"), os.path.join(folder, "labelsTs"),
                             os.path.join(folder, "labelsTs"), prompts, str(tmp_path / "ov"), max_cases=2)
    assert [os.path.basename(p) for p in written] == ["test_000.png", "test_001.png"]
    for p in written:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 300
