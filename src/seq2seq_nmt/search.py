"""Decoding: batched greedy search and batched beam search."""

from dataclasses import dataclass

import torch

from .data.vocab import EOS, PAD, SOS
from .model import Seq2Seq
from .model.encoder import Hidden, map_hidden


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


@dataclass
class Hypothesis:
    """One output: tokens (ending in EOS unless cut at the length limit), scores, attention."""

    tokens: list[int]
    score: float  # sum of the tokens' log-probabilities (nan for greedy, which does not score)
    norm_score: float  # score / length penalty: what beam search ranks by
    attn: torch.Tensor  # (len(tokens), S) attention weights over the (padded) source


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's ``((5 + length) / 6) ** alpha``; alpha = 0 ranks by the plain sum of log-probs."""
    return ((5 + length) / 6) ** alpha


def _select(hidden: Hidden, rows: torch.Tensor) -> Hidden:
    """The batch rows ``rows`` of a GRU/LSTM hidden state (layers, B, H)."""
    return map_hidden(lambda h: h.index_select(1, rows), hidden)


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

    Each sentence has ``beam_size`` beam rows and one greedy row. A step keeps the best
    ``beam_size`` continuations that do not end in EOS; one ending in EOS that ranks within the
    best ``beam_size`` is finished. The greedy row follows the argmax, and its output is a
    candidate too, so the best hypothesis never scores below greedy search's (beam search alone
    can prune the greedy path). A sentence leaves the batch once its beams have ``beam_size``
    finished hypotheses (or reach its length limit, where live beams count as finished) and its
    greedy row is finished. Hypotheses are ranked by ``norm_score`` (GNMT length penalty alpha).
    """
    k, n, device = beam_size, src.size(0), src.device
    width = k + 1  # rows per sentence: k beams, then the greedy row
    memory, hidden = model.encode(src, src_len)
    rows = torch.arange(n, device=device).repeat_interleave(width)
    memory, hidden = memory.index_select(rows), _select(hidden, rows)
    scores = torch.full((n, width), float("-inf"), device=device)
    scores[:, [0, k]] = 0.0  # the beams start identical: expand only the first
    y = torch.full((n * width,), SOS, dtype=torch.long, device=device)
    tokens = torch.empty(n * width, 0, dtype=torch.long, device=device)
    attns = torch.empty(n * width, 0, src.size(1), device=device)
    alive, limits = list(range(n)), limits.tolist()
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    from_beams, greedy_open = [0] * n, [True] * n

    def finish(sent: int, row: int, score: float, last: int, w: torch.Tensor) -> None:
        toks = tokens[row].tolist() + [last]
        attn = torch.cat([attns[row], w[row, None]])
        finished[sent].append(
            Hypothesis(toks, score, score / length_penalty(len(toks), alpha), attn)
        )

    for t in range(max(limits)):
        logits, hidden, w = model.step(y, hidden, memory)
        m, vocab = len(alive), logits.size(-1)
        logp = logits.log_softmax(-1).view(m, width, vocab)
        base = torch.arange(m, device=device)[:, None] * width
        cand = (scores[:, :k, None] + logp[:, :k]).view(m, k * vocab)
        top, idx = cand.topk(min(2 * k, k * vocab), dim=1)  # (m, 2k), best first
        tok, cand_row = idx % vocab, idx.div(vocab, rounding_mode="floor") + base
        is_eos = tok == EOS
        # the best k continuations that are not EOS (at most k of the 2k candidates are EOS)
        order = is_eos.long() * top.size(1) + torch.arange(top.size(1), device=device)
        keep = order.argsort(dim=1)[:, :k]
        g_logp, g_tok = logp[:, k].max(-1)
        scores = torch.cat([top.gather(1, keep), (scores[:, k] + g_logp)[:, None]], dim=1)
        row = torch.cat([cand_row.gather(1, keep), base + k], dim=1)
        tok = torch.cat([tok.gather(1, keep), g_tok[:, None]], dim=1)
        ended = is_eos[:, :k].nonzero().tolist()
        if ended:  # EOS within the best k: a finished hypothesis
            best, rows_l = top.tolist(), cand_row.tolist()
            for i, j in ended:
                if from_beams[alive[i]] < k:
                    finish(alive[i], rows_l[i][j], best[i][j], EOS, w)
                    from_beams[alive[i]] += 1
        at_limit = [t + 1 >= limits[s] for s in alive]
        g_ends = [
            greedy_open[s] and (e or a)
            for s, e, a in zip(alive, (g_tok == EOS).tolist(), at_limit, strict=True)
        ]
        cut = [i for i, s in enumerate(alive) if at_limit[i] and from_beams[s] < k]
        if cut or any(g_ends):  # live beams at the limit and ending greedy rows become outputs
            best, rows_l, last = scores.tolist(), row.tolist(), tok.tolist()
            for i in cut:
                for b in range(k - from_beams[alive[i]]):
                    finish(alive[i], rows_l[i][b], best[i][b], last[i][b], w)
                from_beams[alive[i]] = k
            for i in (i for i, e in enumerate(g_ends) if e):
                finish(alive[i], rows_l[i][k], best[i][k], last[i][k], w)
                greedy_open[alive[i]] = False
        row = row.flatten()
        tokens = torch.cat([tokens[row], tok.view(-1, 1)], dim=1)
        attns = torch.cat([attns[row], w[row, None]], dim=1)
        hidden, y = _select(hidden, row), tok.flatten()
        stay = [i for i, s in enumerate(alive) if from_beams[s] < k or greedy_open[s]]
        if len(stay) == m:
            continue
        if not stay:
            break
        alive, sel = [alive[i] for i in stay], torch.tensor(stay, device=device)
        rows = (sel[:, None] * width + torch.arange(width, device=device)).flatten()
        scores, y, tokens, attns = scores[sel], y[rows], tokens[rows], attns[rows]
        memory, hidden = memory.index_select(rows), _select(hidden, rows)
    return [_best(h, nbest) for h in finished]


def _best(hyps: list[Hypothesis], nbest: int) -> list[Hypothesis]:
    """The ``nbest`` best distinct hypotheses (the greedy row may repeat a beam's output)."""
    out, seen = [], set()
    for h in sorted(hyps, key=lambda h: -h.norm_score):
        if tuple(h.tokens) not in seen and len(out) < nbest:
            seen.add(tuple(h.tokens))
            out.append(h)
    return out
