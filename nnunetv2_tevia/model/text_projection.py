"""Per-stage text projection: L encoder tokens -> L_s slots of C_s channels, plus the learnable prompt."""
import torch
from torch import nn


class TextProjection(nn.Module):
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
