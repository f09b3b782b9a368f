"""The Luong decoder's run-at-once path equals the step-by-step loop for any teacher forcing."""

import functools

import pytest
import torch

from seq2seq_nmt.data.vocab import EOS, SOS
from seq2seq_nmt.model import Seq2Seq


@functools.cache
def copy_model(attention: str, cell: str) -> Seq2Seq:
    """A small model trained briefly to copy its source, so that its argmax varies by position."""
    torch.manual_seed(0)
    model = Seq2Seq(12, 12, 16, 32, num_layers=2, dropout=0.0, cell=cell, attention=attention)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        words = torch.randint(4, 12, (32, 5))
        src = torch.cat([words, torch.full((32, 1), EOS)], dim=1)
        tgt_in = torch.cat([torch.full((32, 1), SOS), words], dim=1)
        logits, _ = model(src, torch.full((32,), 6), tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), src.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def step_loop(model: Seq2Seq, src, src_len, tgt_in, forced: list[bool]) -> torch.Tensor:
    """Reference: one ``model.step`` per position, feeding the reference or the argmax."""
    memory, hidden = model.encode(src, src_len)
    logits, y = [], tgt_in[:, 0]
    for t in range(tgt_in.size(1)):
        out, hidden, _ = model.step(y, hidden, memory)
        logits.append(out)
        if t + 1 < tgt_in.size(1):
            y = tgt_in[:, t + 1] if forced[t + 1] else out.argmax(-1)
    return torch.stack(logits, dim=1)


@pytest.mark.parametrize("attention", ["luong_general", "luong_dot"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize(
    "forced",
    [[True, False, True, True, False, True], [True, True, True, False, False, True],
     [True, True, True, True, True, False], [True] + [False] * 5],
)  # fmt: skip
def test_runs_of_forced_steps_equal_the_step_loop(monkeypatch, attention, cell, forced):
    model = copy_model(attention, cell)
    src = torch.tensor([[5, 6, 7, 8, 9, EOS], [11, 10, 9, 8, 7, EOS]])
    src_len = torch.tensor([6, 6])
    tgt_in = torch.tensor([[SOS, 4, 4, 4, 4, 4], [SOS, 4, 4, 4, 4, 4]])  # wrong on purpose
    expected = step_loop(model, src, src_len, tgt_in, forced)
    assert len(set(expected[0].argmax(-1).tolist())) > 2  # the free inputs differ by position
    draws = torch.tensor([0.0 if f else 1.0 for f in forced])  # forced where draw < ratio
    monkeypatch.setattr(torch, "rand", lambda *_: draws)
    logits, attn = model(src, src_len, tgt_in, teacher_forcing_ratio=0.5)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert attn.shape == (2, 6, 6) and torch.allclose(attn.sum(-1), torch.ones(2, 6))
