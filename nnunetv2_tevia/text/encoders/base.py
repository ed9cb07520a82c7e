"""What every text encoder shares: the spec string, revision hashing, the device, and the encode loop."""
import hashlib
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from nnunetv2_tevia.errors import EncoderError

BACKENDS = ("default", "hf", "clip")


@dataclass
class EncodedTexts:
    features: np.ndarray  # float16 [N, L, D]
    mask: np.ndarray  # bool [N, L], True on real tokens
    n_tokens: np.ndarray  # int64 [N], token count before truncation (special tokens included)


def parse_encoder_spec(spec: str) -> Tuple[str, str]:
    """``"default"`` -> ("default", ""); ``"hf:X"`` / ``"clip:X"`` -> (backend, X).

    Only the first ':' separates, because open_clip names may contain one (``hf-hub:org/name``).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise EncoderError("empty text encoder spec; use -e default, -e hf:<hub name or folder> or "
                           "-e clip:<open_clip model name>")
    spec = spec.strip()
    if spec == "default":
        return "default", ""
    backend, sep, name = spec.partition(":")
    if not sep or backend not in BACKENDS or backend == "default":
        raise EncoderError(f"unknown text encoder spec '{spec}': use -e default, -e hf:<hub name or folder> "
                           f"or -e clip:<open_clip model name>")
    if not name:
        raise EncoderError(f"text encoder spec '{spec}' names no model: write -e {backend}:<name>")
    return backend, name


def sha256_of_files(paths: Sequence[str], chunk: int = 1 << 20) -> str:
    """sha256 over the files' bytes, streamed so multi-GB weights never sit in memory."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                h.update(block)
    return h.hexdigest()


def hub_commit(name: str, config, filename: str = "config.json") -> str:
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return commit
    try:  # the snapshot folder of the hub cache is named after the commit
        from huggingface_hub import try_to_load_from_cache
        path = try_to_load_from_cache(name, filename)
        if isinstance(path, str):
            return os.path.basename(os.path.dirname(path))
    except Exception:
        pass
    return "unknown"


def _pick_device(device) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise EncoderError(f"unknown device '{device}': use auto, cpu or cuda") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EncoderError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return dev


class TextEncoder:
    """A frozen encoder. Subclasses implement ``_tokenize`` and ``_forward``."""

    spec: str
    clip_pretrained: Optional[str]
    encoder_id: str
    revision: str
    dim: int
    max_context: int  # longest token sequence the model accepts

    def __init__(self, device):
        self.device = _pick_device(device)

    def _tokenize(self, texts: List[str], max_tokens: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(input ids [N, max_tokens], mask bool [N, max_tokens])"""
        raise NotImplementedError

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-token features [N, max_tokens, dim]."""
        raise NotImplementedError

    def count_tokens(self, texts: Sequence[str]) -> List[int]:
        raise NotImplementedError

    def check_max_tokens(self, max_tokens: int) -> None:
        if max_tokens < 2 or max_tokens > self.max_context:
            raise EncoderError(f"max_tokens={max_tokens} is outside 2..{self.max_context} for encoder "
                               f"{self.encoder_id}; pass a --max-tokens in that range")

    def encode(self, texts: Sequence[str], max_tokens: int, batch_size: int = 64) -> EncodedTexts:
        texts = list(texts)
        self.check_max_tokens(max_tokens)
        n_tokens = np.asarray(self.count_tokens(texts), dtype=np.int64)
        features = np.zeros((len(texts), max_tokens, self.dim), np.float16)
        masks = np.zeros((len(texts), max_tokens), bool)
        # Batches of similar length, each padded only to its longest text: on a CPU the padding is
        # most of the work at 24 tokens. Real tokens never attend to padding, so their features
        # are the same as with padding to max_tokens.
        order = np.argsort(n_tokens, kind="stable")
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            length = int(min(max(n_tokens[idx].max(), 2), max_tokens))
            ids, mask = self._tokenize([texts[i] for i in idx], length)
            ids, mask = ids.to(self.device), mask.to(self.device)
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16,
                                                        enabled=self.device.type == "cuda"):
                out = self._forward(ids, mask)
            # Padding positions are zeroed so that the cache never depends on what a model
            # happens to compute for tokens that every consumer masks out anyway.
            out = out.float() * mask.unsqueeze(-1)
            features[idx, :length] = out.to(torch.float16).cpu().numpy()
            masks[idx, :length] = mask.cpu().numpy().astype(bool)
        return EncodedTexts(features, masks, n_tokens)

    def record(self) -> dict:
        return {"encoder_spec": self.spec, "clip_pretrained": self.clip_pretrained,
                "encoder_id": self.encoder_id, "revision": self.revision, "dim": self.dim}
