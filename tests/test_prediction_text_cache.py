"""Prediction reads texts from its cache without loading the encoder when every text is there.

The proof that the encoder is not loaded: the second call names an encoder folder that does not exist, which
``load_encoder`` would fail on. Whatever is missing, corrupt or from another encoder is embedded again.
"""
import json
import os

import numpy as np
import pytest

from nnunetv2_tevia.inference.case_texts import cached_features, embed_for_model
from nnunetv2_tevia.model.config import TeViAConfig
from nnunetv2_tevia.text.cache import MANIFEST, TEXTS
from nnunetv2_tevia.text.encoders import load_encoder
from tiny_text_models import make_tiny_bert

TEXTS_1 = {"a": "unilateral pulmonary infection, one infected area, lower right lung.",
           "b": "bilateral pulmonary infection, two infected areas.",
           "c": ""}  # empty: the no-report text of a prompt file without one, as embed_prompts files it
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
        np.testing.assert_array_equal(x[k][0], y[k][0])
        np.testing.assert_array_equal(x[k][1], y[k][1])


def test_complete_cache_needs_no_encoder(config, tmp_path):
    root = str(tmp_path / "cache")
    first = embed_for_model(TEXTS_1, config, root, progress=False)
    assert first["a"][0].shape == (MAX_TOKENS, config.text_dim) and first["a"][0].dtype == np.float16
    again = embed_for_model(TEXTS_1, config, root, encoder_spec=missing_encoder(tmp_path), progress=False)
    same(first, again)
    # a subset and a repeated text are found too
    sub = embed_for_model({"x": TEXTS_1["b"]}, config, root, encoder_spec=missing_encoder(tmp_path), progress=False)
    np.testing.assert_array_equal(sub["x"][0], first["b"][0])


def test_a_new_text_loads_the_encoder(config, tmp_path):
    root = str(tmp_path / "cache")
    embed_for_model(TEXTS_1, config, root, progress=False)
    new = dict(TEXTS_1, d="no finding.")
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
