"""The reference code's guided decoder stage (TeViA section 2), kept for ``nnUNetTrainerTeViA_reference``.

Applied to the input of a low-resolution ``UNetDecoder`` stage, before its up-sampling and skip:
  1. self-attention (1 head) whose queries and keys are modulated by the min-max-scaled prototype;
  2. cross-attention (4 heads) from the map to the projected report's slots, keys = slots + a slot sinusoid,
     with a learnable scale (init 0.01).
Under nnU-Net's training this arrangement learns to ignore the report (docs/architecture.md says why and
what the default ``GuidedStage`` in guided_stage.py changes). Its parameter and buffer names are those of
earlier releases, so models trained with them still load.
"""
from typing import List, Optional

import torch
from torch import nn

from nnunetv2_tevia.model.attention import Attention, weights_as_maps
from nnunetv2_tevia.model.positional_encoding import sinusoidal_encoding_nd
from nnunetv2_tevia.model.prototype import minmax_normalise
from nnunetv2_tevia.model.prototype_state import PrototypeState
from nnunetv2_tevia.model.text_projection import ReferenceTextProjection


class ReferenceGuidedStage(PrototypeState):
    prototype_space = "alignment"  # the prototype is a mean of alignment vectors (section 4)

    def __init__(self, channels: int, text_tokens: int, text_dim: int, slots: int,
                 self_attention_heads: int = 1, cross_attention_heads: int = 4, initial_scale: float = 0.01):
        super().__init__()
        self.channels = channels
        self.text_projection = ReferenceTextProjection(text_tokens, text_dim, slots, channels)
        self.norm_self_in = nn.LayerNorm(channels)
        self.self_attention = Attention(channels, self_attention_heads)
        self.norm_self_out = nn.LayerNorm(channels)
        self.norm_cross_in = nn.LayerNorm(channels)
        self.cross_attention = Attention(channels, cross_attention_heads)
        self.norm_cross_out = nn.LayerNorm(channels)
        self.scale = nn.Parameter(torch.tensor(float(initial_scale)))
        self.init_prototype(channels, with_weight=False)  # on or off: the reference has no ramp
        self.last_spatial_shape: Optional[tuple] = None  # of the latest input, to reshape attention weights

    def project_text(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) tokens -> (B, L_s, C) slots."""
        return self.text_projection(text, text_mask)

    @staticmethod
    def text_vector(projected_text: torch.Tensor) -> torch.Tensor:
        """The alignment loss's text vector: the slots' mean."""
        return projected_text.mean(1)

    def forward(self, x: torch.Tensor, projected_text: torch.Tensor, patch_box=None) -> torch.Tensor:
        """x: (B, C, *S) feature map; projected_text: (B, L_s, C) from ``project_text``. ``patch_box`` is ignored:
        the reference's positions are relative to the patch."""
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

    @property
    def gate(self) -> torch.Tensor:
        """The residual's learnable factor (named ``scale`` here, as in the reference and in older checkpoints)."""
        return self.scale

    def key_names(self, n_keys: int) -> List[str]:
        """File-name-safe names of the keys: the slots."""
        return [f"slot{i:02d}" for i in range(n_keys)]

    def cross_attention_maps(self) -> Optional[torch.Tensor]:
        """(B, keys, *S): how much each position attended to each key in the latest forward, if it ran with
        ``cross_attention.capture_weights`` set (None otherwise). At every position the keys sum to 1."""
        return weights_as_maps(self.cross_attention.last_weights, self.last_spatial_shape)
