"""The decoding seam: every registered strategy decodes a batch into true model scores, sampling
draws from the filtered distribution and reproduces with a seed, bad options are one line, and
``translate.py strategy=sample`` works from the command line."""

import re

import pytest
import torch
from test_search_sync import MODELS, assert_forced_decode, random_batch

from helpers import ROOT, run_translate
from seq2seq_nmt.data.corpus import SAMPLE_PATH
from seq2seq_nmt.data.vocab import EOS, UNK
from seq2seq_nmt.decoding import search, strategies
from seq2seq_nmt.decoding.options import DecodingOptions
from seq2seq_nmt.decoding.strategies import STRATEGIES, decode, generators
from seq2seq_nmt.translate.translator import Translator

NBEST = 3


@pytest.fixture(scope="module")
def translator(trained_ckpt) -> Translator:
    return Translator.from_checkpoint(trained_ckpt)


@pytest.fixture(scope="module")
def french() -> list[str]:
    """Raw French sentences of the sample corpus."""
    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()[3::100]
    return [line.split("\t")[1] for line in lines]


def options_for(name: str, nbest: int) -> DecodingOptions:
    """``nbest`` hypotheses per sentence from strategy ``name``, or one where it gives only one."""
    beam = {"beam_size": nbest} if name == "beam" else {}
    try:
        return DecodingOptions(
            strategy=name, nbest=nbest, seed=0 if name == "sample" else None, **beam
        )
    except ValueError:
        return DecodingOptions(strategy=name)


def outputs(translator: Translator, lines: list[str], **options) -> list[list[int]]:
    """The best hypothesis' tokens of each line."""
    found = translator.search(lines, DecodingOptions(**options))
    return [t.hypotheses[0].tokens for t in found]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("model_name", ["luong-gru", "ensemble"])
@torch.no_grad()
def test_every_strategy_gives_nbest_hypotheses_that_the_model_scores(name, model_name):
    """Each hypothesis ends at EOS or its limit, and its score and attention are the model's."""
    model, (src, src_len) = MODELS[model_name](), random_batch(7, 5)
    options = options_for(name, NBEST)
    limits = search.output_limits(src_len, options.max_output_ratio, options.max_output_offset)
    found = decode(model, src, src_len, options, next(generators(options.seed, src.device)))
    assert len(found) == src.size(0)
    for i, hyps in enumerate(found):
        assert len(hyps) == options.nbest
        assert [h.norm_score for h in hyps] == sorted((h.norm_score for h in hyps), reverse=True)
        for h in hyps:
            n = len(h.tokens)
            assert 1 <= n <= int(limits[i]) and EOS not in h.tokens[:-1]
            assert h.tokens[-1] == EOS or n == int(limits[i])
            assert h.norm_score == pytest.approx(
                h.score / search.length_penalty(n, options.length_penalty)
            )
            assert_forced_decode(model, src[i : i + 1], src_len[i : i + 1], h)


def test_nbest_samples_are_independent_draws():
    """With a flat distribution, a sentence's nbest samples are not copies of one draw."""
    model, (src, src_len) = MODELS["luong-gru"](), random_batch(8, 4)
    options = DecodingOptions(strategy="sample", nbest=8, temperature=5.0, seed=3)
    for hyps in decode(model, src, src_len, options, next(generators(3, src.device))):
        assert len({tuple(h.tokens) for h in hyps}) > 1


@pytest.mark.parametrize(
    ("settings", "support"),
    [({}, [0, 1, 2, 3]), ({"top_k": 2}, [0, 1]), ({"top_p": 0.6}, [0, 1]),
     ({"top_p": 0.3}, [0]), ({"temperature": 0.5}, [0, 1, 2, 3])],
)  # fmt: skip
def test_the_sampler_draws_from_the_tempered_truncated_distribution(settings, support):
    """Frequencies of 40,000 draws against softmax(logits / T) renormalised over the kept tokens
    (probabilities 0.5, 0.25, 0.15, 0.10 at T = 1)."""
    probs = torch.tensor([0.5, 0.25, 0.15, 0.10])
    logits = probs.log().expand(40_000, 4)
    pick = search.sampler(**settings, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(pick(logits), minlength=4).float() / logits.size(0)
    expected = probs ** (1 / settings.get("temperature", 1.0))
    expected[[i for i in range(4) if i not in support]] = 0.0
    torch.testing.assert_close(counts, expected / expected.sum(), atol=0.01, rtol=0)


def test_a_seed_reproduces_samples_and_another_seed_differs(translator, french):
    sampled = {seed: outputs(translator, french, strategy="sample", seed=seed) for seed in (1, 2)}
    assert outputs(translator, french, strategy="sample", seed=1) == sampled[1]
    assert sampled[1] != sampled[2]
    assert sampled[1] != outputs(translator, french)  # not greedy's


def test_each_batch_draws_from_its_own_seeded_stream(translator, french):
    """The same sentences in two batches of the same shape get different samples."""
    lines = [french[0]] * 8
    found = translator.search(lines, DecodingOptions(strategy="sample", seed=5, temperature=3.0), 4)
    first, second = ([t.hypotheses[0].tokens for t in found[i : i + 4]] for i in (0, 4))
    assert first != second


@pytest.mark.parametrize("cut", [{"top_k": 1}, {"top_p": 1e-6}])
def test_sampling_cut_to_the_most_likely_token_is_greedy(translator, french, cut):
    greedy = translator.search(french, DecodingOptions())
    sampled = translator.search(french, DecodingOptions(strategy="sample", seed=4, **cut))
    for g, s in zip(greedy, sampled, strict=True):
        assert s.hypotheses[0].tokens == g.hypotheses[0].tokens
        assert s.hypotheses[0].score == pytest.approx(g.hypotheses[0].score, abs=1e-5)


@pytest.mark.parametrize(
    ("mapping", "field"),
    [({"strategy": "top"}, "strategy"), ({"strategy": ["beam"]}, "strategy"),
     ({"beam_size": 0}, "beam_size"), ({"beam_size": "5"}, "beam_size"),
     ({"beam_size": 2, "nbest": 3}, "nbest"), ({"nbest": 2}, "nbest"),
     ({"strategy": "sample", "nbest": 0}, "nbest"), ({"strategy": "greedy", "beam_size": 4}, "beam_size"),
     ({"strategy": "sample", "beam_size": 4}, "beam_size"), ({"length_penalty": -1}, "length_penalty"),
     ({"max_output_ratio": float("inf")}, "max_output_ratio"),
     ({"max_output_offset": 0}, "max_output_offset"), ({"max_output_offset": 2.5}, "max_output_offset"),
     ({"strategy": "sample", "temperature": 0}, "temperature"),
     ({"strategy": "sample", "temperature": True}, "temperature"),
     ({"strategy": "sample", "top_k": -1}, "top_k"), ({"strategy": "sample", "top_p": 0}, "top_p"),
     ({"strategy": "sample", "top_p": 1.5}, "top_p"), ({"strategy": "sample", "seed": -1}, "seed"),
     ({"strategy": "sample", "seed": 2**63}, "seed"), ({"temperature": 0.7}, "temperature"),
     ({"beam_size": 5, "top_k": 10}, "top_k"), ({"seed": 1}, "seed"), ({"beams": 5}, "beams")],
)  # fmt: skip
def test_every_bad_option_is_one_line_naming_it(mapping, field):
    with pytest.raises(ValueError) as error:
        DecodingOptions.from_mapping(mapping)
    message = str(error.value)
    assert "\n" not in message and message.startswith((field, f"unknown decoding option {field!r}"))


def test_options_are_frozen_with_the_strategy_resolved():
    assert DecodingOptions().strategy == "greedy"
    assert DecodingOptions(beam_size=4).strategy == "beam"
    options = DecodingOptions.from_mapping({"strategy": "sample", "top_k": 5, "temperature": 1})
    assert isinstance(options.temperature, float)
    with pytest.raises(AttributeError):
        options.top_k = 3  # type: ignore[misc]


def test_sampling_from_the_command_line(translator, trained_ckpt):
    """``translate.py ... strategy=sample seed=1 nbest=3``: three scored samples, best first, the
    ones ``Translator.search`` draws with the same options."""
    text, settings = "Je suis très fatigué !", {"seed": 1, "nbest": 3, "temperature": 1.5}
    args = [f"{k}={v}" for k, v in settings.items()]
    proc = run_translate(f"ckpt={trained_ckpt}", f"text={text}", "strategy=sample", *args)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    (found,) = translator.search([text], DecodingOptions(strategy="sample", **settings))
    assert [r[2] for r in rows] == [translator.text(found, rank) for rank in range(3)]
    assert [r[0] for r in rows] == ["1"] * 3 and all(r[2] for r in rows)
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True)


@torch.no_grad()
def test_the_worked_example_strategy_is_an_option(monkeypatch):
    """docs/extending.md's ``no_unk``, registered for this test: an option like the built-in
    strategies, decoding greedily without ``<unk>``."""
    section = (
        (ROOT / "docs" / "extending.md")
        .read_text(encoding="utf-8")
        .split("## A decoding strategy")[1]
    )
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "STRATEGIES[" in b]
    monkeypatch.setitem(STRATEGIES, "no_unk", None)  # removed again after the test
    exec(code, {**vars(strategies), "UNK": UNK})
    model, (src, src_len) = MODELS["luong-gru"](), random_batch(9)
    model.generator.bias[UNK] += 100.0  # greedy search says <unk> at every step
    greedy = decode(model, src, src_len, DecodingOptions())
    found = decode(model, src, src_len, DecodingOptions.from_mapping({"strategy": "no_unk"}))
    assert all(set(h[0].tokens) == {UNK} for h in greedy)
    assert all(h[0].tokens and UNK not in h[0].tokens for h in found)
    with pytest.raises(
        ValueError, match=r"^strategy='no_ukn': one of greedy, beam, sample, no_unk$"
    ):
        DecodingOptions(strategy="no_ukn")
