"""Per-stage text projections: the report's token features (B, L, D) -> L_s slots of C_s channels.

``TextProjection`` mixes the tokens by their index into slots (the reference's Conv1d, with its defects removed),
``AttentionPoolProjection`` pools them by what they say (learned slot queries attend over the tokens), and
``SentenceProjection`` turns the report's sentence embedding into one more key. ``TokenProjection`` keeps every token
as a key (an ablation: no slots). ``ReferenceTextProjection`` is the reference code's (kept for
``nnUNetTrainerTeViA_reference``). ``norms=False`` drops the LayerNorms of a projection (an ablation: the reference
feeds the raw encoder features). docs/architecture.md has the measurements.
"""
import torch
import torch.nn.functional as F
from torch import nn

from nnunetv2_tevia.model.attention import largest_head_count


def layer_norm(channels: int, norms: bool = True) -> nn.Module:
    """``LayerNorm(channels)``, or the identity for the ``text_norms=False`` ablation."""
    return nn.LayerNorm(channels) if norms else nn.Identity()


def masked_mean(text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) -> (B, D): the mean over the valid tokens (sentence-transformers' pooling)."""
    m = text_mask[..., None].to(text.dtype)
    return (text * m).sum(1) / m.sum(1).clamp_min(1)


class TextProjection(nn.Module):
    """``LayerNorm(D)``, ``Conv1d(L -> L_s, k=1)`` over the token axis, GELU, ``Linear(D -> C_s)``, ``LayerNorm(C_s)``.

    The reference's slot projection with its two defects removed (docs/architecture.md has the numbers): the
    encoder's raw token features share a large dataset-wide mean, which the first norm removes, and the second
    (in place of the reference's LeakyReLU, which zeroed half of the text) puts the slots on the scale of the
    normalised image queries, so that which slot a position attends to depends on what the report says.
    Padding tokens are zeroed before the token mixing; after it the slots are mixtures of tokens, all valid.
    """

    def __init__(self, text_tokens: int, text_dim: int, slots: int, channels: int, norms: bool = True):
        super().__init__()
        self.norm_in = layer_norm(text_dim, norms)
        self.token_mix = nn.Conv1d(text_tokens, slots, kernel_size=1)
        self.act = nn.GELU()
        self.to_channels = nn.Linear(text_dim, channels)
        self.norm_out = layer_norm(channels, norms)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """text: (B, L, D); text_mask: (B, L) bool. Returns (B, L_s, C_s)."""
        t = self.norm_in(text) * text_mask[..., None].to(text.dtype)
        return self.norm_out(self.to_channels(self.act(self.token_mix(t))))


class AttentionPoolProjection(nn.Module):
    """``LayerNorm(D)``, then ``L_s`` learned queries attend over the valid tokens (``heads`` heads), GELU,
    ``Linear(D -> C_s)``, ``LayerNorm(C_s)``.

    A slot collects the tokens whose features match its query wherever they stand in the sentence, so a word that
    moves ("left lower zone" for "lower left lung") still reaches the same slot; the Conv1d of ``TextProjection``
    binds a slot to token positions instead. Padding is masked out of the pooling.
    """

    def __init__(self, text_dim: int, slots: int, channels: int, heads: int = 4, norms: bool = True):
        super().__init__()
        self.heads = largest_head_count(text_dim, heads)
        self.norm_in = layer_norm(text_dim, norms)
        self.queries = nn.Parameter(torch.randn(slots, text_dim) * text_dim ** -0.5)
        self.key = nn.Linear(text_dim, text_dim)
        self.act = nn.GELU()
        self.to_channels = nn.Linear(text_dim, channels)
        self.norm_out = layer_norm(channels, norms)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """text: (B, L, D); text_mask: (B, L) bool. Returns (B, L_s, C_s)."""
        b, n, d = text.shape
        h = self.heads
        t = self.norm_in(text)

        def split(x):  # (B, N, D) -> (B, h, N, D / h)
            return x.reshape(x.shape[0], x.shape[1], h, d // h).transpose(1, 2)
        q = split(self.queries.to(t.dtype).expand(b, -1, -1))
        valid = text_mask.clone()
        valid[:, 0] |= ~text_mask.any(1)  # an all-padding row would give NaN; it attends to its first token
        pooled = F.scaled_dot_product_attention(q, split(self.key(t)), split(t), attn_mask=valid[:, None, None, :])
        pooled = pooled.transpose(1, 2).reshape(b, -1, d)
        return self.norm_out(self.to_channels(self.act(pooled)))


class SentenceProjection(nn.Module):
    """The report's sentence embedding (the mean of its token features) -> one key of C_s channels:
    ``LayerNorm(D)``, ``Linear(D -> C_s)``, GELU, ``Linear``, ``LayerNorm(C_s)``. Paraphrase-trained encoders (the
    default all-MiniLM-L6-v2) place reworded reports close together in exactly this space."""

    def __init__(self, text_dim: int, channels: int, norms: bool = True):
        super().__init__()
        self.norm_in = layer_norm(text_dim, norms)
        self.mlp = nn.Sequential(nn.Linear(text_dim, channels), nn.GELU(), nn.Linear(channels, channels))
        self.norm_out = layer_norm(channels, norms)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D), (B, L) -> (B, 1, C_s)."""
        return self.norm_out(self.mlp(self.norm_in(masked_mean(text, text_mask))))[:, None]


class TokenProjection(nn.Module):
    """Every token its own key, no slots (the ``text_reader="tokens"`` ablation: the reference's cross-attention
    to the report's tokens without the token mixing): ``LayerNorm(D)``, GELU, ``Linear(D -> C_s)``,
    ``LayerNorm(C_s)`` per token. Padding tokens are zeroed first, so they all become one learned vector (like
    further null keys); the attention has no key mask."""

    def __init__(self, text_dim: int, channels: int, norms: bool = True):
        super().__init__()
        self.norm_in = layer_norm(text_dim, norms)
        self.act = nn.GELU()
        self.to_channels = nn.Linear(text_dim, channels)
        self.norm_out = layer_norm(channels, norms)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """text: (B, L, D); text_mask: (B, L) bool. Returns (B, L, C_s)."""
        t = self.norm_in(text) * text_mask[..., None].to(text.dtype)
        return self.norm_out(self.to_channels(self.act(t)))


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
