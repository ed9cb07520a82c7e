import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from nnunetv2_tevia.errors import EncoderError
from nnunetv2_tevia.text.encoders import DEFAULT_ENCODER_ID, load_encoder, parse_encoder_spec
from tiny_text_models import make_tiny_bert, register_tiny_clip

SHORT = "lower left lung."
LONG = "bilateral pulmonary infection, six infected areas, upper middle lower left lung and upper middle lower right lung."


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.mark.parametrize("spec, expected", [
    ("default", ("default", "")),
    ("hf:microsoft/BiomedVLP-CXR-BERT-specialized", ("hf", "microsoft/BiomedVLP-CXR-BERT-specialized")),
    ("hf:/models/x", ("hf", "/models/x")),
    # open_clip names carry their own ':'; only the first one separates the backend.
    ("clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
     ("clip", "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")),
])
def test_parse_encoder_spec(spec, expected):
    assert parse_encoder_spec(spec) == expected


@pytest.mark.parametrize("spec", ["bert:foo", "hf:", "", "minilm", "default:x"])
def test_parse_encoder_spec_rejects(spec):
    with pytest.raises(EncoderError, match="-e "):
        parse_encoder_spec(spec)


def test_hf_local_folder(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    enc = load_encoder(f"hf:{tiny_bert}")
    assert enc.dim == 32 and enc.encoder_id == "hf:tiny-bert" and enc.spec == f"hf:{tiny_bert}"
    with open(os.path.join(tiny_bert, "model.safetensors"), "rb") as f:
        assert enc.revision == "sha256:" + hashlib.sha256(f.read()).hexdigest()
    assert load_encoder(f"hf:{tiny_bert}").revision == enc.revision

    out = enc.encode([SHORT, LONG], max_tokens=8)
    assert out.features.shape == (2, 8, 32) and out.features.dtype == np.float16
    assert out.mask.dtype == bool
    # [CLS] lower left lung . [SEP] = 6 tokens; the long text is cut at 8 and its real length is reported.
    assert out.mask.sum(1).tolist() == [6, 8]
    assert out.n_tokens[0] == 6 and out.n_tokens[1] > 8
    assert enc.count_tokens([SHORT, LONG]) == out.n_tokens.tolist()
    assert not out.features[0, 6:].any()

    # The features are the model's last hidden state (compared with plain transformers).
    tok, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    ids = tok([SHORT], padding="max_length", max_length=8, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ref = model(**ids).last_hidden_state[0, :6].numpy()
    np.testing.assert_allclose(out.features[0, :6].astype(np.float32), ref, atol=5e-3)


def test_hf_hub_name_revision_is_commit(tmp_path):
    """A hub name loads from the local hub cache when offline and records the snapshot's commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tevia-test--tiny-bert"
    make_tiny_bert(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    # A child process: huggingface_hub reads the cache location once, at import.
    code = ("from nnunetv2_tevia.text.encoders import load_encoder; "
            "e = load_encoder('hf:tevia-test/tiny-bert'); print(e.encoder_id, e.revision, e.dim)")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["hf:tevia-test/tiny-bert", commit, "32"]


def test_hf_missing_model_fails_fast_with_download_hint():
    t0 = time.perf_counter()
    with pytest.raises(EncoderError) as e:
        load_encoder("hf:no-such-org/no-such-model")
    assert time.perf_counter() - t0 < 10
    msg = str(e.value)
    assert "\n" not in msg and "hf download no-such-org/no-such-model --local-dir" in msg and "-e hf:" in msg


def test_hf_remote_code_needs_the_flag(tmp_path):
    folder = make_tiny_bert(tmp_path / "custom")
    marker = tmp_path / "code_ran"
    cfg = json.loads((tmp_path / "custom" / "config.json").read_text())
    cfg.update(model_type="tevia-custom", auto_map={"AutoConfig": "modeling_custom.CustomConfig",
                                                    "AutoModel": "modeling_custom.CustomModel"})
    (tmp_path / "custom" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "custom" / "modeling_custom.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import BertConfig, BertModel\n"
        "class CustomConfig(BertConfig):\n    model_type = 'tevia-custom'\n"
        "class CustomModel(BertModel):\n    config_class = CustomConfig\n")
    with pytest.raises(EncoderError, match="--trust-remote-code"):
        load_encoder(f"hf:{folder}")
    assert not marker.exists()  # refused before any shipped code ran
    enc = load_encoder(f"hf:{folder}", trust_remote_code=True)
    assert marker.exists() and type(enc.model).__name__ == "CustomModel"
    assert enc.encode([SHORT], 8).features.shape == (1, 8, 32)


def test_hf_missing_folder(tmp_path):
    with pytest.raises(EncoderError, match="does not exist"):
        load_encoder(f"hf:{tmp_path}/nothing/here")


def test_default_encoder_offline():
    enc = load_encoder("default", device="cpu")
    assert enc.dim == 384 and enc.encoder_id == DEFAULT_ENCODER_ID
    assert enc.revision.startswith("0.") and "+sha256:" in enc.revision
    a = enc.encode([SHORT, LONG, SHORT], max_tokens=24)
    assert a.features.shape == (3, 24, 384)
    np.testing.assert_array_equal(a.features[0], a.features[2])
    assert not np.allclose(a.features[0, 1], a.features[1, 1])
    assert a.n_tokens[1] == a.mask[1].sum() < 24


def _clip_reference(enc, texts):
    """open_clip's own pooled, projected text features (float32)."""
    with torch.no_grad():
        return enc.model.encode_text(enc.tokenizer(texts)).numpy()


def test_clip_text_transformer(tmp_path):
    name = register_tiny_clip(tmp_path / "cfg")
    enc = load_encoder(f"clip:{name}")
    assert enc.dim == 32 and enc.encoder_id == f"clip:{name}" and enc.revision == "random-init-seed0"
    out = enc.encode([SHORT, LONG], max_tokens=16)
    assert out.features.shape == (2, 16, 32)
    ids = enc.tokenizer([SHORT], context_length=16)[0]
    n_short = int((ids != 0).sum())  # start, words, end-of-text
    assert out.mask[0].sum() == n_short and out.mask[0, :n_short].all() and out.n_tokens[0] == n_short
    assert out.mask[1].all() and out.n_tokens[1] > 16

    # Token features are taken after ln_final and before pooling: projecting the end-of-text token
    # reproduces open_clip's encode_text (the causal mask makes cutting to 16 tokens exact).
    proj = enc.model.text_projection.detach().numpy()
    pooled = out.features[0, n_short - 1].astype(np.float32) @ proj
    np.testing.assert_allclose(pooled, _clip_reference(enc, [SHORT])[0], atol=2e-2)
    # Random weights are seeded, so the same spec gives the same features.
    np.testing.assert_array_equal(load_encoder(f"clip:{name}").encode([SHORT], 16).features, out.features[:1])


def test_clip_local_dir_loads_saved_weights(tmp_path):
    """An open_clip model saved as a local-dir: folder (how hub models are used offline)."""
    import open_clip

    name = register_tiny_clip(tmp_path / "cfg")
    trained = load_encoder(f"clip:{name}")
    # Make the weights differ from the seeded random ones, so loading them is what is tested.
    model = open_clip.create_model(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    folder = tmp_path / "my-clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": open_clip.get_model_config(name)}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")

    enc = load_encoder(f"clip:local-dir:{folder}")
    assert enc.encoder_id == "clip:local-dir:my-clip"
    assert enc.revision == "sha256:" + hashlib.sha256((folder / "open_clip_pytorch_model.bin").read_bytes()).hexdigest()
    ids = enc.tokenizer([SHORT])
    n = int((ids != 0).sum())
    with torch.no_grad():
        ref = model.encode_text(ids)[0].numpy()
    pooled = enc.encode([SHORT], 16).features[0, n - 1].astype(np.float32) @ model.text_projection.detach().numpy()
    np.testing.assert_allclose(pooled, ref, atol=3e-2)
    assert not np.allclose(enc.encode([SHORT], 16).features, trained.encode([SHORT], 16).features, atol=1e-2)


def test_clip_hf_text_tower(tmp_path, tiny_bert):
    from open_clip.hf_model import HFTextEncoder
    from transformers import AutoModel

    name = register_tiny_clip(tmp_path / "cfg", name="tevia-tiny-biomedclip", hf_text_folder=tiny_bert)
    enc = load_encoder(f"clip:{name}")
    assert isinstance(enc.model, HFTextEncoder) and enc.dim == 32
    out = enc.encode([SHORT, LONG], max_tokens=8)
    assert out.mask.sum(1).tolist() == [6, 8] and out.n_tokens[1] > 8
    model = AutoModel.from_pretrained(tiny_bert).eval()
    ids = enc.tokenizer([SHORT], context_length=8)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[0, :6].numpy()
    np.testing.assert_allclose(out.features[0, :6].astype(np.float32), ref, atol=5e-3)


def test_clip_missing_weights_file(tmp_path):
    name = register_tiny_clip(tmp_path / "cfg")
    with pytest.raises(EncoderError, match="does not exist"):
        load_encoder(f"clip:{name}", clip_pretrained=str(tmp_path / "weights.pt"))
