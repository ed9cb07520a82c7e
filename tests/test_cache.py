import json
import os

import numpy as np
import pytest

from nnunetv2_tevia.errors import TextCacheError
from nnunetv2_tevia.prompts.prompt_file import PromptFile, text_sha256
from nnunetv2_tevia.text.cache import (ACTIVE, MANIFEST, TextCache, dataset_cache_root, load_active_cache,
                                       load_cache_for_record, record_mismatches)
from nnunetv2_tevia.text.embed import embed_prompts
from nnunetv2_tevia.text.encoders import load_encoder
from tiny_text_models import make_tiny_bert

DATASET = "Dataset901_Tiny"
CASES = {
    "c1": "unilateral pulmonary infection, one infected area, lower right lung.",
    "c2": "unilateral pulmonary infection, one infected area, lower right lung.",  # duplicate of c1
    "c3": "bilateral pulmonary infection, two infected areas, lower left lung and lower right lung.",
    "c4": "",  # no report yet: uses the no-report text
}
DEFAULT = "no finding."


class CountingEncoder:
    """Wraps a real encoder and counts the texts it is asked to encode."""

    def __init__(self, enc):
        self.enc, self.texts = enc, []

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def encode(self, texts, max_tokens, batch_size=64):
        self.texts.extend(texts)
        return self.enc.encode(texts, max_tokens, batch_size=batch_size)


@pytest.fixture(scope="module")
def bert_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    return make_tiny_bert(base / "bert-a", seed=0), make_tiny_bert(base / "bert-b", seed=1)


@pytest.fixture
def env(tmp_path, monkeypatch):
    pre = tmp_path / "preprocessed"
    (pre / DATASET).mkdir(parents=True)
    monkeypatch.setenv("nnUNet_preprocessed", str(pre))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    return dataset_cache_root(901)


def embed(pf, root, enc, max_tokens=16):
    counting = CountingEncoder(enc)
    cache = embed_prompts(pf, root, counting, max_tokens, batch_size=2, progress=False)
    return cache, counting.texts


def test_embed_and_read_back(env, bert_dirs):
    enc = load_encoder(f"hf:{bert_dirs[0]}")
    pf = PromptFile(path=None, cases=dict(CASES), default=DEFAULT, paraphrase={"variants": 0})
    cache, computed = embed(pf, env, enc)
    # Duplicates are embedded once; the no-report text is always embedded.
    assert sorted(computed) == sorted({CASES["c1"], CASES["c3"], DEFAULT})
    assert len(os.listdir(os.path.join(cache.folder, "texts"))) == 3
    assert cache.case_ids == ["c1", "c2", "c3"] and not cache.has_case("c4")
    assert cache.manifest["cases"]["c1"] == text_sha256(CASES["c1"])

    active = load_active_cache(901)
    assert active.folder == cache.folder and active.complete
    assert active.encoder_record() == {"encoder_spec": f"hf:{bert_dirs[0]}", "clip_pretrained": None,
                                       "encoder_id": "hf:bert-a", "revision": enc.revision, "max_tokens": 16,
                                       "dim": 32}
    f1, m1 = active.features("c1")
    f2, _ = active.features("c2")
    assert f1.shape == (16, 32) and f1.dtype == np.float16 and m1.dtype == bool
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(f1, enc.encode([CASES["c1"]], 16).features[0])
    nf, nm = active.no_report_features()
    assert active.no_report_text == DEFAULT and nm.sum() == 5  # [CLS] no finding . [SEP]
    # c3 (18 tokens) is truncated at 16 and reported; c1 (14 tokens) is not.
    trunc = active.manifest["truncation"]
    assert trunc["truncated_texts"] == 1 and trunc["truncated_cases"] == 1 and trunc["longest_tokens"] == 18


def test_edited_text_is_stale_and_only_it_is_recomputed(env, bert_dirs):
    enc = load_encoder(f"hf:{bert_dirs[0]}")
    pf = PromptFile(path=None, cases=dict(CASES), default=DEFAULT, paraphrase={"variants": 0})
    cache, _ = embed(pf, env, enc)
    cache.check_up_to_date(pf)

    pf.cases["c3"] = "bilateral pulmonary infection, two infected areas, upper left lung and lower right lung."
    assert cache.stale_cases(pf) == ["c3"]
    with pytest.raises(TextCacheError, match=r"stale.*'c3'.*nnUNetv2_tevia_prompts embed -d Dataset901_Tiny"):
        cache.check_up_to_date(pf)

    cache2, computed = embed(pf, env, enc)
    assert computed == [pf.cases["c3"]]
    cache2.check_up_to_date(pf)
    assert cache2.manifest["last_run"] == {"computed_texts": 1, "reused_texts": 2, "cases": 3,
                                           "seconds": cache2.manifest["last_run"]["seconds"]}

    # A changed no-report text is stale too, and nothing else is recomputed.
    pf.default = "no infection."
    assert cache2.no_report_stale(pf) and cache2.stale_cases(pf) == []
    with pytest.raises(TextCacheError, match="no-report text changed"):
        cache2.check_up_to_date(pf)
    assert embed(pf, env, enc)[1] == ["no infection."]
    # A nothing-to-do re-run computes nothing.
    assert embed(pf, env, enc)[1] == []


def test_other_encoder_gets_own_folder_and_becomes_active(env, bert_dirs):
    pf = PromptFile(path=None, cases=dict(CASES), default=DEFAULT, paraphrase={"variants": 0})
    enc_a, enc_b = load_encoder(f"hf:{bert_dirs[0]}"), load_encoder(f"hf:{bert_dirs[1]}")
    cache_a, _ = embed(pf, env, enc_a)
    cache_a20, _ = embed(pf, env, enc_a, max_tokens=20)
    cache_b, computed = embed(pf, env, enc_b)
    assert len({cache_a.folder, cache_a20.folder, cache_b.folder}) == 3
    assert len(computed) == 3  # nothing of encoder a is reused by encoder b
    assert load_active_cache(901).folder == cache_b.folder

    # the one rule by which the trainer, the predictor and the text lookup compare encoder records
    assert record_mismatches(cache_b.encoder_record(), cache_a.encoder_record())[:2] == ["encoder_id", "revision"]
    assert record_mismatches(cache_a.encoder_record(), cache_a20.encoder_record()) == ["max_tokens"]
    assert record_mismatches(cache_b.encoder_record(), cache_b.encoder_record()) == []
    # The same weights in a folder with another name (another machine) are the same encoder.
    assert record_mismatches(cache_a.encoder_record(),
                             {**cache_a.encoder_record(), "encoder_id": "hf:bert-a-copy", "encoder_spec": "x"}) == []
    # The predictor finds the cache its checkpoint was trained with, even when another one is active.
    assert load_cache_for_record(901, cache_a.encoder_record()).folder == cache_a.folder

    os.remove(os.path.join(env, ACTIVE))
    with pytest.raises(TextCacheError, match=r"several text caches .* none.*with the -e you want"):
        load_active_cache(901)


def test_single_cache_without_active_file_is_used(env, bert_dirs):
    cache, _ = embed(PromptFile(path=None, cases=dict(CASES), paraphrase={"variants": 0}), env, load_encoder(f"hf:{bert_dirs[0]}"))
    os.remove(os.path.join(env, ACTIVE))
    assert load_active_cache(DATASET).folder == cache.folder
    assert cache.no_report_text == "" and cache.no_report_features()[1].sum() == 2  # [CLS] [SEP]


def test_missing_cache_and_missing_case(env, bert_dirs):
    with pytest.raises(TextCacheError, match=r"no text cache for Dataset901_Tiny.*nnUNetv2_tevia_prompts embed -d 901"):
        load_active_cache(901)
    cache, _ = embed(PromptFile(path=None, cases=dict(CASES), paraphrase={"variants": 0}), env, load_encoder(f"hf:{bert_dirs[0]}"))
    with pytest.raises(TextCacheError, match=r"case 'c9' has no cached text in .*manifest.json.*embed -d Dataset901"):
        cache.features("c9")


def test_corrupt_npz_is_named_and_repaired(env, bert_dirs):
    enc = load_encoder(f"hf:{bert_dirs[0]}")
    pf = PromptFile(path=None, cases=dict(CASES), default=DEFAULT, paraphrase={"variants": 0})
    cache, _ = embed(pf, env, enc)
    path = cache.text_path(text_sha256(CASES["c3"]))
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(TextCacheError) as e:
        load_active_cache(901).features("c3")
    assert path in str(e.value) and "corrupt" in str(e.value) and "embed -d Dataset901_Tiny" in str(e.value)
    cache.features("c1")  # the other texts still load

    repaired, computed = embed(pf, env, enc)
    assert computed == [CASES["c3"]]
    assert repaired.features("c3")[0].shape == (16, 32)


@pytest.mark.parametrize("damage", ["truncate", "wrong_format"])
def test_bad_manifest_is_named_and_repaired(env, bert_dirs, damage):
    enc = load_encoder(f"hf:{bert_dirs[0]}")
    pf = PromptFile(path=None, cases=dict(CASES), default=DEFAULT, paraphrase={"variants": 0})
    cache, _ = embed(pf, env, enc)
    path = os.path.join(cache.folder, MANIFEST)
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:
        doc = json.load(open(path))
        del doc["encoder"]["revision"]
        json.dump(doc, open(path, "w"))
    with pytest.raises(TextCacheError) as e:
        load_active_cache(901)
    assert path in str(e.value) and "embed -d Dataset901_Tiny" in str(e.value)
    _, computed = embed(pf, env, enc)
    assert computed == []  # the texts were intact; only the manifest is rewritten
    assert load_active_cache(901).features("c2")[0].shape == (16, 32)


def test_interrupted_cache_is_not_used(env, bert_dirs):
    cache, _ = embed(PromptFile(path=None, cases=dict(CASES), paraphrase={"variants": 0}), env, load_encoder(f"hf:{bert_dirs[0]}"))
    path = os.path.join(cache.folder, MANIFEST)
    doc = json.load(open(path))
    doc["complete"] = False
    json.dump(doc, open(path, "w"))
    with pytest.raises(TextCacheError, match="interrupted.*re-run"):
        load_active_cache(901)
    assert TextCache.open(cache.folder).features("c1")[0].shape == (16, 32)


def test_orphaned_checkpoint_temp_files_are_removed(tmp_path):
    """A kill -9 during a checkpoint write leaves <file>.tmp-<pid>; the next save removes it, but never the
    temporary file of a process that still runs."""
    import os

    from nnunetv2_tevia.io_utils import remove_orphaned_temp_files

    target = tmp_path / "checkpoint_latest.pth"
    dead = tmp_path / "checkpoint_latest.pth.tmp-99999999"
    alive = tmp_path / f"checkpoint_latest.pth.tmp-{os.getpid()}"
    other = tmp_path / "checkpoint_best.pth.tmp-99999999"
    for f in (dead, alive, other):
        f.write_bytes(b"x")
    assert remove_orphaned_temp_files(str(target)) == [str(dead)]
    assert not dead.exists() and alive.exists() and other.exists()
