"""Recurrent attention decoder, one step at a time or (Luong style, teacher forced) all at once."""

from dataclasses import dataclass

import torch
from torch import nn

from seq2seq_nmt.data.vocab import PAD
from seq2seq_nmt.model.attention import Attention
from seq2seq_nmt.model.encoder import RNNS, Hidden, map_hidden


@dataclass
class Memory:
    """What the decoder attends to: encoder outputs, their projection, and the source mask."""

    keys: torch.Tensor  # (B, S, H)
    proj: torch.Tensor  # (B, S, A) precomputed key projection
    mask: torch.Tensor  # (B, S) True at real tokens

    def index_select(self, idx: torch.Tensor) -> "Memory":
        return Memory(self.keys[idx], self.proj[idx], self.mask[idx])


class Decoder(nn.Module):
    """GRU/LSTM decoder with attention.

    ``attend_first`` (Bahdanau, tutorial): the previous hidden state queries the attention and the
    context is fed to the RNN with the embedding. Otherwise (Luong): the RNN runs first and its
    output queries the attention, so teacher-forced decoding is one recurrent call.
    Each step yields a feature ``tanh(W [rnn_out; context])`` that the generator maps to logits;
    with ``deep_output`` the feature also reads the input embedding, ``tanh(W [rnn_out; context;
    emb])`` (the deep output of Bahdanau et al.). With ``input_feeding`` (Luong only) the previous
    step's feature is fed to the RNN with the embedding, and travels in the hidden state as
    ``(rnn_hidden, feature (1, B, H))``; decoding then runs step by step.
    """

    def __init__(
        self,
        vocab_size: int,
        emb_size: int,
        hidden_size: int,
        attention: Attention,
        attend_first: bool,
        query_emb: bool = False,
        num_layers: int = 1,
        dropout: float = 0.0,
        cell: str = "gru",
        deep_output: bool = False,
        input_feeding: bool = False,
    ):
        super().__init__()
        self.attention, self.attend_first, self.query_emb = attention, attend_first, query_emb
        self.deep_output, self.input_feeding = deep_output, input_feeding
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.rnn = RNNS[cell](
            emb_size + (hidden_size if attend_first or input_feeding else 0),
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.combine = nn.Linear(2 * hidden_size + (emb_size if deep_output else 0), hidden_size)

    def _query(self, emb: torch.Tensor, hidden: Hidden) -> torch.Tensor:
        top = (hidden[0] if isinstance(hidden, tuple) else hidden)[-1][:, None, :]  # (B, 1, H)
        return torch.cat([emb, top], dim=-1) if self.query_emb else top

    def _attend(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention for queries (R, T, Q). R may be a multiple g of the memory's batch B: then
        rows ``b*g .. b*g+g-1`` (e.g. the beams of sentence b) share sentence b's memory."""
        rows, batch = query.size(0), memory.keys.size(0)
        if rows == batch:
            return self.attention(query, memory.keys, memory.proj, memory.mask)
        grouped = query.reshape(batch, -1, query.size(-1))  # (B, g*T, Q)
        ctx, w = self.attention(grouped, memory.keys, memory.proj, memory.mask)
        return ctx.reshape(rows, -1, ctx.size(-1)), w.reshape(rows, -1, w.size(-1))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Input embeddings (with dropout) of tokens (B, T): (B, T, E)."""
        return self.dropout(self.embedding(tokens))

    def step(
        self, y: torch.Tensor, hidden: Hidden, memory: Memory, emb: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
        """One step for previous tokens ``y`` (R,): feature (R, H), new hidden, weights (R, S).

        R is the memory's batch size or a multiple of it (see ``_attend``). ``emb`` (R, 1, E):
        the inputs' embeddings when already computed (teacher forcing embeds all at once)."""
        emb = self.embed(y[:, None]) if emb is None else emb
        if self.attend_first:
            ctx, w = self._attend(self._query(emb, hidden), memory)
            out, hidden = self.rnn(torch.cat([emb, ctx], dim=-1), hidden)
        elif self.input_feeding:
            rnn_hidden, feed = hidden
            out, rnn_hidden = self.rnn(torch.cat([emb, feed.transpose(0, 1)], dim=-1), rnn_hidden)
            ctx, w = self._attend(out, memory)
            feat = self._combine(out, ctx, emb)
            return feat[:, 0], (rnn_hidden, feat.transpose(0, 1)), w[:, 0]
        else:
            out, hidden = self.rnn(emb, hidden)
            ctx, w = self._attend(out, memory)
        return self._combine(out, ctx, emb)[:, 0], hidden, w[:, 0]

    def run(
        self, tgt_in: torch.Tensor, hidden: Hidden
    ) -> tuple[torch.Tensor, torch.Tensor, Hidden]:
        """Known inputs (B, T) in one RNN call (Luong only): RNN outputs (B, T, H), the inputs'
        embeddings (B, T, E), hidden."""
        assert not (self.attend_first or self.input_feeding), "only Luong without input feeding"
        emb = self.embed(tgt_in)
        out, hidden = self.rnn(emb, hidden)
        return out, emb, hidden

    def features(
        self, out: torch.Tensor, emb: torch.Tensor, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Luong: attention and output features (B, T, H) for RNN outputs (B, T, H) of inputs
        embedded as ``emb``, and the attention weights."""
        ctx, w = self._attend(out, memory)
        return self._combine(out, ctx, emb), w

    def _combine(self, out: torch.Tensor, ctx: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The output feature ``tanh(W [rnn_out; context])`` (``; emb`` with ``deep_output``)."""
        parts = [out, ctx, emb] if self.deep_output else [out, ctx]
        return torch.tanh(self.combine(torch.cat(parts, dim=-1)))


__all__ = ["Decoder", "Memory", "map_hidden"]
