"""Greedy and beam search: beam 1 is greedy, beam scores are true model scores and beat greedy's."""

import numpy as np
import pytest
import torch

from seq2seq_nmt.data.batch import collate
from seq2seq_nmt.data.corpus import SAMPLE_PATH
from seq2seq_nmt.data.vocab import EOS, PAD, SOS
from seq2seq_nmt.decoding import search
from seq2seq_nmt.decoding.options import DecodingOptions
from seq2seq_nmt.decoding.search import beam_search, greedy, length_penalty, output_limits
from seq2seq_nmt.model import Seq2Seq
from seq2seq_nmt.translate.translator import Translator


@pytest.fixture(scope="module")
def translator(trained_ckpt) -> Translator:
    return Translator.from_checkpoint(trained_ckpt)


@pytest.fixture(scope="module")
def french() -> list[str]:
    """Raw French sentences of the sample corpus (most seen in training, a few not)."""
    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()[::50]
    return [line.split("\t")[1] for line in lines]


def batch(translator: Translator, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [np.asarray(translator.encode(s)) for s in lines]
    b = collate([(s, s, None) for s in ids])
    return b["src"], b["src_len"]


def greedy_lists(tokens: torch.Tensor) -> list[list[int]]:
    """Greedy's padded rows as token lists ending at (and including) EOS."""
    rows = [[t for t in row if t != PAD] for row in tokens.tolist()]
    return [row[: row.index(EOS) + 1] if EOS in row else row for row in rows]


def forced_score(model: Seq2Seq, src: torch.Tensor, tokens: list[int]) -> float:
    """Sum of log-probabilities of ``tokens`` for one source (B=1), one step at a time."""
    memory, hidden = model.encode(src, torch.tensor([src.size(1)]))
    y, total = torch.tensor([SOS]), 0.0
    for t in tokens:
        logits, hidden, _ = model.step(y, hidden, memory)
        total += float(logits.log_softmax(-1)[0, t])
        y = torch.tensor([t])
    return total


def random_model(attention: str, cell: str) -> Seq2Seq:
    torch.manual_seed(0)
    model = Seq2Seq(30, 25, emb_size=16, hidden_size=16, dropout=0.0, cell=cell,
                    attention=attention, max_length=9).eval()  # fmt: skip
    with torch.no_grad():
        model.generator.bias[EOS] += 0.5  # some outputs end early, others run to the limit
    return model


def random_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([3, 9, 5, 2, 7, 4])
    src = torch.full((len(lengths), 9), PAD)
    for i, n in enumerate(lengths.tolist()):
        src[i, : n - 1] = torch.randint(4, 30, (n - 1,), generator=gen)
        src[i, n - 1] = EOS
    return src, lengths


@torch.no_grad()
def test_beam_size_one_equals_greedy_on_the_trained_model(translator, french):
    src, src_len = batch(translator, french)
    limits = output_limits(src_len)
    expected = greedy_lists(greedy(translator.model, src, src_len, limits)[0])
    beams = beam_search(translator.model, src, src_len, limits, beam_size=1)
    assert [h[0].tokens for h in beams] == expected


@pytest.mark.parametrize(("attention", "cell"), [("bahdanau", "lstm"), ("luong_general", "gru"),
                                                 ("tutorial", "gru")])  # fmt: skip
@torch.no_grad()
def test_beam_on_random_models_matches_greedy_and_single_sentences(attention, cell):
    model, (src, src_len) = random_model(attention, cell), random_batch()
    limits = output_limits(src_len, 1.0, 2)
    expected = greedy_lists(greedy(model, src, src_len, limits)[0])
    assert [h[0].tokens for h in beam_search(model, src, src_len, limits, 1)] == expected
    batched = beam_search(model, src, src_len, limits, beam_size=4, alpha=0.0, nbest=4)
    for i, n in enumerate(src_len.tolist()):
        one = beam_search(
            model, src[i : i + 1, :n], src_len[i : i + 1], limits[i : i + 1], 4, 0.0, 4
        )
        assert [h.tokens for h in one[0]] == [h.tokens for h in batched[i]]
        assert all(len(h.tokens) <= limits[i] for h in batched[i])
        best = batched[i][0]
        assert best.score == pytest.approx(
            forced_score(model, src[i : i + 1, :n], best.tokens), abs=1e-4
        )
        assert best.score >= forced_score(model, src[i : i + 1, :n], expected[i]) - 1e-4


@torch.no_grad()
def test_beam_scores_are_model_scores_and_never_below_greedy(translator, french):
    src, src_len = batch(translator, french)
    limits = output_limits(src_len)
    greedy_tokens = greedy_lists(greedy(translator.model, src, src_len, limits)[0])
    beams = beam_search(translator.model, src, src_len, limits, beam_size=5, alpha=0.0)
    better = 0
    for i, n in enumerate(src_len.tolist()):
        one = src[i : i + 1, :n]
        best, greedy_score = beams[i][0], forced_score(translator.model, one, greedy_tokens[i])
        assert best.score == pytest.approx(
            forced_score(translator.model, one, best.tokens), abs=1e-3
        )
        assert best.score >= greedy_score - 1e-4, (french[i], best.tokens, greedy_tokens[i])
        better += best.score > greedy_score + 1e-4
    assert better > 0  # the search does find something greedy missed


def test_nbest_are_distinct_and_ranked_by_length_penalised_score(translator, french):
    alpha = 0.8
    for tr in translator.search(
        french[:20], DecodingOptions(beam_size=5, nbest=5, length_penalty=alpha)
    ):
        hyps = tr.hypotheses
        assert len(hyps) == 5 and len({tuple(h.tokens) for h in hyps}) == 5
        for h in hyps:
            assert h.norm_score == pytest.approx(h.score / length_penalty(len(h.tokens), alpha))
            assert h.attn.shape == (len(h.tokens), len(tr.source) + 1)
        assert [h.norm_score for h in hyps] == sorted((h.norm_score for h in hyps), reverse=True)


def test_batched_translation_equals_one_sentence_at_a_time(translator, french):
    lines = [*french[:30], "", "Il est plus grand que moi, je crois."]
    for beam_size in (1, 5):
        options = DecodingOptions(beam_size=beam_size, nbest=beam_size)
        batched = translator.search(lines, options, batch_size=64)
        single = translator.search(lines, options, batch_size=1)
        for a, b in zip(batched, single, strict=True):
            assert [h.tokens for h in a.hypotheses] == [h.tokens for h in b.hypotheses]
            assert [h.score for h in a.hypotheses] == pytest.approx(
                [h.score for h in b.hypotheses], abs=1e-4, nan_ok=True
            )


@torch.no_grad()
def test_greedy_output_is_always_a_candidate_even_when_it_drops_out_of_the_beam(monkeypatch):
    model, (src, src_len) = random_model("luong_general", "gru"), random_batch()
    limits = output_limits(src_len, 1.0, 2)
    decoded_apart, real = [], search.greedy_hypotheses
    monkeypatch.setattr(
        search, "greedy_hypotheses",
        lambda m, s, *a, **kw: decoded_apart.append(s.size(0)) or real(m, s, *a, **kw),
    )  # fmt: skip
    beams = beam_search(model, src, src_len, limits, beam_size=2, alpha=0.0, nbest=100)
    assert decoded_apart  # greedy left the beam for some sentence: the case under test
    expected = greedy_lists(greedy(model, src, src_len, limits)[0])
    for i, n in enumerate(src_len.tolist()):
        candidates = {tuple(h.tokens): h.score for h in beams[i]}
        assert tuple(expected[i]) in candidates
        score = forced_score(model, src[i : i + 1, :n], expected[i])
        assert candidates[tuple(expected[i])] == pytest.approx(score, abs=1e-4)
