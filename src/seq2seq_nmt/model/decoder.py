"""Recurrent attention decoder, one step at a time or (Luong style, teacher forced) all at once."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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

    def _query(self, emb: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        """The attention query from the input embedding (B, 1, E) and the top state (B, 1, H)."""
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
            top = (hidden[0] if isinstance(hidden, tuple) else hidden)[-1][:, None, :]
            ctx, w = self._attend(self._query(emb, top), memory)
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

    def fused_gru(self) -> bool:
        """Whether teacher-forced decoding can run ``run_attend_first``: an attend-first decoder
        over a one-layer GRU."""
        return self.attend_first and type(self.rnn) is nn.GRU and self.rnn.num_layers == 1

    def run_attend_first(
        self,
        tgt_in: torch.Tensor,
        hidden: torch.Tensor,
        memory: Memory,
        forced: list[bool],
        predict: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` over inputs ``tgt_in`` (B, T) of an attend-first one-layer GRU decoder, with
        the GRU written out so that per step only what must runs: the embeddings' share of the
        GRU input gates comes from one matmul over all forced inputs, and the output features
        from one matmul after the loop. A free step (``forced[t]`` False) reads ``predict`` of
        the previous step's feature. Features (B, T, H) and attention (B, T, S); the same
        values and gradients as ``step`` (tested)."""
        rnn, size = self.rnn, self.rnn.hidden_size
        w_emb, w_ctx = rnn.weight_ih_l0.split([self.embedding.embedding_dim, size], dim=1)
        forced_emb = self.embed(tgt_in)
        forced_gates = F.linear(forced_emb, w_emb, rnn.bias_ih_l0).unbind(1)
        h, embs, outs, ctxs, attns = hidden[-1], list(forced_emb.unbind(1)), [], [], []
        for t, is_forced in enumerate(forced):
            if not is_forced:
                with torch.no_grad():
                    y = predict(self._combine(outs[-1], ctxs[-1], embs[t - 1]))
                # a sparse gradient: the embedding matrix's dense one comes from ``forced_emb``
                embs[t] = self.dropout(F.embedding(y, self.embedding.weight, PAD, sparse=True))
            gates_x = forced_gates[t] if is_forced else F.linear(embs[t], w_emb, rnn.bias_ih_l0)
            # views and splits, not indexing: their gradients need no zero-filled buffers
            ctx, w = self._attend(self._query(embs[t][:, None], h[:, None]), memory)
            ctx, w = ctx.squeeze(1), w.squeeze(1)
            x_rz, x_n = torch.addmm(gates_x, ctx, w_ctx.t()).split([2 * size, size], 1)
            h_rz, h_n = F.linear(h, rnn.weight_hh_l0, rnn.bias_hh_l0).split([2 * size, size], 1)
            reset, update = torch.sigmoid(x_rz + h_rz).chunk(2, 1)
            new = torch.tanh(torch.addcmul(x_n, reset, h_n))
            h = torch.addcmul(new, update, h - new)  # (1 - z) n + z h
            outs.append(h)
            ctxs.append(ctx)
            attns.append(w)
        feats = self._combine(torch.stack(outs, 1), torch.stack(ctxs, 1), torch.stack(embs, 1))
        return feats, torch.stack(attns, 1)

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
