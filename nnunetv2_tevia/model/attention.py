"""Multi-head attention on ``scaled_dot_product_attention`` (flash / memory-efficient kernels where available).

SDPA never materialises the attention weights. For attention maps, set ``capture_weights``: the same
attention is then computed explicitly and ``last_weights`` holds its softmax, averaged over heads.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def largest_head_count(channels: int, wanted: int) -> int:
    """The largest head count <= wanted that divides channels (nnU-Net channel counts are not always multiples of 4)."""
    for h in range(min(wanted, channels), 0, -1):
        if channels % h == 0:
            return h
    return 1


class Attention(nn.Module):
    def __init__(self, channels: int, heads: int, kv_channels: Optional[int] = None):
        super().__init__()
        kv_channels = channels if kv_channels is None else kv_channels
        self.heads = largest_head_count(channels, heads)
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(kv_channels, channels)
        self.v = nn.Linear(kv_channels, channels)
        self.out = nn.Linear(channels, channels)
        self.capture_weights = False
        self.last_weights: Optional[torch.Tensor] = None  # (B, Nq, Nk), only while capture_weights is set

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (B, Nq, C); k, v: (B, Nk, Ckv). Returns (B, Nq, C). Every key is valid: the text projections have
        already turned the padded tokens into slots."""
        b, nq, c = q.shape
        h = self.heads

        def split(t):
            return t.view(b, t.shape[1], h, c // h).transpose(1, 2)

        qh, kh, vh = split(self.q(q)), split(self.k(k)), split(self.v(v))
        if self.capture_weights:
            scores = qh @ kh.transpose(-2, -1) / math.sqrt(c // h)
            weights = scores.softmax(dim=-1)
            self.last_weights = weights.mean(dim=1).detach()
            o = weights @ vh
        else:
            o = F.scaled_dot_product_attention(qh, kh, vh)
        return self.out(o.transpose(1, 2).reshape(b, nq, c))


def weights_as_maps(weights: Optional[torch.Tensor], spatial_shape: Optional[Sequence[int]]) -> Optional[torch.Tensor]:
    """Captured weights (B, N, K) of a query map of ``spatial_shape`` -> (B, K, *spatial_shape) maps, one per key;
    None if nothing (or another map's weights) was captured."""
    if weights is None or spatial_shape is None or weights.shape[1] != math.prod(spatial_shape):
        return None
    return weights.transpose(1, 2).reshape(weights.shape[0], weights.shape[2], *spatial_shape)
