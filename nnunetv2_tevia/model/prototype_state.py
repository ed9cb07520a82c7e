"""The historic prototype's state, held by each guided stage as persistent buffers.

Buffers, not attributes, so the prototype travels in every checkpoint, comes back with ``--c`` and is used by
the predictor (the reference code keeps it in a plain attribute and never uses it at test time). The maths is
in ``model/prototype.py``; this mixin only owns the buffers and their three state changes.
"""
import torch
from torch import nn

from nnunetv2_tevia.model.prototype import momentum_update


class PrototypeState(nn.Module):
    """Mixin for a guided stage: ``prototype`` (C), its warm-up sums, whether it is active, and how strongly it
    acts (``prototype_weight``, ramped from 0 to 1 after activation so that switching it on is smooth)."""

    def init_prototype(self, channels: int, with_weight: bool = True) -> None:
        self.register_buffer("prototype", torch.zeros(channels))
        self.register_buffer("prototype_sum", torch.zeros(channels))
        self.register_buffer("prototype_count", torch.zeros(()))
        self.register_buffer("prototype_active", torch.zeros((), dtype=torch.bool))
        if with_weight:
            self.register_buffer("prototype_weight", torch.zeros(()))

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

    @torch.no_grad()
    def ramp_prototype(self, increment: float) -> None:
        """End of an epoch with an active prototype: weight += increment, at most 1."""
        if bool(self.prototype_active) and hasattr(self, "prototype_weight"):
            self.prototype_weight.copy_((self.prototype_weight + increment).clamp(max=1.0))
