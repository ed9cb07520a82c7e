"""The text-guided decoder stage, for 2D and 3D maps alike.

Applied to the output of a low-resolution ``UNetDecoder`` stage (after its convolutions and normalisation):

    q = LN(x) * (1 + w * minmax(prototype)) + pos          every position asks "what does the report say here?"
    k = v = [null; TextProjection(report tokens)]          the report's slots, plus one learned "nothing" key
    x = x + gate * LN(CrossAttention(q, k, v))             (4 heads)

What each part is for (docs/architecture.md has the measurements behind every choice):
- Keys are the report's normalised slots with no positional term, so which slot a position attends to
  depends on what the report says, and the position enters through the queries (a sinusoid of where in the
  image it is: the patch's position in the image when the trainer and the predictor give it, else in the patch).
- The null key lets a position whose place the report does not mention attend to "nothing" instead of being
  forced by the softmax onto some slot.
- The residual is added after the decoder stage's InstanceNorm, where a per-case offset is not normalised away,
  with a gate that starts at 0.1 so that segmentation gradients reach the text from the first step.
- The prototype (the running mean of this stage's own foreground features) emphasises, in the queries, the
  channels that are typical of foreground; its weight w ramps from 0 to 1 after it is activated.

The keyword switches after ``sentence_key`` (``TeViAConfig``'s ablation switches) each undo one of these
departures from the reference code, for benchmarks/plain_loop_ablation.py; their defaults are the design above.
"""
from typing import List, Optional

import torch
from torch import nn

from nnunetv2_tevia.model.attention import Attention, weights_as_maps
from nnunetv2_tevia.model.positional_encoding import sinusoidal_encoding_nd
from nnunetv2_tevia.model.prototype import minmax_normalise
from nnunetv2_tevia.model.prototype_state import PrototypeState
from nnunetv2_tevia.model.text_projection import (AttentionPoolProjection, SentenceProjection, TextProjection,
                                                  TokenProjection)


def text_reader_module(text_reader: str, text_tokens: int, text_dim: int, slots: int, channels: int, heads: int,
                       norms: bool = True) -> nn.Module:
    """The projection of the report's tokens into keys named by ``TeViAConfig.text_reader``."""
    if text_reader == "conv":
        return TextProjection(text_tokens, text_dim, slots, channels, norms)
    if text_reader == "attention":
        return AttentionPoolProjection(text_dim, slots, channels, heads, norms)
    if text_reader == "tokens":
        return TokenProjection(text_dim, channels, norms)
    raise ValueError(f"unknown text reader {text_reader!r}")


class GuidedStage(PrototypeState):
    prototype_space = "stage"  # the prototype is a mean of this stage's own foreground features

    def __init__(self, channels: int, text_tokens: int, text_dim: int, slots: int, heads: int = 4,
                 initial_gate: float = 0.1, text_reader: str = "conv", sentence_key: bool = False, *,
                 text_norms: bool = True, null_key: bool = True, slot_position: bool = False,
                 self_attention: bool = False):
        super().__init__()
        self.channels = channels
        self.text_projection = text_reader_module(text_reader, text_tokens, text_dim, slots, channels, heads,
                                                  text_norms)
        self.sentence_projection = SentenceProjection(text_dim, channels, text_norms) if sentence_key else None
        self.null_key = nn.Parameter(torch.zeros(channels)) if null_key else None
        self.slot_position = slot_position
        if self_attention:  # the reference's self-attention over the map (1 head), without its prototype gating
            self.norm_self_in = nn.LayerNorm(channels)
            self.self_attention = Attention(channels, 1)
            self.norm_self_out = nn.LayerNorm(channels)
        else:
            self.self_attention = None
        self.norm_query = nn.LayerNorm(channels)
        self.cross_attention = Attention(channels, heads)
        self.norm_out = nn.LayerNorm(channels)
        self.gate = nn.Parameter(torch.tensor(float(initial_gate)))
        self.init_prototype(channels)
        self.last_spatial_shape: Optional[tuple] = None  # of the latest input, to reshape attention weights

    def project_text(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) tokens -> keys and values (B, 1 + L_s [+ 1], C): the null key, then the report's slots (and
        its sentence key)."""
        slots = self.text_projection(text, text_mask)
        if self.sentence_projection is not None:
            slots = torch.cat((slots, self.sentence_projection(text, text_mask)), 1)
        if self.null_key is None:
            return slots
        null = self.null_key.to(slots.dtype).expand(slots.shape[0], 1, -1)
        return torch.cat((null, slots), 1)

    def text_vector(self, projected_text: torch.Tensor) -> torch.Tensor:
        """The alignment loss's text vector: the mean of the report's keys (the null key left out)."""
        return projected_text[:, (self.null_key is not None):].mean(1)

    def forward(self, x: torch.Tensor, projected_text: torch.Tensor,
                patch_box: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, *S) feature map; projected_text: (B, 1 + L_s, C) from ``project_text``; patch_box: (B, ndim, 2)
        where the patch lies in the image (first and last voxel in [0, 1]), None when the patch is the image."""
        b, c, *spatial = x.shape
        self.last_spatial_shape = tuple(spatial)
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
        pos = sinusoidal_encoding_nd(spatial, c, device=x.device, box=patch_box).to(tokens.dtype)
        if self.self_attention is not None:
            v = self.norm_self_in(tokens)
            tokens = tokens + self.norm_self_out(self.self_attention(v + pos, v + pos, v))
        # branch-free so torch.compile needs no guard: the factor is 1 until the prototype is active
        emphasis = 1 + (self.prototype_weight * self.prototype_active) * minmax_normalise(self.prototype)
        q = self.norm_query(tokens) * emphasis.to(tokens.dtype) + pos
        keys = projected_text
        if self.slot_position:
            keys = keys + sinusoidal_encoding_nd((keys.shape[1],), c, device=x.device).to(keys.dtype)
        attended = self.cross_attention(q, keys, projected_text)
        tokens = tokens + self.gate * self.norm_out(attended)
        return tokens.transpose(1, 2).reshape(b, c, *spatial)

    def key_names(self, n_keys: int) -> List[str]:
        """File-name-safe names of the keys: the null key, then the report's slots (and its sentence key)."""
        null = self.null_key is not None
        n_slots = n_keys - null - (self.sentence_projection is not None)
        return ["null"] * null + [f"slot{i:02d}" for i in range(n_slots)] + \
            (["sentence"] if self.sentence_projection is not None else [])

    def cross_attention_maps(self) -> Optional[torch.Tensor]:
        """(B, keys, *S): how much each position attended to each key in the latest forward, if it ran with
        ``cross_attention.capture_weights`` set (None otherwise). At every position the keys sum to 1."""
        return weights_as_maps(self.cross_attention.last_weights, self.last_spatial_shape)
