"""The historic visual prototype's maths (TeViA section 4), as pure functions used by the guided stages.

How the prototype is fed in training (per-stage foreground vectors, the warm-up mean, the momentum step and its
all-reduce across ranks) is in ``training/prototype_updates.py``; its buffers are in ``prototype_state.py``.
"""
import torch


def momentum_update(prototype: torch.Tensor, batch_mean: torch.Tensor, momentum: float) -> torch.Tensor:
    return momentum * prototype + (1 - momentum) * batch_mean


def minmax_normalise(prototype: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale a prototype to [0, 1]; the factor f in ``q = q * f + q``."""
    lo, hi = prototype.min(), prototype.max()
    return (prototype - lo) / (hi - lo).clamp_min(eps)
