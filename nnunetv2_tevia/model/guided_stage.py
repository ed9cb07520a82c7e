"""One text-guided decoder stage (TeViA section 2), for 2D and 3D maps alike.

Applied to the input of a low-resolution ``UNetDecoder`` stage, before its up-sampling and skip:
  1. self-attention (1 head) whose queries and keys are modulated by the min-max-scaled prototype;
  2. cross-attention (4 heads) from the map to the projected report, with a learnable scale (init 0.01).
The stage also owns its prototype buffers, so they travel with the weights into every checkpoint.
"""
import math
from typing import Optional

import torch
from torch import nn

from nnunetv2_tevia.model.attention import Attention
from nnunetv2_tevia.model.positional_encoding import sinusoidal_encoding_nd
from nnunetv2_tevia.model.prototype import minmax_normalise, momentum_update
from nnunetv2_tevia.model.text_projection import TextProjection


class GuidedStage(nn.Module):
    def __init__(self, channels: int, text_tokens: int, text_dim: int, slots: int,
                 self_attention_heads: int = 1, cross_attention_heads: int = 4, initial_scale: float = 0.01):
        super().__init__()
        self.channels = channels
        self.text_projection = TextProjection(text_tokens, text_dim, slots, channels)
        self.norm_self_in = nn.LayerNorm(channels)
        self.self_attention = Attention(channels, self_attention_heads)
        self.norm_self_out = nn.LayerNorm(channels)
        self.norm_cross_in = nn.LayerNorm(channels)
        self.cross_attention = Attention(channels, cross_attention_heads)
        self.norm_cross_out = nn.LayerNorm(channels)
        self.scale = nn.Parameter(torch.tensor(float(initial_scale)))
        # persistent buffers: saved in every checkpoint, restored by --c and by the predictor
        self.register_buffer("prototype", torch.zeros(channels))
        self.register_buffer("prototype_sum", torch.zeros(channels))
        self.register_buffer("prototype_count", torch.zeros(()))
        self.register_buffer("prototype_active", torch.zeros((), dtype=torch.bool))
        self.last_spatial_shape: Optional[tuple] = None  # of the latest input, to reshape attention weights

    def forward(self, x: torch.Tensor, projected_text: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *S) feature map; projected_text: (B, L_s, C) from ``self.text_projection``."""
        b, c, *spatial = x.shape
        self.last_spatial_shape = tuple(spatial)
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
        pos = sinusoidal_encoding_nd(spatial, c, device=x.device).to(tokens.dtype)

        v = self.norm_self_in(tokens)
        qk = v + pos
        # branch-free so torch.compile needs no guard: f is 0 until the prototype is active
        f = (minmax_normalise(self.prototype) * self.prototype_active).to(qk.dtype)
        qk = qk * f + qk
        tokens = tokens + self.norm_self_out(self.self_attention(qk, qk, v))

        text_pos = sinusoidal_encoding_nd((projected_text.shape[1],), c, device=x.device).to(tokens.dtype)
        q = self.norm_cross_in(tokens) + pos
        attended = self.cross_attention(q, projected_text + text_pos, projected_text)
        tokens = tokens + self.scale * self.norm_cross_out(attended)
        return tokens.transpose(1, 2).reshape(b, c, *spatial)

    def cross_attention_maps(self) -> Optional[torch.Tensor]:
        """(B, L_s, *S): how much each position attended to each text slot in the latest forward, if it ran
        with ``cross_attention.capture_weights`` set (None otherwise). At every position the slots sum to 1."""
        weights = self.cross_attention.last_weights
        if weights is None or self.last_spatial_shape is None or weights.shape[1] != math.prod(self.last_spatial_shape):
            return None
        return weights.transpose(1, 2).reshape(weights.shape[0], weights.shape[2], *self.last_spatial_shape)

    # --- prototype state; the maths lives in model/prototype.py ---
    @torch.no_grad()
    def accumulate_prototype(self, total: torch.Tensor, count: torch.Tensor) -> None:
        """Warm-up epoch: add a step's (sum, count) of foreground vectors."""
        self.prototype_sum += total.to(self.prototype_sum)
        self.prototype_count += count.to(self.prototype_count)

    @torch.no_grad()
    def activate_prototype(self) -> bool:
        """End of the warm-up epoch: prototype = mean over the epoch. False if that epoch saw no foreground."""
        if self.prototype_count <= 0:
            return False
        self.prototype.copy_(self.prototype_sum / self.prototype_count)
        self.prototype_active.fill_(True)
        return True

    @torch.no_grad()
    def momentum_step(self, total: torch.Tensor, count: torch.Tensor, momentum: float) -> None:
        if count > 0:
            self.prototype.copy_(momentum_update(self.prototype, total.to(self.prototype) / count, momentum))
