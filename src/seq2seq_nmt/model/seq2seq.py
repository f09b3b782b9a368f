"""Encoder-decoder model, built from plain settings so that a checkpoint can rebuild it alone."""

from collections.abc import Callable

import torch
from torch import nn

from seq2seq_nmt.data.vocab import PAD
from seq2seq_nmt.model.attention import ATTENTIONS, AttentionSpec
from seq2seq_nmt.model.decoder import Decoder, Memory
from seq2seq_nmt.model.encoder import Encoder, Hidden, map_hidden

__all__ = ["ATTENTIONS", "Seq2Seq", "SourceTooLongError"]

TEACHER_FORCING_MODES = ("step", "sequence")  # a draw per decoding step, or one per sentence


class SourceTooLongError(ValueError):
    """A position attention (the tutorial's) has ``max_length`` slots and cannot see a longer source."""


def attention_spec(kind: str, max_length: int | None) -> AttentionSpec:
    """The registered attention ``kind`` (ValueError, one line, when unknown or missing max_length)."""
    spec = ATTENTIONS.get(kind)
    if spec is None:
        raise ValueError(f"unknown attention {kind!r}; choose from {tuple(ATTENTIONS)}")
    if spec.needs_max_length and not max_length:
        raise ValueError(f"attention={kind} needs max_length (its number of source slots)")
    return spec


def check_settings(
    attention: str = "bahdanau",
    emb_size: int = 256,
    hidden_size: int = 256,
    max_length: int | None = None,
    bidirectional: bool = False,
    tie_embeddings: bool = False,
    input_feeding: bool = False,
) -> AttentionSpec:
    """The attention's registry entry, or a one-line ValueError for settings that are each
    allowed but not together; ``Seq2Seq`` and the config check (before any data) both call it."""
    spec = attention_spec(attention, max_length)
    if tie_embeddings and emb_size != hidden_size:
        raise ValueError(
            f"tie_embeddings needs emb_size == hidden_size, got {emb_size} and {hidden_size}"
        )
    if input_feeding and spec.attend_first:
        raise ValueError("input_feeding needs an attention queried after the RNN step (luong_*)")
    if bidirectional and hidden_size % 2:
        raise ValueError(f"a bidirectional encoder needs an even hidden_size, got {hidden_size}")
    return spec


class Seq2Seq(nn.Module):
    """Recurrent encoder + attention decoder emitting logits (the loss owns the softmax)."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        emb_size: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.1,
        cell: str = "gru",
        attention: str = "bahdanau",
        bidirectional: bool = False,
        max_length: int | None = None,
        deep_output: bool = False,
        bridge: bool = False,
        tie_embeddings: bool = False,
        input_feeding: bool = False,
        compile: bool = False,
    ):
        """``deep_output``: the output layer also reads the previous token's embedding;
        ``bridge``: the decoder starts from ``tanh(W h)`` of the encoder's final state ``h``
        (else from ``h`` itself); ``tie_embeddings``: the generator shares the target embedding
        matrix (needs ``emb_size == hidden_size``); ``input_feeding`` (Luong attentions): the
        previous step's output feature is fed to the decoder RNN with the embedding; ``compile``: the
        decoder's per-token step runs through ``torch.compile`` (how the model runs, not what it
        is: checkpoints do not record it)."""
        super().__init__()
        spec = check_settings(
            attention, emb_size, hidden_size, max_length, bidirectional, tie_embeddings,
            input_feeding,
        )  # fmt: skip
        self.attention_name = attention
        self.max_length = max_length if spec.needs_max_length else None
        self.encoder = Encoder(
            src_vocab_size, emb_size, hidden_size, num_layers, dropout, cell, bidirectional
        )
        self.decoder = Decoder(
            tgt_vocab_size, emb_size, hidden_size, spec.build(hidden_size, emb_size, max_length),
            spec.attend_first, query_emb=spec.query_emb, num_layers=num_layers, dropout=dropout,
            cell=cell, deep_output=deep_output, input_feeding=input_feeding,
        )  # fmt: skip
        self.bridge = nn.Linear(hidden_size, hidden_size) if bridge else None
        self.dropout = nn.Dropout(dropout)
        self.generator = nn.Linear(hidden_size, tgt_vocab_size)
        if tie_embeddings:
            self.generator.weight = self.decoder.embedding.weight
        self.compiled = compile
        self._compiled_steps: dict[str, Callable] = {}  # by device type; unbound: copies work

    def _decoder_step(
        self, y: torch.Tensor, hidden: Hidden, memory: Memory, emb: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
        """The decoder's step, eager or (``compile``) compiled once per device type: on CUDA
        captured as CUDA graphs (``reduce-overhead``). Shapes are marked dynamic after the
        first recompile, so a run compiles a bounded number of graphs."""
        if not self.compiled:
            return self.decoder.step(y, hidden, memory, emb)
        kind = y.device.type
        if kind not in self._compiled_steps:
            mode = "reduce-overhead" if kind == "cuda" else None
            self._compiled_steps[kind] = torch.compile(Decoder.step, mode=mode)
        return self._compiled_steps[kind](self.decoder, y, hidden, memory, emb)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[Memory, Hidden]:
        """Encode a padded batch; the memory masks padding, the hidden state starts the decoder."""
        if self.max_length is not None and src.size(1) > self.max_length:
            raise SourceTooLongError(
                f"source of {src.size(1)} tokens (with EOS) exceeds the {self.max_length} positions "
                f"the {self.attention_name} attention can see"
            )
        keys, hidden = self.encoder(src, src_len)
        if self.bridge is not None:
            hidden = map_hidden(lambda h: torch.tanh(self.bridge(h)), hidden)
        if self.decoder.input_feeding:  # no previous feature before the first step
            hidden = (hidden, keys.new_zeros(1, keys.size(0), keys.size(-1)))
        return Memory(keys, self.decoder.attention.precompute(keys), src != PAD), hidden

    def step(
        self, y: torch.Tensor, hidden: Hidden, memory: Memory
    ) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
        """Logits (B, V) for the next token after ``y`` (B,), new hidden, attention (B, S)."""
        feat, hidden, w = self._decoder_step(y, hidden, memory)
        return self.generator(feat), hidden, w

    def forward(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        teacher_forcing_ratio: float = 1.0,
        per_sequence: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, V) and attention (B, T, S) for decoder inputs ``tgt_in`` (B, T).

        Teacher forcing is drawn once per step for the whole batch (``per_sequence``: once for
        the whole batch and all its steps, as the tutorial draws it per sentence pair): a forced
        step reads the reference token, a free step reads the previous step's argmax.
        Output-attention (Luong) decoders run each stretch of forced steps as one RNN call.
        """
        memory, hidden = self.encode(src, src_len)
        steps = tgt_in.size(1)
        # drawn on the host before the loop: the steps branch on no device value
        draws = torch.rand(1 if per_sequence else steps).expand(steps)
        forced = [True, *(draws[1:] < teacher_forcing_ratio).tolist()]  # the first input is <sos>
        if not (self.decoder.attend_first or self.decoder.input_feeding):
            return self._decode_runs(tgt_in, hidden, memory, forced)
        if self.decoder.fused_gru() and not self.compiled:
            feats, attn = self.decoder.run_attend_first(
                tgt_in, hidden, memory, forced, self._predict
            )
            return self.generator(self.dropout(feats)), attn
        # the forced inputs embedded in one call (one gradient for the embedding matrix)
        embs, (feats, attns, y) = self.decoder.embed(tgt_in).unbind(1), ([], [], tgt_in[:, 0])
        for t in range(steps):
            emb = embs[t][:, None] if forced[t] else None
            feat, hidden, w = self._decoder_step(y, hidden, memory, emb)
            feats.append(feat)
            attns.append(w)
            if t + 1 < steps:
                y = tgt_in[:, t + 1] if forced[t + 1] else self._predict(feat)
        feats = torch.stack(feats, dim=1)
        return self.generator(self.dropout(feats)), torch.stack(attns, dim=1)

    @torch.no_grad()
    def _predict(self, feat: torch.Tensor) -> torch.Tensor:
        """The argmax token of features ``feat``: a free-running step's next input."""
        return self.generator(feat).argmax(-1)

    def _decode_runs(
        self, tgt_in: torch.Tensor, hidden: Hidden, memory: Memory, forced: list[bool]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Output-attention (Luong) decoders, whose RNN input is the previous token alone: a free
        step and the forced steps after it run as one RNN call (all forced: one call in all);
        attention, features and logits then run once over the whole sequence."""
        starts = [t for t, f in enumerate(forced) if t == 0 or not f]
        outs, embs, y = [], [], tgt_in[:, :1]
        for start, end in zip(starts, [*starts[1:], len(forced)], strict=True):
            out, emb, hidden = self.decoder.run(
                torch.cat([y, tgt_in[:, start + 1 : end]], dim=1), hidden
            )
            outs.append(out)
            embs.append(emb)
            if end < len(forced):  # the next run starts from this prediction
                with torch.no_grad():
                    feat = self.decoder.features(out[:, -1:], emb[:, -1:], memory)[0]
                    y = self._predict(feat)
        feats, attn = self.decoder.features(torch.cat(outs, dim=1), torch.cat(embs, dim=1), memory)
        return self.generator(self.dropout(feats)), attn
