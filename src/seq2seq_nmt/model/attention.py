"""Attention over encoder outputs; every score at a padded source position is masked out."""

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of ``scores`` (B, T, S) where ``mask`` (B, S) is True."""
    return scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1)


class Attention(nn.Module):
    """Base: ``precompute`` runs once per batch, ``forward`` once per decoder step (or sequence)."""

    def precompute(self, keys: torch.Tensor) -> torch.Tensor:
        return keys

    def scores(self, query: torch.Tensor, keys: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, proj: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, Q), keys (B, S, H) -> context (B, T, H) and weights (B, T, S)."""
        weights = masked_softmax(self.scores(query, keys, proj), mask)
        return weights @ keys, weights


class BahdanauAttention(Attention):
    """Additive: v . tanh(W_q q + W_k k), with W_k k computed once per batch."""

    def __init__(self, query_size: int, key_size: int, attn_size: int | None = None):
        super().__init__()
        attn_size = attn_size or key_size
        self.key_layer = nn.Linear(key_size, attn_size, bias=False)
        self.query_layer = nn.Linear(query_size, attn_size, bias=False)
        self.energy = nn.Linear(attn_size, 1, bias=False)

    def precompute(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key_layer(keys)

    def scores(self, query, keys, proj):
        q = self.query_layer(query)[:, :, None, :]  # (B, T, 1, A)
        return self.energy(torch.tanh(q + proj[:, None, :, :])).squeeze(-1)


class LuongAttention(Attention):
    """Multiplicative: q . k (``dot``) or q . W k (``general``)."""

    def __init__(self, query_size: int, key_size: int, general: bool = True):
        super().__init__()
        if not general and query_size != key_size:
            raise ValueError("dot attention needs query and key of the same size")
        self.key_layer = nn.Linear(key_size, query_size, bias=False) if general else nn.Identity()

    def precompute(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key_layer(keys)

    def scores(self, query, keys, proj):
        return query @ proj.transpose(1, 2)


class TutorialAttention(Attention):
    """The original tutorial's learned position attention: Linear([emb; h] -> max_length slots).

    It scores fixed source positions, not contents, so it cannot attend past ``max_length``.
    """

    def __init__(self, query_size: int, max_length: int):
        super().__init__()
        self.max_length = max_length
        self.attn = nn.Linear(query_size, max_length)

    def scores(self, query, keys, proj):
        return self.attn(query)[..., : keys.size(1)]
