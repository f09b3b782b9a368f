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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy decoding of a batch: tokens (B, L) padded after EOS, attention weights (B, L, S)
    and each token's log-probability (B, L; 0 after EOS)."""
    memory, hidden = model.encode(src, src_len)
    limits = limits.to(src.device)
    y = torch.full((src.size(0),), SOS, dtype=torch.long, device=src.device)
    done = torch.zeros_like(y, dtype=torch.bool)
    tokens, attns, logps = [], [], []
    for t in range(int(limits.max())):
        logits, hidden, w = model.step(y, hidden, memory)
        best, y = logits.max(-1)
        logp = best - logits.logsumexp(-1)
        y, logp = y.masked_fill(done, PAD), logp.masked_fill(done, 0.0)
        tokens.append(y)
        attns.append(w)
        logps.append(logp)
        done |= (y == EOS) | (t + 1 >= limits)
        if bool(done.all()):
            break
    return torch.stack(tokens, dim=1), torch.stack(attns, dim=1), torch.stack(logps, dim=1)


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


def greedy_hypotheses(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, limits: torch.Tensor,
    alpha: float = 1.0,
) -> list[list[Hypothesis]]:  # fmt: skip
    """Greedy decoding as one scored hypothesis per sentence, cut after EOS or at its limit."""
    tokens, attn, logp = greedy(model, src, src_len, limits)
    out = []
    for toks, w, lp, limit in zip(tokens.tolist(), attn, logp, limits.tolist(), strict=True):
        toks = toks[:limit]
        n = toks.index(EOS) + 1 if EOS in toks else limit
        score = float(lp[:n].sum())
        out.append([Hypothesis(toks[:n], score, score / length_penalty(n, alpha), w[:n])])
    return out


def _select(hidden: Hidden, rows: torch.Tensor) -> Hidden:
    """The batch rows ``rows`` of a GRU/LSTM hidden state (layers, B, H)."""
    return map_hidden(lambda h: h.index_select(1, rows), hidden)


GREEDY_DONE, GREEDY_LOST = -1, -2  # greedy's output is recorded / is no longer in the beam


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
    best ``beam_size`` is finished. A sentence leaves the batch once it has ``beam_size`` finished
    hypotheses (or reaches its length limit, where live beams count as finished). Greedy search's
    output is a candidate too, so the best hypothesis never scores below greedy's (beam search
    alone can prune the greedy path): it is followed inside the beam while its prefix is a beam,
    and decoded on its own for the few sentences where it drops out. Hypotheses are ranked by
    ``norm_score`` (GNMT length penalty alpha).
    """
    k, n, device = beam_size, src.size(0), src.device
    memory, hidden = model.encode(src, src_len)
    # the first step is the same for all beams of a sentence: run it once, then copy it
    first = model.step(torch.full((n,), SOS, dtype=torch.long, device=device), hidden, memory)
    rows = torch.arange(n, device=device).repeat_interleave(k)
    logits, hidden, w = first[0][rows], _select(first[1], rows), first[2][rows]
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the beams start identical: expand only the first
    tokens = torch.empty(n * k, 0, dtype=torch.long, device=device)
    attns = torch.empty(n * k, 0, src.size(1), device=device)
    alive, limits_l = list(range(n)), limits.tolist()
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    from_beams, g_slot = [0] * n, [0] * n  # g_slot: the beam holding greedy's prefix

    def finish(sent: int, row: int, score: float, last: int) -> None:
        """Record the hypothesis of (pre-step) ``row`` extended by token ``last``."""
        toks = tokens[row].tolist() + [last]
        attn = torch.cat([attns[row], w[row, None]])
        finished[sent].append(
            Hypothesis(toks, score, score / length_penalty(len(toks), alpha), attn)
        )

    for t in range(max(limits_l)):
        m, vocab, span = len(alive), logits.size(-1), torch.arange(len(alive), device=device)
        logp = logits.log_softmax(-1).view(m, k, vocab)
        # greedy's next token and score, read off the beam that holds its prefix
        g_old = [g_slot[s] for s in alive]
        gs = torch.tensor([max(g, 0) for g in g_old], device=device)
        g_lp, g_tok = logp[span, gs].max(-1)
        g_score = scores[span, gs] + g_lp
        cand = (scores[:, :, None] + logp).view(m, k * vocab)
        top, idx = cand.topk(min(2 * k, k * vocab), dim=1)  # (m, 2k), best first
        tok, slot = idx % vocab, idx.div(vocab, rounding_mode="floor")
        is_eos = tok == EOS
        # the best k continuations that are not EOS (at most k of the 2k candidates are EOS)
        order = is_eos.long() * top.size(1) + torch.arange(top.size(1), device=device)
        keep = order.argsort(dim=1)[:, :k]
        ended = is_eos[:, :k].nonzero().tolist()
        if ended:  # EOS within the best k: a finished hypothesis
            best, slots = top.tolist(), slot.tolist()
            for i, j in ended:
                if from_beams[alive[i]] < k:
                    finish(alive[i], i * k + slots[i][j], best[i][j], EOS)
                    from_beams[alive[i]] += 1
        scores, slot, tok = top.gather(1, keep), slot.gather(1, keep), tok.gather(1, keep)
        at_limit = [t + 1 >= limits_l[s] for s in alive]
        if any(g >= 0 for g in g_old):
            g_next = ((slot == gs[:, None]) & (tok == g_tok[:, None])).long()
            g_next = torch.where(g_next.any(1), g_next.argmax(1), GREEDY_LOST).tolist()
            g_toks, g_best = g_tok.tolist(), g_score.tolist()
            for i, s in enumerate(alive):
                if g_old[i] < 0:
                    continue
                if g_toks[i] == EOS or at_limit[i]:  # greedy's output ends here: a candidate
                    finish(s, i * k + g_old[i], g_best[i], g_toks[i])
                    g_slot[s] = GREEDY_DONE
                else:
                    g_slot[s] = g_next[i]
        row = slot + span[:, None] * k
        cut = [i for i, s in enumerate(alive) if at_limit[i] and from_beams[s] < k]
        if cut:  # live beams at the limit become outputs
            best, rows_l, last = scores.tolist(), row.tolist(), tok.tolist()
            for i in cut:
                for b in range(k - from_beams[alive[i]]):
                    finish(alive[i], rows_l[i][b], best[i][b], last[i][b])
                from_beams[alive[i]] = k
        row = row.flatten()
        tokens = torch.cat([tokens[row], tok.view(-1, 1)], dim=1)
        attns = torch.cat([attns[row], w[row, None]], dim=1)
        hidden, y = _select(hidden, row), tok.flatten()
        stay = [i for i, s in enumerate(alive) if from_beams[s] < k]
        for s in (s for i, s in enumerate(alive) if from_beams[s] >= k and g_slot[s] >= 0):
            g_slot[s] = GREEDY_LOST  # the beams are done before greedy is
        if not stay:
            break
        if len(stay) < m:
            alive, sel = [alive[i] for i in stay], torch.tensor(stay, device=device)
            rows = (sel[:, None] * k + torch.arange(k, device=device)).flatten()
            scores, y, tokens, attns = scores[sel], y[rows], tokens[rows], attns[rows]
            memory, hidden = memory.index_select(sel), _select(hidden, rows)
        logits, hidden, w = model.step(y, hidden, memory)
    lost = [s for s in range(n) if g_slot[s] == GREEDY_LOST]
    if lost:  # greedy dropped out of the beam here: decode it on its own
        sel = torch.tensor(lost)
        sub = src[sel.to(device)], src_len[sel.to(src_len.device)], limits[sel.to(limits.device)]
        hyps = greedy_hypotheses(model, *sub, alpha=alpha)
        for s, h in zip(lost, hyps, strict=True):
            finished[s] += h
    return [_best(h, nbest) for h in finished]


def _best(hyps: list[Hypothesis], nbest: int) -> list[Hypothesis]:
    """The ``nbest`` best distinct hypotheses (the greedy row may repeat a beam's output)."""
    out, seen = [], set()
    for h in sorted(hyps, key=lambda h: -h.norm_score):
        if tuple(h.tokens) not in seen and len(out) < nbest:
            seen.add(tuple(h.tokens))
            out.append(h)
    return out
