"""The open_clip backend (``clip:`` specs): per-token features of a CLIP text tower."""
import os
import warnings
from typing import Optional

import torch

from nnunetv2_tevia.errors import EncoderError
from nnunetv2_tevia.text.encoders.base import TextEncoder, hub_commit, sha256_of_files

# The order open_clip looks for them in a local-dir: folder.
CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                     "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "model.safetensors",
                     "pytorch_model.bin", "pytorch_model.pth", "model.pth")
# Texts longer than this are still counted exactly enough to report truncation (reports are short).
_COUNT_CONTEXT = 512


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
            return hub_commit(name[len("hf-hub:"):], None, "open_clip_config.json")
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
