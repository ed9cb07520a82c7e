"""The text cache holds each report's mirrored variants when the prompt file has a "mirror" section (issue 13).

A file without the section gives the same manifest as before the feature; adding, changing or removing the
word map makes the cache stale, and embedding again computes only the new variant texts.
"""
import os

import pytest

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.prompts.mirror_words import DEFAULT_2D_MAP, MirrorMap, mirror_text
from nnunetv2_tevia.prompts.prompt_file import PromptFile, text_sha256
from nnunetv2_tevia.text.cache import TEXTS, dataset_cache_root
from nnunetv2_tevia.text.embed import embed_prompts
from nnunetv2_tevia.text.encoders import load_encoder
from tiny_text_models import make_tiny_bert

CASES = {
    "c1": "one infected area, lower right lung.",
    "c2": "one infected area, lower left lung.",    # c1 flipped along axis 1
    "c3": "no location named.",                     # no flip changes it
    "c4": "",                                       # no report: the no-report text, never flipped
}
DEFAULT = "no finding on the left."  # a no-report text with a side: still not flipped
NO_PARAPHRASE = {"variants": 0}  # these tests count the mirrored texts; paraphrases are tested in test_prompt_alternatives
# the manifest's keys before issue 13; a file without "mirror" must give exactly these
KEYS_BEFORE = {"format", "version", "encoder", "prompt_file", "prompt_file_sha256", "no_report_text",
               "no_report_sha256", "cases", "complete", "created", "updated", "truncation", "last_run", "variants"}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return load_encoder("hf:" + str(make_tiny_bert(tmp_path_factory.mktemp("m") / "bert", seed=0)), device="cpu")


@pytest.fixture
def root(tmp_path, monkeypatch):
    (tmp_path / "pre" / "Dataset905_Mirror").mkdir(parents=True)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    return dataset_cache_root(905)


def _embed(pf, root, encoder):
    return embed_prompts(pf, root, encoder, 16, batch_size=4, progress=False)


def test_without_a_mirror_section_the_manifest_is_unchanged(root, encoder):
    pf = PromptFile(path=None, default=DEFAULT, cases=dict(CASES), paraphrase=NO_PARAPHRASE)
    cache = _embed(pf, root, encoder)
    assert set(cache.manifest) == KEYS_BEFORE
    assert cache.manifest["truncation"]["distinct_texts"] == 4  # c1, c2, c3, no-report text
    assert len(os.listdir(os.path.join(cache.folder, TEXTS))) == 4
    assert cache.mirror_map is None and cache.mirror_flips("c1") == {}
    cache.check_up_to_date(pf)
    again = _embed(pf, root, encoder)
    assert again.manifest["last_run"]["computed_texts"] == 0


def test_variants_are_embedded_once_and_read_back(root, encoder):
    pf = PromptFile(path=None, default=DEFAULT, cases=dict(CASES), paraphrase=NO_PARAPHRASE, mirror=DEFAULT_2D_MAP)
    cache = _embed(pf, root, encoder)
    # c1 flipped along 1 is c2's report and the reverse: de-duplicated; "upper" variants are new texts
    variants = {mirror_text(CASES[c], combo, DEFAULT_2D_MAP) for c in ("c1", "c2")
                for combo in ((0,), (1,), (0, 1))}
    assert cache.manifest["truncation"]["distinct_texts"] == 4 + len(variants - set(CASES.values()))
    assert cache.manifest["mirror"]["map"] == {"preset": "2d"}
    assert cache.mirror_map.axes == DEFAULT_2D_MAP.axes
    assert cache.mirror_flips("c1")["1"] == text_sha256(CASES["c2"])
    assert set(cache.mirror_flips("c1")) == {"0", "1", "0+1"}
    assert cache.mirror_flips("c3") == {} and cache.mirror_flips("c4") == {}
    f_flipped, _ = cache.mirrored_features("c1", (1,))
    f_c2, _ = cache.features("c2")
    assert (f_flipped == f_c2).all()
    f_same, _ = cache.mirrored_features("c3", (0, 1))
    assert (f_same == cache.features("c3")[0]).all()
    cache.check_up_to_date(pf)


def test_changing_the_word_map_is_stale_and_reembeds_only_new_variants(root, encoder):
    plain = PromptFile(path=None, default=DEFAULT, cases=dict(CASES), paraphrase=NO_PARAPHRASE)
    cache = _embed(plain, root, encoder)
    with_map = PromptFile(path=None, default=DEFAULT, cases=dict(CASES), paraphrase=NO_PARAPHRASE, mirror=DEFAULT_2D_MAP)
    with pytest.raises(TextCacheError, match="mirror"):
        cache.check_up_to_date(with_map)
    cache = _embed(with_map, root, encoder)
    # the originals are reused and c1 <-> c2 along axis 1 exist already: only "upper right/left ..." are new
    assert cache.manifest["last_run"]["computed_texts"] == 2
    only_columns = MirrorMap.of({1: [("left", "right")]})
    changed = PromptFile(path=None, default=DEFAULT, cases=dict(CASES), paraphrase=NO_PARAPHRASE, mirror=only_columns)
    with pytest.raises(TextCacheError, match="word map changed"):
        cache.check_up_to_date(changed)
    cache = _embed(changed, root, encoder)
    assert cache.manifest["last_run"]["computed_texts"] == 0
    assert set(cache.mirror_flips("c1")) == {"1"}
    cache.check_up_to_date(changed)
    with pytest.raises(TextCacheError, match="removed"):
        cache.check_up_to_date(plain)
    cache = _embed(plain, root, encoder)
    assert "mirror" not in cache.manifest
