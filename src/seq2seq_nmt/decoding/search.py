"""Decoding: the batched step loop (greedy search, sampling) and batched beam search."""

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from seq2seq_nmt.data.vocab import EOS, PAD, SOS
from seq2seq_nmt.model import Seq2Seq
from seq2seq_nmt.model.encoder import Hidden, map_hidden


def output_limits(src_len: torch.Tensor, ratio: float = 1.5, offset: int = 5) -> torch.Tensor:
    """Longest output allowed per sentence: ``ratio * source length + offset`` tokens."""
    return (src_len.float() * ratio).ceil().long() + offset


# decoder steps between two checks whether the whole batch has ended, each check a device->host
# sync (free on the CPU); the step loops of the searches never wait for the device otherwise
CHECK_EVERY: dict[str, int] = {"cpu": 1, "cuda": 8}


def _check_every(device: torch.device) -> int:
    """Steps between the early-exit checks of a search on ``device`` (8 where unlisted)."""
    return CHECK_EVERY.get(device.type, 8)


# a step's choice: the next token of each row from its logits (R, V)
Pick = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def run_decoder(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor, pick: Pick,
    copies: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Decode ``copies`` rows per sentence (sentence b's rows are ``b*copies ..``, sharing its
    encoder memory), each next token chosen by ``pick``: tokens (R, L) padded after EOS,
    attention weights (R, L, S) and each token's log-probability under the model (R, L; 0
    after EOS)."""
    memory, hidden = model.encode(src, src_len)
    limits, every = limits.to(src.device), _check_every(src.device)
    if copies > 1:
        rows = torch.arange(src.size(0), device=src.device).repeat_interleave(copies)
        hidden, limits = _select(hidden, rows), limits[rows]
    y = torch.full(limits.shape, SOS, dtype=torch.long, device=src.device)
    done, length = torch.zeros_like(y, dtype=torch.bool), torch.zeros_like(y)
    tokens, attns, logps = [], [], []
    for t in range(int(limits.max())):
        logits, hidden, w = model.step(y, hidden, memory)
        y = pick(logits)
        logp = logits.gather(1, y[:, None])[:, 0] - logits.logsumexp(-1)
        y, logp = y.masked_fill(done, PAD), logp.masked_fill(done, 0.0)
        tokens.append(y)
        attns.append(w)
        logps.append(logp)
        length += ~done
        done |= (y == EOS) | (t + 1 >= limits)
        if (t + 1) % every == 0 and bool(done.all()):
            break
    steps = int(length.max())  # the loop may have run on until its next check
    out_tokens, attn, logp = (torch.stack(x, dim=1)[:, :steps] for x in (tokens, attns, logps))
    return out_tokens, attn, logp


def greedy(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy decoding of a batch: tokens (B, L) padded after EOS, attention weights (B, L, S)
    and each token's log-probability (B, L; 0 after EOS)."""
    return run_decoder(model, src, src_len, limits, lambda logits: logits.argmax(-1))


def sampler(
    temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Pick:  # fmt: skip
    """A ``Pick`` drawing each row's next token from softmax(logits / ``temperature``), cut to
    its ``top_k`` most likely tokens (0: all) and to the nucleus of mass ``top_p`` (the fewest
    most likely tokens whose mass reaches it; 1: all), with ``generator`` (None: the device's
    default). Draws as ``torch.multinomial`` draws one sample, without its validity checks
    (which some torch versions read on the host): argmax of ``p / Exp(1)`` noise."""

    def pick(logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float() / temperature
        if top_k:
            kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = logits.softmax(-1)
        if top_p < 1.0:
            sorted_probs, order = probs.sort(-1, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # mass before it reaches p
            probs = probs.masked_fill(outside.scatter(-1, order, outside), 0.0)
        noise = torch.empty_like(probs).exponential_(generator=generator)
        return (probs / noise.clamp_min(torch.finfo(noise.dtype).tiny)).argmax(-1)

    return pick


@dataclass
class Hypothesis:
    """One output: tokens (ending in EOS unless cut at the length limit), scores, attention."""

    tokens: list[int]
    score: float  # sum of the tokens' log-probabilities
    norm_score: float  # score / length penalty: what beam search ranks by
    attn: torch.Tensor  # (len(tokens), S) attention weights over the (padded) source


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's ``((5 + length) / 6) ** alpha``; alpha = 0 ranks by the plain sum of log-probs."""
    return ((5 + length) / 6) ** alpha


def to_hypotheses(
    tokens: torch.Tensor, attn: torch.Tensor, logp: torch.Tensor, limits: torch.Tensor,
    alpha: float = 1.0,
) -> list[Hypothesis]:  # fmt: skip
    """``run_decoder``'s rows as scored hypotheses, each cut after EOS or at its limit."""
    scores, out = logp.float().sum(1).tolist(), []  # log-probs are 0 after EOS or the limit
    for toks, w, score, limit in zip(tokens.tolist(), attn, scores, limits.tolist(), strict=True):
        toks = toks[:limit]
        n = toks.index(EOS) + 1 if EOS in toks else limit
        out.append(Hypothesis(toks[:n], score, score / length_penalty(n, alpha), w[:n]))
    return out


def greedy_hypotheses(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor,
    alpha: float = 1.0,
) -> list[list[Hypothesis]]:  # fmt: skip
    """Greedy decoding as one scored hypothesis per sentence, cut after EOS or at its limit."""
    return [[h] for h in to_hypotheses(*greedy(model, src, src_len, limits), limits, alpha)]


def _select(hidden: Hidden, rows: torch.Tensor) -> Hidden:
    """The batch rows ``rows`` of a GRU/LSTM hidden state (layers, B, H)."""
    return map_hidden(lambda h: h.index_select(1, rows), hidden)


@dataclass
class _Finished:
    """Each sentence's k slots for finished hypotheses, on the device: scores and lengths (n, k;
    length 0: a free slot), tokens (n, k, L) and attention (n, k, L, S)."""

    score: torch.Tensor
    length: torch.Tensor
    tokens: torch.Tensor
    attn: torch.Tensor

    @classmethod
    def empty(cls, n: int, k: int, attns: torch.Tensor) -> "_Finished":
        """No hypothesis yet, for beams whose attention is ``attns`` (n*k, L, S)."""
        score = torch.zeros(n, k, device=attns.device)
        tokens = torch.full((n, k, attns.size(1)), PAD, dtype=torch.long, device=attns.device)
        length = torch.zeros_like(score, dtype=torch.long)
        return cls(score, length, tokens, attns.new_zeros(n, k, *attns.shape[1:]))

    def add(
        self, take: torch.Tensor, score: torch.Tensor, row: torch.Tensor, tok: torch.Tensor,
        tokens: torch.Tensor, attns: torch.Tensor, t: int,
    ) -> None:  # fmt: skip
        """Fill each sentence's free slots, in order, with its candidates (n, c) where ``take``
        while slots are left. Candidate j is beam ``row[:, j]`` (a row of ``tokens`` (n*k, L) and
        of ``attns`` (n*k, L, S), which holds step t's attention) extended by ``tok[:, j]`` at
        step t, scored ``score[:, j]``."""
        k = self.score.size(1)
        slot = (self.length > 0).sum(1, keepdim=True) + take.long().cumsum(1) - 1
        place = take[..., None] & (slot[..., None] == torch.arange(k, device=slot.device))
        filled, pick = place.any(1), place.long().argmax(1)  # (n, k): the candidate put there
        row, shape = row.gather(1, pick).flatten(), (*pick.shape, -1)
        new_tokens = tokens[row].view(shape)
        new_tokens[:, :, t] = tok.gather(1, pick)
        self.score = torch.where(filled, score.gather(1, pick), self.score)
        self.length = self.length.masked_fill(filled, t + 1)
        self.tokens = torch.where(filled[..., None], new_tokens, self.tokens)
        self.attn = torch.where(
            filled[..., None, None], attns[row].view(*shape, attns.size(-1)), self.attn
        )

    def hypotheses(self, alpha: float) -> list[list[Hypothesis]]:
        """The finished hypotheses as Python objects (a few syncs, after the search)."""
        scores, lengths, tokens = self.score.tolist(), self.length.tolist(), self.tokens.tolist()
        return [
            [Hypothesis(toks[:m], s, s / length_penalty(m, alpha), w[:m])
             for s, m, toks, w in zip(ss, ms, ts, ws, strict=True) if m]
            for ss, ms, ts, ws in zip(scores, lengths, tokens, self.attn, strict=True)
        ]  # fmt: skip


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: torch.Tensor,
    src_len: torch.Tensor,
    limits: torch.Tensor,
    beam_size: int = 5,
    alpha: float = 1.0,
    nbest: int = 1,
) -> list[list[Hypothesis]]:
    """Beam search over a whole batch at once: per sentence, its ``nbest`` best hypotheses.

    Each sentence has ``beam_size`` rows, which share its encoder memory. A step keeps the best
    ``beam_size`` continuations that do not end in EOS; one ending in EOS that ranks within the
    best ``beam_size`` is finished. A sentence is done once it has ``beam_size`` finished
    hypotheses (or reaches its length limit, where live beams count as finished); it is still
    computed, masked, until all are done, which is checked every ``CHECK_EVERY`` steps: the step
    loop never waits for the device otherwise. Greedy search's output is a candidate too, so the
    best hypothesis never scores below greedy's (beam search alone can prune the greedy path).
    Hypotheses are ranked by ``norm_score`` (GNMT length penalty alpha).
    """
    k, n, device = beam_size, src.size(0), src.device
    limits, every = limits.to(device), _check_every(device)
    steps = int(limits.max())
    memory, hidden = model.encode(src, src_len)
    # the first step is the same for all beams of a sentence: run it once, then copy it
    first = model.step(torch.full((n,), SOS, dtype=torch.long, device=device), hidden, memory)
    rows = torch.arange(n, device=device).repeat_interleave(k)
    logits, hidden, w = first[0][rows], _select(first[1], rows), first[2][rows]
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the beams start identical: expand only the first
    tokens = torch.full((n * k, steps), PAD, dtype=torch.long, device=device)
    attns = w.new_zeros(n * k, steps, w.size(-1))
    done = _Finished.empty(n, k, attns)
    base = torch.arange(0, n * k, k, device=device)[:, None]
    for t in range(steps):
        attns[:, t] = w
        vocab = logits.size(-1)
        cand = (scores[:, :, None] + logits.log_softmax(-1).view(n, k, vocab)).view(n, k * vocab)
        top, idx = cand.topk(min(2 * k, k * vocab), dim=1)  # (n, 2k), best first
        tok, row = idx % vocab, idx.div(vocab, rounding_mode="floor") + base
        # the best k continuations that are not EOS (at most k of the 2k candidates are EOS)
        is_eos, span = tok == EOS, torch.arange(top.size(1), device=device)
        keep = (is_eos.long() * top.size(1) + span).argsort(dim=1)[:, :k]
        # finished: EOS within the best k, then the kept beams of sentences at their limit
        ended = torch.cat([is_eos[:, :k], (t + 1 >= limits)[:, None].expand(n, k)], dim=1)
        picks = torch.cat([span[:k].expand(n, k), keep], dim=1)
        top, row, tok = top.gather(1, picks), row.gather(1, picks), tok.gather(1, picks)
        done.add(ended, top, row, tok, tokens, attns, t)
        scores, row, tok = top[:, k:], row[:, k:].flatten(), tok[:, k:]
        tokens, attns, hidden, y = tokens[row], attns[row], _select(hidden, row), tok.flatten()
        tokens[:, t] = y
        if t + 1 == steps or (t + 1) % every == 0 and bool(done.length.all()):
            break
        logits, hidden, w = model.step(y, hidden, memory)
    greedy_hyps = greedy_hypotheses(model, src, src_len, limits, alpha)
    return [_best(h + g, nbest) for h, g in zip(done.hypotheses(alpha), greedy_hyps, strict=True)]


def _best(hyps: list[Hypothesis], nbest: int) -> list[Hypothesis]:
    """The ``nbest`` best distinct hypotheses (greedy's output may repeat a beam's), their
    attention copied out of the search's buffers."""
    out, seen = [], set()
    for h in sorted(hyps, key=lambda h: -h.norm_score):
        if tuple(h.tokens) not in seen and len(out) < nbest:
            seen.add(tuple(h.tokens))
            out.append(replace(h, attn=h.attn.clone()))
    return out
