"""Several phrasings per case (issue 19): the prompt file's "alternatives" and "paraphrase" sections, checked by
``validate``, embedded once, read back by the training table, sampled in training and never at validation."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunetv2_tevia.errors import PromptFileError, TextCacheError
from nnunetv2_tevia.prompts.mirror_words import DEFAULT_2D_MAP, mirror_text
from nnunetv2_tevia.prompts.phrasings import case_texts
from nnunetv2_tevia.prompts.prompt_file import PromptFile, load_prompts, save_prompts, text_sha256
from nnunetv2_tevia.text.cache import dataset_cache_root
from nnunetv2_tevia.text.embed import embed_prompts
from nnunetv2_tevia.text.encoders import load_encoder
from nnunetv2_tevia.training.case_text import NO_REPORT_ROW, CaseTextTable, training_choices
from tiny_text_models import make_tiny_bert

SCHEMA = Path(__file__).resolve().parents[1] / "text_prompts" / "tevia_prompts.schema.json"
CASES = {"c1": "one infected area, lower right lung.", "c2": "one infected area, upper left lung.", "c3": ""}
ALTERNATIVES = {"c1": ["lower right lung infected.", "one infected area, lower right lung."]}  # 2nd = the report


def choices(cache, case_ids):
    return training_choices(cache, case_ids, text_dropout=0.2, case_text=True, dataset="Dataset906_Alt",
                            prompt_file="p.json")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return load_encoder("hf:" + str(make_tiny_bert(tmp_path_factory.mktemp("m") / "bert", seed=0)), device="cpu")


@pytest.fixture
def root(tmp_path, monkeypatch):
    (tmp_path / "pre" / "Dataset906_Alt").mkdir(parents=True)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    return dataset_cache_root(906)


def _pf(**kw):
    return PromptFile(path=None, default="no report.", cases=dict(CASES), **kw)


def test_round_trip_and_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    pf = _pf(alternatives=ALTERNATIVES, paraphrase={"preset": "en", "synonyms": [["lung", "lung field"]],
                                                      "variants": 2})
    path = save_prompts(pf, tmp_path / "p.json")
    back = load_prompts(path)
    assert back.alternatives == ALTERNATIVES and back.paraphrase == pf.paraphrase
    jsonschema.validate(json.loads(Path(path).read_text()), json.loads(SCHEMA.read_text()))
    # without the sections, the file is what it was before them
    plain = json.loads(Path(save_prompts(_pf(), tmp_path / "q.json")).read_text())
    assert "alternatives" not in plain and "paraphrase" not in plain


@pytest.mark.parametrize("alternatives, problem", [
    ({"c3": ["x"]}, "no report under \"cases\""), ({"c1": "x"}, "must be a list"), ({"c1": ["  "]}, "is empty"),
    ([], "not an object")])
def test_bad_alternatives_name_the_case_and_the_fix(tmp_path, alternatives, problem):
    path = tmp_path / "p.json"
    doc = {"format": "nnunetv2-tevia-prompts", "version": 1, "default": "no report.", "cases": CASES,
           "alternatives": alternatives}
    path.write_text(json.dumps(doc))
    with pytest.raises(PromptFileError, match=problem) as e:
        load_prompts(path)
    assert str(path) in str(e.value)


def test_case_texts_report_first_then_alternatives_then_paraphrases_without_repeats():
    pf = _pf(alternatives=ALTERNATIVES, paraphrase={"variants": 2})
    texts = case_texts(pf, "c1")
    assert texts[:2] == [CASES["c1"], ALTERNATIVES["c1"][0]] and len(texts) == len(set(texts))
    assert 3 <= len(texts) <= 2 + 2 * 2
    assert case_texts(pf, "c3") == [] and case_texts(_pf(paraphrase={"variants": 0}), "c2") == [CASES["c2"]]


def test_embedded_once_stale_on_change_and_read_back(root, encoder):
    pf = _pf(alternatives=ALTERNATIVES, paraphrase={"variants": 2})
    cache = embed_prompts(pf, root, encoder, 16, batch_size=4, progress=False)
    want = [text_sha256(t) for t in case_texts(pf, "c1")[1:]]
    assert cache.variant_shas("c1") == want and cache.variant_shas("c3") == []
    f, _ = cache.features_of_text(want[0], "x")
    assert f.shape == (16, encoder.dim)
    cache.check_up_to_date(pf)
    again = embed_prompts(pf, root, encoder, 16, batch_size=4, progress=False)
    assert again.manifest["last_run"]["computed_texts"] == 0
    changed = _pf(alternatives={"c1": ["another phrasing."]}, paraphrase={"variants": 2})
    with pytest.raises(TextCacheError, match="alternatives"):
        cache.check_up_to_date(changed)
    with pytest.raises(TextCacheError, match="paraphrase"):
        cache.check_up_to_date(_pf(alternatives=ALTERNATIVES, paraphrase={"variants": 3}))
    cache = embed_prompts(changed, root, encoder, 16, batch_size=4, progress=False)
    assert cache.manifest["last_run"]["computed_texts"] == 1  # only "another phrasing."
    cache.check_up_to_date(changed)


def test_training_samples_every_phrasing_and_validation_only_the_report(root, encoder):
    pf = _pf(alternatives=ALTERNATIVES, paraphrase={"variants": 2})
    cache = embed_prompts(pf, root, encoder, 16, batch_size=4, progress=False)
    table = CaseTextTable.from_cache(cache, choices(cache, ["c1", "c2", "c3"]))
    n_c1 = len(case_texts(pf, "c1"))
    assert len(table.variant_rows["c1"]) == n_c1 - 1 and table.rows["c3"] == NO_REPORT_ROW
    assert table.row_indices(["c1"] * 50) == [table.rows["c1"]] * 50
    rng = np.random.default_rng(0)
    drawn = table.row_indices(["c1"] * 400, rng=rng)
    assert set(drawn) == {table.rows["c1"], *table.variant_rows["c1"]}
    assert max(np.bincount(drawn)[list(set(drawn))]) < 400 / n_c1 * 1.5  # about uniform
    assert set(table.row_indices(["c3"] * 20, rng=rng)) == {NO_REPORT_ROW}
    # each row holds the features of its own text
    alt_row = table.variant_rows["c1"][0]
    assert torch.equal(table.features[alt_row], torch.from_numpy(cache.features_of_text(
        text_sha256(ALTERNATIVES["c1"][0]), "x")[0]))


def test_a_flipped_sample_gets_the_flipped_text_of_the_phrasing_it_drew(root, encoder):
    pf = _pf(alternatives=ALTERNATIVES, paraphrase={"variants": 0}, mirror=DEFAULT_2D_MAP)
    cache = embed_prompts(pf, root, encoder, 16, batch_size=4, progress=False)
    table = CaseTextTable.from_cache(cache, choices(cache, ["c1", "c2"]))
    table.add_mirror_rows(cache, (0, 1), (0, 1))
    alt = ALTERNATIVES["c1"][0]
    flipped_alt = mirror_text(alt, (1,), DEFAULT_2D_MAP)
    flipped_features = cache.features_of_text(text_sha256(flipped_alt), "x")[0]
    axes = torch.tensor([[False, True]] * 200)  # every sample flipped along the columns
    rows = table.row_indices(["c1"] * 200, axes, rng=np.random.default_rng(0))
    alt_row = table.variant_rows["c1"][0]
    flipped_rows = {table.flip_rows["c1"][(1,)], table.variant_flip_rows[alt_row][(1,)]}
    assert set(rows) == flipped_rows
    assert torch.equal(table.features[table.variant_flip_rows[alt_row][(1,)]], torch.from_numpy(flipped_features))


def test_import_takes_extra_columns_as_alternatives_and_validate_stats_show_them(tmp_path, monkeypatch, capsys):
    """Kvasir-SEG's table layout: Description plus shorter prompts p1 ... p9_0 (some empty, some equal)."""
    from nnunetv2_tevia.cli.prompts_cli import prompts_entry

    folder = tmp_path / "raw" / "Dataset907_KvasirToy"
    (folder / "imagesTr").mkdir(parents=True)
    for cid in ("a", "b"):
        (folder / "imagesTr" / f"{cid}_0000.png").touch()
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "R"}, "labels": {"background": 0,
                                                     "polyp": 1}, "numTraining": 2, "file_ending": ".png"}))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    table = tmp_path / "t.csv"
    table.write_text("Image,Description,p1,p2\n"
                     "a.jpg,one small polyp in the upper left,polyp,one small polyp\n"
                     "b.jpg,two polyps on the right,,two polyps on the right\n")
    prompts_entry(["import", "-d", "907", "--csv", str(table), "--alternative-columns", "p1", "p2"])
    out = capsys.readouterr().out
    assert "alternative phrasings added from p1, p2: 2" in out
    pf = load_prompts(folder / "tevia_prompts.json")
    assert pf.alternatives == {"a": ["polyp", "one small polyp"]}  # b's p1 is empty, its p2 equals the report
    # a second import adds nothing twice
    prompts_entry(["import", "-d", "907", "--csv", str(table), "--alternative-columns", "p1", "p2"])
    assert load_prompts(folder / "tevia_prompts.json").alternatives == pf.alternatives
    capsys.readouterr()
    prompts_entry(["validate", "-d", "907"])
    assert "alternatives (2 for 1 case(s))" in capsys.readouterr().out
