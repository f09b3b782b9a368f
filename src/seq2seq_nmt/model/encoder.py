"""Recurrent encoder over packed, padded batch-first sources."""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq_nmt.data.vocab import PAD

# The cells ``model.cell`` names (and the config check allows): a class with nn.GRU's
# constructor, taking and returning a tensor state, or nn.LSTM's, with an (h, c) tuple state.
RNNS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def map_hidden(fn, hidden: Hidden) -> Hidden:
    """Apply ``fn`` to every tensor of a (nested) hidden state: a GRU's h, an LSTM's (h, c),
    an input-feeding decoder's (RNN state, fed feature)."""
    return tuple(map_hidden(fn, h) for h in hidden) if isinstance(hidden, tuple) else fn(hidden)


class Encoder(nn.Module):
    """Embedding + (bi)GRU/LSTM; a bidirectional encoder gives each direction half the hidden size."""

    def __init__(
        self,
        vocab_size: int,
        emb_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        cell: str = "gru",
        bidirectional: bool = False,
    ):
        super().__init__()
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.rnn = RNNS[cell](
            emb_size,
            hidden_size // 2 if bidirectional else hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, Hidden]:
        """Encode ``src`` (B, S): outputs (B, S, H), zero at padding, and the final hidden state."""
        emb = self.dropout(self.embedding(src))
        if type(self.rnn) is nn.GRU and self.rnn.num_layers == 1:
            return self.forward_padded(emb, src_len)
        return self.forward_packed(emb, src_len)

    def forward_packed(
        self, emb: torch.Tensor, src_len: torch.Tensor
    ) -> tuple[torch.Tensor, Hidden]:
        """Any RNN over the packed batch of embeddings ``emb`` (B, S, E)."""
        packed = pack_padded_sequence(emb, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=emb.size(1))
        if self.bidirectional:  # (layers*2, B, H/2) -> (layers, B, H): concatenate directions
            hidden = map_hidden(
                lambda h: torch.cat([h[0::2], h[1::2]], dim=-1).contiguous(), hidden
            )
        return out, hidden

    def forward_padded(
        self, emb: torch.Tensor, src_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A one-layer (bi)GRU over the padded batch, equal to packing it: a position never sees
        the padding after it, the backward direction reads each source reversed within its
        length, and the final states are the outputs at each direction's last real token. On CPU
        about 1.1x (bidirectional) to 1.4x faster than a packed sequence."""
        batch, steps = emb.shape[:2]
        lengths, positions = src_len.to(emb.device), torch.arange(steps, device=emb.device)
        real, rows = positions < lengths[:, None], torch.arange(batch, device=emb.device)
        weights = self.rnn._flat_weights
        out = self._gru(emb, weights[:4])
        last = out[rows, lengths - 1]
        if self.bidirectional:  # reverse each source within its length, padding left in place
            order = torch.where(real, lengths[:, None] - 1 - positions, positions)[..., None]
            back = self._gru(emb.gather(1, order.expand_as(emb)), weights[4:])
            back = back.gather(1, order.expand_as(back))
            out, last = torch.cat([out, back], dim=-1), torch.cat([last, back[:, 0]], dim=-1)
        return out * real[..., None], last[None].contiguous()

    def _gru(self, emb: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        """Outputs (B, S, h) of one direction of the GRU, from a zero state."""
        state = emb.new_zeros(1, emb.size(0), self.rnn.hidden_size)
        train = self.training and torch.is_grad_enabled()
        return torch._VF.gru(emb, state, weights, True, 1, 0.0, train, False, True)[0]
