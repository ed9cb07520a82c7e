"""Sinusoidal positional encodings for feature maps of any dimension and for text slots.

Positions are normalised to [0, 1] over the map's extent, so an encoding means "fraction of the way
across the patch" at every resolution: the guided stages at 8x8 and at 16x16 agree on what "left" is.
"""
import math
from typing import Optional, Sequence

import torch


def sinusoidal_encoding_1d(positions: torch.Tensor, channels: int) -> torch.Tensor:
    """Encode positions in [0, 1] (shape (N,)) into (N, channels): sin/cos pairs at geometric frequencies."""
    half = channels // 2
    # frequencies from 1 to ~half*pi cycles over the extent; low ones carry coarse location ("left half")
    freqs = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32)
                      * (math.log(max(half, 1) * math.pi) / max(half - 1, 1)))
    angles = positions.float()[:, None] * freqs[None, :] * math.pi
    enc = torch.cat((angles.sin(), angles.cos()), dim=1)
    if enc.shape[1] < channels:  # odd channel count: pad one zero column
        enc = torch.nn.functional.pad(enc, (0, channels - enc.shape[1]))
    return enc


def sinusoidal_encoding_nd(shape: Sequence[int], channels: int, device=None,
                           box: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Encode every position of a 1D/2D/3D map, flattened in row-major order, into (prod(shape), channels).

    Channels are split between the axes (the first axes get the remainder), each axis encoded with
    ``sinusoidal_encoding_1d`` and broadcast over the others. Positions run from 0 to 1 over the map; with
    ``box`` (B, ndim, 2), from ``box[b, axis, 0]`` to ``box[b, axis, 1]`` instead, giving (B, prod(shape),
    channels): the patch's first and last voxel in the image's own [0, 1] coordinates, so that a patch smaller
    than the image knows where in the image it is.
    """
    ndim = len(shape)
    base, rest = divmod(channels, ndim)
    per_axis = [base + (1 if i < rest else 0) for i in range(ndim)]
    batch = [] if box is None else [box.shape[0]]
    parts = []
    for axis, (n, c) in enumerate(zip(shape, per_axis)):
        pos = torch.linspace(0, 1, n, device=device) if n > 1 else torch.zeros(1, device=device)
        if box is not None:
            lo, hi = box[:, axis, :1].float().to(pos.device), box[:, axis, 1:].float().to(pos.device)
            pos = lo + (hi - lo) * pos  # (B, n)
        enc = sinusoidal_encoding_1d(pos.reshape(-1), c).reshape(*batch, n, c)
        view = batch + [1] * ndim + [c]
        view[len(batch) + axis] = n
        parts.append(enc.view(*view).expand(*batch, *shape, c))
    return torch.cat(parts, dim=-1).reshape(*batch, -1, channels)
