"""Padding a list of encoded pairs into a batch-first batch (no Lightning import: translation uses it)."""

from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from seq2seq_nmt.data.vocab import PAD, SOS


def collate(items: list[tuple[np.ndarray, np.ndarray, str | None]]) -> dict[str, Any]:
    """Pad a batch (batch-first) and build the decoder input ``<sos> y`` and output ``y <eos>``."""
    src = [torch.from_numpy(s) for s, _, _ in items]
    tgt = [torch.from_numpy(t) for _, t, _ in items]
    tgt_out = pad_sequence(tgt, batch_first=True, padding_value=PAD)
    sos = torch.full((len(items), 1), SOS, dtype=tgt_out.dtype)
    tgt_in = torch.cat([sos, tgt_out[:, :-1]], dim=1).masked_fill(tgt_out == PAD, PAD)
    return {
        "src": pad_sequence(src, batch_first=True, padding_value=PAD),
        "src_len": torch.tensor([len(s) for s in src]),
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "tgt_tokens": sum(len(t) for t in tgt),  # target tokens (with <eos>), counted on the host
        "refs": [r for _, _, r in items] if items[0][2] is not None else None,
    }
