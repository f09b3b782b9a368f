"""Attention over encoder outputs; every score at a padded source position is masked out.

``ATTENTIONS`` is the registry ``model.attention`` names: each entry is how to build the module
and how the decoder queries it. A new attention is one ``Attention`` subclass and one
``register(...)`` line at the end of this file (docs/extending.md has a worked example).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

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

    It scores fixed source positions, not contents (``key_size`` is unused), so it cannot attend
    past ``max_length``.
    """

    def __init__(self, query_size: int, key_size: int, max_length: int):
        super().__init__()
        self.max_length = max_length
        self.attn = nn.Linear(query_size, max_length)

    def scores(self, query, keys, proj):
        return self.attn(query)[..., : keys.size(1)]


@dataclass(frozen=True)
class AttentionSpec:
    """How to build an attention and how the decoder queries it.

    ``factory(query_size, key_size)`` (``max_length=`` too when ``needs_max_length``) returns the
    module; the keys are the encoder outputs (hidden size). ``attend_first``: the previous hidden
    state queries it before the RNN step and the context is fed to the RNN (Bahdanau); otherwise
    the RNN output queries it after the step (Luong), and teacher-forced decoding is one RNN
    call. ``query_emb``: the query is ``[embedding; hidden]`` (needs ``attend_first``).
    ``needs_max_length``: it sees ``max_length`` source positions at most; longer sources are
    refused (training) or cut (translation).
    """

    factory: Callable[..., Attention]
    attend_first: bool
    query_emb: bool = False
    needs_max_length: bool = False

    def build(self, hidden_size: int, emb_size: int, max_length: int | None) -> Attention:
        query_size = hidden_size + (emb_size if self.query_emb else 0)
        if not self.needs_max_length:
            return self.factory(query_size, hidden_size)
        return self.factory(query_size, hidden_size, max_length=max_length)


ATTENTIONS: dict[str, AttentionSpec] = {}


def register(
    name: str,
    factory: Callable[..., Attention],
    *,
    attend_first: bool,
    query_emb: bool = False,
    needs_max_length: bool = False,
) -> AttentionSpec:
    """Make ``model.attention=<name>`` build ``factory`` (see ``AttentionSpec``)."""
    if name in ATTENTIONS:
        raise ValueError(f"attention {name!r} is already registered")
    if query_emb and not attend_first:
        raise ValueError(f"attention {name!r}: query_emb needs attend_first")
    spec = AttentionSpec(factory, attend_first, query_emb, needs_max_length)
    ATTENTIONS[name] = spec
    return spec


register("bahdanau", BahdanauAttention, attend_first=True)
register("luong_dot", partial(LuongAttention, general=False), attend_first=False)
register("luong_general", partial(LuongAttention, general=True), attend_first=False)
register("tutorial", TutorialAttention, attend_first=True, query_emb=True, needs_max_length=True)
