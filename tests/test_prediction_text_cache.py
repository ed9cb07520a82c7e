"""Prediction reads texts from its cache without loading the encoder when every text is there.

The proof that the encoder is not loaded: the second call names an encoder folder that does not exist, which
``load_encoder`` would fail on. Whatever is missing, corrupt or from another encoder is embedded again.
"""
import json
import os

import numpy as np
import pytest

from nnunetv2_tevia.inference.case_texts import cached_features, embed_for_model
from nnunetv2_tevia.prompts.text_choice import NO_REPORT, REPORT, TextChoice, has_report
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.text.cache import MANIFEST, TEXTS
from nnunetv2_tevia.text.encoders import load_encoder
from tiny_text_models import make_tiny_bert



def choices(texts):
    """Reports, and "" as a case's stand-in text (the no-report text of a prompt file without one)."""
    return {k: TextChoice(REPORT if has_report(t) else NO_REPORT, t) for k, t in texts.items()}


TEXTS_1 = choices({"a": "unilateral pulmonary infection, one infected area, lower right lung.",
                   "b": "bilateral pulmonary infection, two infected areas.",
                   "c": ""})
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    folder = make_tiny_bert(tmp_path_factory.mktemp("enc") / "bert")
    enc = load_encoder("hf:" + folder)
    return TeViAConfig(text_tokens=MAX_TOKENS, text_dim=enc.dim, encoder=dict(enc.record(), max_tokens=MAX_TOKENS))


def missing_encoder(tmp_path) -> str:
    return "hf:" + str(tmp_path / "no_such_encoder")


def same(x, y):
    assert x.keys() == y.keys()
    for k in x:
        np.testing.assert_array_equal(x[k].features, y[k].features)
        np.testing.assert_array_equal(x[k].mask, y[k].mask)


def test_complete_cache_needs_no_encoder(config, tmp_path):
    root = str(tmp_path / "cache")
    first = embed_for_model(TEXTS_1, config, root, progress=False)
    assert first["a"].features.shape == (1, MAX_TOKENS, config.text_dim)
    again = embed_for_model(TEXTS_1, config, root, encoder_spec=missing_encoder(tmp_path), progress=False)
    same(first, again)
    # a subset and a repeated text are found too
    sub = embed_for_model({"x": TEXTS_1["b"]}, config, root, encoder_spec=missing_encoder(tmp_path), progress=False)
    np.testing.assert_array_equal(sub["x"].features, first["b"].features)


def test_a_new_text_loads_the_encoder(config, tmp_path):
    root = str(tmp_path / "cache")
    embed_for_model(TEXTS_1, config, root, progress=False)
    new = dict(TEXTS_1, d=TextChoice(REPORT, "no finding."))
    assert cached_features(new, dict(config.encoder), root) is None
    with pytest.raises(Exception, match="no_such_encoder"):
        embed_for_model(new, config, root, encoder_spec=missing_encoder(tmp_path), progress=False)
    got = embed_for_model(new, config, root, progress=False)
    assert set(got) == set(new)


def test_corrupt_text_file_is_recomputed(config, tmp_path):
    root = str(tmp_path / "cache")
    first = embed_for_model(TEXTS_1, config, root, progress=False)
    (folder,) = [os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))]
    victim = sorted(os.listdir(os.path.join(folder, TEXTS)))[0]
    with open(os.path.join(folder, TEXTS, victim), "wb") as f:
        f.write(b"not an npz")
    assert cached_features(TEXTS_1, dict(config.encoder), root) is None
    repaired = embed_for_model(TEXTS_1, config, root, progress=False)
    same(first, repaired)
    same(first, cached_features(TEXTS_1, dict(config.encoder), root))


def test_cache_of_another_encoder_is_not_trusted(config, tmp_path):
    root = str(tmp_path / "cache")
    embed_for_model(TEXTS_1, config, root, progress=False)
    (folder,) = [os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))]
    path = os.path.join(folder, MANIFEST)
    with open(path) as f:
        manifest = json.load(f)
    manifest["encoder"]["revision"] = "sha256:" + "0" * 64  # same folder name, other weights
    with open(path, "w") as f:
        json.dump(manifest, f)
    assert cached_features(TEXTS_1, dict(config.encoder), root) is None
    with pytest.raises(Exception, match="no_such_encoder"):
        embed_for_model(TEXTS_1, config, root, encoder_spec=missing_encoder(tmp_path), progress=False)


def test_flipped_reports_are_filed_as_a_text_cache_files_them(config, tmp_path):
    """Prediction's flipped reports go into its cache under the case's own id, in the manifest's "mirror" section
    (flip_key), as training's cache holds them: no made-up case ids; read back alike with and without the encoder."""
    from nnunetv2_tevia.prompts.mirror_words import DEFAULT_2D_MAP, mirror_text
    from nnunetv2_tevia.text.cache import TextCache
    from nnunetv2_tevia.text.cache.mirror import flip_key

    root = str(tmp_path / "cache")
    texts = dict(TEXTS_1, d=TextChoice(NO_REPORT, ""))
    first = embed_for_model(texts, config, root, mirror_map=DEFAULT_2D_MAP, progress=False)
    (folder,) = [os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))]
    cache = TextCache.open(folder)
    assert sorted(cache.manifest["cases"]) == ["a", "b"]  # the reports; "c" and "d" read the no-report text
    assert set(cache.mirror_flips("a")) == {flip_key((0,)), flip_key((1,)), flip_key((0, 1))}
    assert set(first["a"].flipped) == {(0,), (1,), (0, 1)} and not first["c"].flipped and not first["d"].flipped
    for combo in first["a"].flipped:
        np.testing.assert_array_equal(first["a"].variant(combo)[0][0].numpy(),
                                      cache.mirrored_features("a", combo)[0].astype(np.float32))
    assert mirror_text(TEXTS_1["a"].text, (1,), DEFAULT_2D_MAP).endswith("lower left lung.")
    again = embed_for_model(texts, config, root, mirror_map=DEFAULT_2D_MAP, encoder_spec=missing_encoder(tmp_path),
                            progress=False)
    for k in texts:
        assert set(again[k].flipped or {}) == set(first[k].flipped or {})
        for combo in first[k].flipped or {}:
            assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(again[k].variant(combo),
                                                                           first[k].variant(combo)))
