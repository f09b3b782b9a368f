"""Sync-free searches (greedy, sampling, beam): their step loops never wait for the device (only
every ``CHECK_EVERY`` steps), their outputs do not depend on how often they check, and beam
search still keeps, finishes and scores hypotheses as an unbatched reference search does."""

import functools
import warnings
from collections.abc import Callable

import pytest
import torch

from seq2seq_nmt.data.vocab import EOS, PAD, SOS
from seq2seq_nmt.decoding import search
from seq2seq_nmt.decoding.ensemble import Ensemble
from seq2seq_nmt.decoding.search import beam_search, greedy, greedy_hypotheses, length_penalty
from seq2seq_nmt.model import Seq2Seq

# calls that wait for the device (on CUDA) or branch on a tensor's value in Python
SYNCS = (
    "item",
    "tolist",
    "nonzero",
    "cpu",
    "numpy",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
)
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def make(attention: str, cell: str, eos_bias: float, seed: int = 0, **kw) -> Seq2Seq:
    """A small random model with sharpened outputs; ``eos_bias`` makes them end early (> 0) or
    late (< 0)."""
    torch.manual_seed(seed)
    model = Seq2Seq(30, 25, emb_size=16, hidden_size=16, dropout=0.0, cell=cell,
                    attention=attention, **kw).eval()  # fmt: skip
    with torch.no_grad():
        model.generator.weight.mul_(6.0)
        model.generator.bias[EOS] += eos_bias
    return model


MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    "bahdanau-lstm": lambda: make("bahdanau", "lstm", 1.0),
    "luong-gru": lambda: make("luong_general", "gru", 0.5),
    "input-feeding": lambda: make("luong_dot", "lstm", 0.0, input_feeding=True, num_layers=2),
    "ensemble": lambda: Ensemble(
        [make("bahdanau", "lstm", 1.0, seed=1), make("luong_general", "gru", 0.5, seed=2)]
    ),
}


def early_ending() -> Seq2Seq:
    """A model whose greedy and beam searches end well before the limits of ``random_batch``."""
    return make("luong_general", "gru", 1.0)


def random_batch(seed: int, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random sources of 2 to 9 tokens (EOS included), padded."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 10, (n,), generator=gen)
    src = torch.full((n, int(lengths.max())), PAD)
    for i, m in enumerate(lengths.tolist()):
        src[i, : m - 1] = torch.randint(4, 30, (m - 1,), generator=gen)
        src[i, m - 1] = EOS
    return src, lengths


def next_logp(model: torch.nn.Module, src: torch.Tensor) -> Callable[[tuple], torch.Tensor]:
    """Log-probabilities (V,) of the token after any output prefix of one source (B=1),
    from a decoder step per prefix token (memoised)."""
    memory, start = model.encode(src, torch.tensor([src.size(1)]))

    @functools.cache
    def state(prefix: tuple[int, ...]) -> tuple[torch.Tensor, object]:
        hidden, y = (start, SOS) if not prefix else (state(prefix[:-1])[1], prefix[-1])
        logits, hidden, _ = model.step(torch.tensor([y]), hidden, memory)
        return logits.log_softmax(-1)[0], hidden

    return lambda prefix: state(prefix)[0]


def score(logp: Callable[[tuple], torch.Tensor], tokens: list[int]) -> float:
    """Sum of the log-probabilities of ``tokens``."""
    return sum(float(logp(tuple(tokens[:i]))[t]) for i, t in enumerate(tokens))


def reference_beam(logp, limit: int, k: int, alpha: float, extra: list[int]) -> list[list[int]]:
    """Beam search for one sentence, hypothesis by hypothesis: the k best non-EOS continuations
    live on, EOS within the best k finishes, live beams finish at the limit; ``extra`` (greedy's
    output) is a candidate too. The k best distinct outputs by length-penalised score."""
    live, done = [(0.0, ())], []
    for t in range(limit):
        cands = sorted(((s + float(x), p + (v,)) for s, p in live
                        for v, x in enumerate(logp(p))), key=lambda c: -c[0])  # fmt: skip
        done += [c for c in cands[:k] if c[1][-1] == EOS][: k - len(done)]
        live = [c for c in cands if c[1][-1] != EOS][:k]
        if t + 1 == limit:
            done += live[: k - len(done)]
        if len(done) >= k:
            break
    done.append((score(logp, extra), tuple(extra)))
    ranked = sorted(done, key=lambda c: -c[0] / length_penalty(len(c[1]), alpha))
    return [list(p) for p in dict.fromkeys(p for _, p in ranked)][:k]


def assert_forced_decode(model, src: torch.Tensor, src_len: torch.Tensor, h) -> None:
    """``h``'s score and attention rows equal a one-sentence decode forced along its tokens."""
    memory, hidden = model.encode(src, src_len)
    total = 0.0
    for t, (y, tok) in enumerate(zip([SOS, *h.tokens[:-1]], h.tokens, strict=True)):
        logits, hidden, w = model.step(torch.tensor([y]), hidden, memory)
        total += float(logits.log_softmax(-1)[0, tok])
        torch.testing.assert_close(h.attn[t], w[0], atol=1e-5, rtol=1e-4)
    assert h.score == pytest.approx(total, abs=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
@torch.no_grad()
def test_beam_search_finds_what_an_unbatched_reference_finds(name):
    model, k, alpha = MODELS[name](), 3, 0.7
    for seed in (1, 2):
        src, src_len = random_batch(seed)
        limits = search.output_limits(src_len, 1.0, 3)
        beams = beam_search(model, src, src_len, limits, k, alpha, nbest=k)
        greedy_out = greedy_hypotheses(model, src, src_len, limits, alpha)
        for i, n in enumerate(src_len.tolist()):
            logp, limit = next_logp(model, src[i : i + 1, :n]), int(limits[i])
            expected = reference_beam(logp, limit, k, alpha, greedy_out[i][0].tokens)
            assert [h.tokens for h in beams[i]] == expected
            assert beams[i][0].norm_score >= greedy_out[i][0].norm_score - 1e-5
            for h in beams[i]:
                assert h.score == pytest.approx(score(logp, h.tokens), abs=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
@torch.no_grad()
def test_hypotheses_are_what_teacher_forcing_scores_and_attends(name):
    """Every token, score and attention row of every output, against one forced decode."""
    model, src, src_len = MODELS[name](), *random_batch(3, 8)
    limits = search.output_limits(src_len, 1.2, 2)
    for i, hyps in enumerate(beam_search(model, src, src_len, limits, 4, 1.0, nbest=4)):
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps) == 4
        assert [h.norm_score for h in hyps] == sorted((h.norm_score for h in hyps), reverse=True)
        for h in hyps:
            n, limit = len(h.tokens), int(limits[i])
            assert n <= limit and EOS not in h.tokens[:-1]
            assert h.tokens[-1] == EOS or n == limit
            assert h.norm_score == pytest.approx(h.score / length_penalty(n, 1.0))
            assert_forced_decode(model, src[i : i + 1], src_len[i : i + 1], h)


@torch.no_grad()
def test_beam_size_one_is_greedy():
    for name, seed in zip(MODELS, range(4), strict=True):
        model, (src, src_len) = MODELS[name](), random_batch(seed + 10)
        limits = search.output_limits(src_len, 1.0, 3)
        expected = greedy_hypotheses(model, src, src_len, limits)
        beams = beam_search(model, src, src_len, limits, beam_size=1)
        assert [h[0].tokens for h in beams] == [h[0].tokens for h in expected]
        assert [h[0].score for h in beams] == pytest.approx([h[0].score for h in expected])


@pytest.mark.parametrize("every", [3, 1000])
@pytest.mark.parametrize("build", [MODELS["input-feeding"], early_ending])
@torch.no_grad()
def test_outputs_do_not_depend_on_how_often_the_loop_checks(monkeypatch, every, build):
    model, (src, src_len) = build(), random_batch(4, 10)
    limits = search.output_limits(src_len, 1.5, 5)

    def sample() -> tuple[torch.Tensor, ...]:
        pick = search.sampler(1.5, generator=torch.Generator().manual_seed(0))
        return search.run_decoder(model, src, src_len, limits, pick, copies=3)

    monkeypatch.setattr(search, "CHECK_EVERY", {"cpu": 1})
    expected = greedy(model, src, src_len, limits), beam_search(model, src, src_len, limits, 4)
    sampled = sample()
    monkeypatch.setattr(search, "CHECK_EVERY", {"cpu": every})
    tokens, attn, logp = greedy(model, src, src_len, limits)
    for a, b in zip((tokens, attn, logp), expected[0], strict=True):
        assert torch.equal(a, b)  # the same steps: cut where the batch ended
    for a, b in zip(sample(), sampled, strict=True):
        assert torch.equal(a, b)
    beams = beam_search(model, src, src_len, limits, 4)
    for a, b in zip(beams, expected[1], strict=True):
        assert (a[0].tokens, a[0].score) == (b[0].tokens, b[0].score)
        assert torch.equal(a[0].attn, b[0].attn)


def steps_taken(monkeypatch, model: torch.nn.Module, decode: Callable[[], object]) -> int:
    """How many decoder steps ``decode`` runs."""
    steps, step = [], model.step
    with monkeypatch.context() as patch:
        patch.setattr(model, "step", lambda *a: steps.append(1) or step(*a))
        decode()
    return len(steps)


@torch.no_grad()
def test_the_loops_stop_at_the_first_check_after_all_sentences_ended(monkeypatch):
    model, (src, src_len) = early_ending(), random_batch(5)
    limits = search.output_limits(src_len, 1.0, 30)
    taken = {}
    for every in (1, 5):
        monkeypatch.setattr(search, "CHECK_EVERY", {"cpu": every})
        greedy_steps = steps_taken(monkeypatch, model, lambda: greedy(model, src, src_len, limits))
        beam_steps = steps_taken(
            monkeypatch, model, lambda: beam_search(model, src, src_len, limits, 5)
        )  # beam search also runs greedy search, whose output is a candidate
        taken[every] = greedy_steps, beam_steps - greedy_steps
    assert max(taken[1]) < int(limits.min()), taken  # the loops stopped before any limit
    assert taken[5] == tuple(-(-n // 5) * 5 for n in taken[1]) != taken[1], taken  # next check


def count_syncs(fn: Callable[[], object], device: str) -> int:
    """How many times ``fn`` reads a tensor's value on the host (on CUDA: or synchronises)."""
    calls = []
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        for name in SYNCS:
            real = getattr(torch.Tensor, name)
            patch.setattr(
                torch.Tensor, name, lambda *a, f=real, **kw: calls.append(1) or f(*a, **kw)
            )
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("default")
    return len(calls) + sum("synchroniz" in str(w.message) for w in warned)


@pytest.mark.parametrize("device", DEVICES)
@torch.no_grad()
def test_no_host_sync_inside_the_step_loops(monkeypatch, device):
    """As many syncs for 4 steps as for 40: none per step when the exit checks are far apart."""
    model = MODELS["input-feeding"]().to(device)
    with torch.no_grad():
        model.generator.bias[EOS] -= 20.0  # no sentence ends before its limit
    src, src_len = (x.to(device) for x in random_batch(6))
    sample = functools.partial(search.run_decoder, model, src, src_len)
    monkeypatch.setattr(search, "CHECK_EVERY", {device: 1000}, raising=False)
    gen = torch.Generator(device)
    for decode in (
        lambda limits: greedy(model, src, src_len, limits),
        lambda limits: beam_search(model, src, src_len, limits, 4, nbest=4),
        lambda limits: sample(limits, search.sampler(0.8, 5, 0.9, gen.manual_seed(0)), 3),
    ):
        counts = [
            count_syncs(functools.partial(decode, torch.full_like(src_len, n)), device)
            for n in (4, 40)
        ]
        assert counts[0] == counts[1] < 20, counts
