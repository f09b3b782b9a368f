"""Decoding strategies by name (``strategy=`` of ``DecodingOptions``): greedy, beam and sampling.

A new strategy is one function with the ``Strategy`` signature and one line in ``STRATEGIES``;
``DecodingOptions`` accepts every registered name and the tests iterate the registry."""

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import torch

from seq2seq_nmt.decoding.search import (
    Hypothesis,
    beam_search,
    greedy_hypotheses,
    output_limits,
    run_decoder,
    sampler,
    to_hypotheses,
)
from seq2seq_nmt.model import Seq2Seq

if TYPE_CHECKING:  # options.py checks names against STRATEGIES
    from seq2seq_nmt.decoding.options import DecodingOptions


class Strategy(Protocol):
    """Decodes a batch: per sentence, its hypotheses best first (``options.nbest`` of them, or
    fewer where fewer distinct ones exist), each ending in EOS or cut at the sentence's limit."""

    def __call__(
        self, model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor,
        options: "DecodingOptions", generator: torch.Generator | None,
    ) -> list[list[Hypothesis]]: ...  # fmt: skip


def greedy(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor,
    options: "DecodingOptions", generator: torch.Generator | None,
) -> list[list[Hypothesis]]:  # fmt: skip
    """The most likely token at each step."""
    return greedy_hypotheses(model, src, src_len, limits, options.length_penalty)


def beam(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor,
    options: "DecodingOptions", generator: torch.Generator | None,
) -> list[list[Hypothesis]]:  # fmt: skip
    """Batched beam search with ``beam_size`` beams (``search.beam_search``)."""
    return beam_search(
        model, src, src_len, limits, options.beam_size, options.length_penalty, options.nbest
    )


def sample(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor,
    options: "DecodingOptions", generator: torch.Generator | None,
) -> list[list[Hypothesis]]:  # fmt: skip
    """``nbest`` independent samples per sentence (temperature, top-k, nucleus top-p), best
    scored first; each is scored by the model's own log-probabilities."""
    n = options.nbest
    pick = sampler(options.temperature, options.top_k, options.top_p, generator)
    rows = run_decoder(model, src, src_len, limits, pick, copies=n)
    hyps = to_hypotheses(*rows, limits.repeat_interleave(n), options.length_penalty)
    return [sorted(hyps[i : i + n], key=lambda h: -h.norm_score) for i in range(0, len(hyps), n)]


STRATEGIES: dict[str, Strategy] = {"greedy": greedy, "beam": beam, "sample": sample}


def generators(seed: int | None, device: torch.device) -> Iterator[torch.Generator | None]:
    """One generator on ``device`` per batch, seeded in turn from ``seed``'s stream, so a seed
    reproduces every batch; only None (the device's default generator) when ``seed`` is None."""
    if seed is None:
        return itertools.repeat(None)
    stream = torch.Generator().manual_seed(seed)
    return (
        torch.Generator(device).manual_seed(int(torch.randint(2**62, (), generator=stream)))
        for _ in itertools.count()
    )


def decode(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, options: "DecodingOptions",
    generator: torch.Generator | None = None,
) -> list[list[Hypothesis]]:  # fmt: skip
    """Decode a batch with ``options``' strategy, outputs limited by its ratio and offset."""
    limits = output_limits(src_len, options.max_output_ratio, options.max_output_offset)
    return STRATEGIES[options.strategy](model, src, src_len, limits, options, generator)
