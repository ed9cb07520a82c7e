"""Per-stage text projections: the report's token features (B, L, D) -> L_s slots of C_s channels.

``TextProjection`` is the default design's, ``ReferenceTextProjection`` the reference code's (kept for
``nnUNetTrainerTeViA_reference``). Both mix the tokens by their index into slots (the reference's Conv1d).
"""
import torch
from torch import nn


class TextProjection(nn.Module):
    """``LayerNorm(D)``, ``Conv1d(L -> L_s, k=1)`` over the token axis, GELU, ``Linear(D -> C_s)``, ``LayerNorm(C_s)``.

    The reference's slot projection with its two defects removed (docs/architecture.md has the numbers): the
    encoder's raw token features share a large dataset-wide mean, which the first norm removes, and the second
    (in place of the reference's LeakyReLU, which zeroed half of the text) puts the slots on the scale of the
    normalised image queries, so that which slot a position attends to depends on what the report says.
    Padding tokens are zeroed before the token mixing; after it the slots are mixtures of tokens, all valid.
    """

    def __init__(self, text_tokens: int, text_dim: int, slots: int, channels: int):
        super().__init__()
        self.norm_in = nn.LayerNorm(text_dim)
        self.token_mix = nn.Conv1d(text_tokens, slots, kernel_size=1)
        self.act = nn.GELU()
        self.to_channels = nn.Linear(text_dim, channels)
        self.norm_out = nn.LayerNorm(channels)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """text: (B, L, D); text_mask: (B, L) bool. Returns (B, L_s, C_s)."""
        t = self.norm_in(text) * text_mask[..., None].to(text.dtype)
        return self.norm_out(self.to_channels(self.act(self.token_mix(t))))


class ReferenceTextProjection(nn.Module):
    """``Conv1d(L -> L_s, k=1)`` over the token axis, GELU, ``Linear(D -> C_s)``, LeakyReLU, then ``t + P * t``.

    Padding tokens are zeroed before the token-mixing convolution, so a report's padding never
    reaches the slots (the reference code lets it through). After the convolution the slots are
    mixtures of tokens and are all valid.
    """

    def __init__(self, text_tokens: int, text_dim: int, slots: int, channels: int):
        super().__init__()
        self.token_mix = nn.Conv1d(text_tokens, slots, kernel_size=1)
        self.act1 = nn.GELU()
        self.to_channels = nn.Linear(text_dim, channels)
        self.act2 = nn.LeakyReLU()
        # the reference initialises the prompt to zeros: t + 0 * t = t at the start of training
        self.prompt = nn.Parameter(torch.zeros(slots, channels))

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """text: (B, L, D); text_mask: (B, L) bool. Returns (B, L_s, C_s)."""
        text = text * text_mask[..., None].to(text.dtype)
        t = self.act2(self.to_channels(self.act1(self.token_mix(text))))
        return t + self.prompt * t
