"""Several models decoding as one: the mean of their log-probabilities at every step."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from seq2seq_nmt.model import Seq2Seq
from seq2seq_nmt.model.decoder import Memory
from seq2seq_nmt.model.encoder import Hidden, map_hidden


@dataclass
class EnsembleMemory:
    """Each model's encoder memory; ``index_select`` as on one ``Memory``."""

    parts: list[Memory]

    def index_select(self, idx: torch.Tensor) -> "EnsembleMemory":
        return EnsembleMemory([m.index_select(idx) for m in self.parts])


@dataclass
class EnsembleHidden:
    """Each model's decoder state; ``index_select(dim, rows)`` as on a GRU state tensor, so the
    search's ``map_hidden`` selects beam rows of all models at once."""

    parts: list[Hidden]

    def index_select(self, dim: int, idx: torch.Tensor) -> "EnsembleHidden":
        return EnsembleHidden(
            [map_hidden(lambda h: h.index_select(dim, idx), p) for p in self.parts]
        )


class Ensemble(nn.Module):
    """Models sharing vocabularies, with ``Seq2Seq``'s ``encode``/``step`` interface.

    ``step`` returns the mean of the models' log-probabilities as logits (the search's log_softmax
    then decodes with their normalised geometric mean) and the mean of their attention weights.
    """

    def __init__(self, models: Sequence[Seq2Seq]):
        super().__init__()
        self.models = nn.ModuleList(models)
        limits = [m.max_length for m in models if m.max_length is not None]
        self.max_length = min(limits) if limits else None

    def encode(
        self, src: torch.Tensor, src_len: torch.Tensor
    ) -> tuple[EnsembleMemory, EnsembleHidden]:
        encoded = [m.encode(src, src_len) for m in self.models]
        return EnsembleMemory([m for m, _ in encoded]), EnsembleHidden([h for _, h in encoded])

    def step(
        self, y: torch.Tensor, hidden: EnsembleHidden, memory: EnsembleMemory
    ) -> tuple[torch.Tensor, EnsembleHidden, torch.Tensor]:
        """Mean log-probabilities (B, V), each model's new hidden state, mean attention (B, S)."""
        steps = [
            m.step(y, h, mem)
            for m, h, mem in zip(self.models, hidden.parts, memory.parts, strict=True)
        ]
        logp = torch.stack([logits.log_softmax(-1) for logits, _, _ in steps]).mean(0)
        attn = torch.stack([w for _, _, w in steps]).mean(0)
        return logp, EnsembleHidden([h for _, h, _ in steps]), attn
