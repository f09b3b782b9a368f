"""Decoding: batched greedy search (beam search lives beside it)."""

import torch

from .data.vocab import EOS, PAD, SOS
from .model import Seq2Seq


def output_limits(src_len: torch.Tensor, ratio: float = 1.5, offset: int = 5) -> torch.Tensor:
    """Longest output allowed per sentence: ``ratio * source length + offset`` tokens."""
    return (src_len.float() * ratio).ceil().long() + offset


@torch.no_grad()
def greedy(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding of a batch: tokens (B, L) padded after EOS, attention weights (B, L, S)."""
    memory, hidden = model.encode(src, src_len)
    limits = limits.to(src.device)
    y = torch.full((src.size(0),), SOS, dtype=torch.long, device=src.device)
    done = torch.zeros_like(y, dtype=torch.bool)
    tokens, attns = [], []
    for t in range(int(limits.max())):
        logits, hidden, w = model.step(y, hidden, memory)
        y = logits.argmax(-1).masked_fill(done, PAD)
        tokens.append(y)
        attns.append(w)
        done |= (y == EOS) | (t + 1 >= limits)
        if bool(done.all()):
            break
    return torch.stack(tokens, dim=1), torch.stack(attns, dim=1)
