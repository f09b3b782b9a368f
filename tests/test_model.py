"""Masks, padding invariance, teacher forcing paths and the two losses."""

import pytest
import torch

from helpers import make_cfg
from seq2seq_nmt.data.vocab import EOS, PAD, SOS
from seq2seq_nmt.decoding.search import beam_search, greedy, greedy_hypotheses, output_limits
from seq2seq_nmt.model import ATTENTIONS, RNNS, Seq2Seq, SourceTooLongError
from seq2seq_nmt.model.attention import Attention, register
from seq2seq_nmt.train.losses import NLLLoss


def make(attention="bahdanau", **kw) -> Seq2Seq:
    torch.manual_seed(0)
    kw = {"emb_size": 16, "hidden_size": 16, "dropout": 0.0, "max_length": 8} | kw
    return Seq2Seq(20, 22, attention=attention, **kw).eval()


def padded_batch():
    """Sentence 0 is short and padded; sentence 1 fills the batch."""
    src = torch.tensor([[5, 6, EOS, PAD, PAD], [7, 8, 9, 10, EOS]])
    tgt_in = torch.tensor([[SOS, 4, 5, PAD], [SOS, 6, 7, 8]])
    return src, torch.tensor([3, 5]), tgt_in


def stepwise_logits(model: Seq2Seq, src, src_len, tgt_in) -> torch.Tensor:
    """Logits (B, T, V) of one ``model.step`` per position, each fed the reference token."""
    memory, hidden = model.encode(src, src_len)
    logits = []
    for t in range(tgt_in.size(1)):
        out, hidden, _ = model.step(tgt_in[:, t], hidden, memory)
        logits.append(out)
    return torch.stack(logits, 1)


@pytest.mark.parametrize("attention", list(ATTENTIONS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_gets_no_attention_and_does_not_change_outputs(attention, bidirectional):
    model = make(attention, bidirectional=bidirectional)
    src, src_len, tgt_in = padded_batch()
    logits, attn = model(src, src_len, tgt_in)
    assert attn[0, :, 3:].abs().max() == 0  # padded source positions
    assert torch.allclose(attn.sum(-1), torch.ones(2, 4))
    alone, _ = model(src[:1, :3], src_len[:1], tgt_in[:1])
    assert torch.allclose(alone, logits[:1], atol=1e-5)


@pytest.mark.parametrize("cell", list(RNNS))
def test_multilayer_cells_run(cell):
    model = make(cell=cell, num_layers=2, bidirectional=True)
    src, src_len, tgt_in = padded_batch()
    logits, _ = model(src, src_len, tgt_in, teacher_forcing_ratio=0.5)
    assert logits.shape == (2, 4, 22)


def test_loss_ignores_padding():
    logits = torch.randn(2, 4, 22, requires_grad=True)
    target = torch.tensor([[4, 5, EOS, PAD], [6, 7, 8, EOS]])
    for loss_fn in (NLLLoss(ignore_index=PAD), torch.nn.CrossEntropyLoss(ignore_index=PAD)):
        loss = loss_fn(logits.flatten(0, 1), target.flatten())
        (grad,) = torch.autograd.grad(loss, logits)
        assert grad[0, 3].abs().max() == 0 and grad[0, 2].abs().max() > 0


def test_nll_equals_cross_entropy_without_smoothing():
    logits, target = torch.randn(30, 22), torch.randint(0, 22, (30,))
    nll = NLLLoss(ignore_index=PAD)(logits, target)
    ce = torch.nn.CrossEntropyLoss(ignore_index=PAD)(logits, target)
    assert torch.allclose(nll, ce)
    smoothed = torch.nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=0.1)(logits, target)
    assert not torch.allclose(nll, smoothed)


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_teacher_forcing_one_reads_the_reference_and_zero_ignores_it(attention):
    model = make(attention)
    src, src_len, tgt_in = padded_batch()
    other = tgt_in.clone()
    other[:, 2] = 11  # change the reference token fed at step 2
    forced, _ = model(src, src_len, tgt_in, 1.0)
    forced_other, _ = model(src, src_len, other, 1.0)
    assert torch.allclose(forced[:, :2], forced_other[:, :2])
    assert not torch.allclose(forced[:, 2], forced_other[:, 2])
    free, _ = model(src, src_len, tgt_in, 0.0)
    free_other, _ = model(src, src_len, other, 0.0)
    assert torch.allclose(free, free_other)
    assert not torch.allclose(free[:, 2:], forced[:, 2:])


def test_free_running_feeds_back_the_argmax():
    model = make()
    src, src_len, tgt_in = padded_batch()
    free, _ = model(src, src_len, tgt_in, 0.0)
    fed = torch.cat([tgt_in[:, :1], free[:, :-1].argmax(-1)], dim=1)
    forced_on_own, _ = model(src, src_len, fed, 1.0)
    assert torch.allclose(free, forced_on_own, atol=1e-5)


@pytest.mark.parametrize(
    "attention", [name for name, spec in ATTENTIONS.items() if not spec.attend_first]
)
def test_luong_one_call_path_equals_step_loop(attention):
    model = make(attention)
    src, src_len, tgt_in = padded_batch()
    fast, _ = model(src, src_len, tgt_in, 1.0)
    assert torch.allclose(fast, stepwise_logits(model, src, src_len, tgt_in), atol=1e-5)


ATTEND_FIRST = [name for name, spec in ATTENTIONS.items() if spec.attend_first]


@pytest.mark.parametrize("attention", ATTEND_FIRST)
@pytest.mark.parametrize(
    "levers", [{}, {"deep_output": True}, {"bidirectional": True, "bridge": True},
               {"tie_embeddings": True}],
)  # fmt: skip
@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
def test_fused_gru_loop_equals_the_step_loop_with_gradients(attention, levers, ratio, monkeypatch):
    """The attend-first GRU's fused training loop gives ``step``'s logits, attention and
    parameter gradients, with dropout and free-running steps (the same draws, seeded alike)."""
    model = make(attention, dropout=0.2, **levers).train()
    src, src_len, tgt_in = padded_batch()
    assert model.decoder.fused_gru()
    taken = []
    fused = model.decoder.run_attend_first
    monkeypatch.setattr(model.decoder, "run_attend_first", lambda *a: taken.append(1) or fused(*a))
    results = []
    for path in ("fused", "step"):
        if path == "step":
            monkeypatch.setattr(model.decoder, "fused_gru", lambda: False)
        model.zero_grad()
        torch.manual_seed(3)
        logits, attn = model(src, src_len, tgt_in, ratio)
        (logits.square().sum() + attn.sum()).backward()
        grads = [p.grad.to_dense().clone() for p in model.parameters()]
        results.append((logits.detach(), attn.detach(), *grads))
    assert taken == [1]
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert model.decoder.embedding.weight.grad.layout == torch.strided  # fused Adam needs dense


def test_tutorial_attention_refuses_sources_past_max_length():
    model = make("tutorial", max_length=4)
    src = torch.tensor([[5, 6, 7, 8, EOS]])
    with pytest.raises(SourceTooLongError, match="exceeds the 4 positions"):
        model(src, torch.tensor([5]), torch.tensor([[SOS]]))


def test_greedy_batched_equals_one_at_a_time_and_stops_at_eos():
    model = make()
    src, src_len, _ = padded_batch()
    tokens, attn, _ = greedy(model, src, src_len, output_limits(src_len))
    assert tokens.size(1) <= int(output_limits(src_len).max())
    for i in range(2):
        one, _, _ = greedy(
            model,
            src[i : i + 1, : src_len[i]],
            src_len[i : i + 1],
            output_limits(src_len[i : i + 1]),
        )
        n = one.size(1)
        assert tokens[i, :n].tolist() == one[0].tolist()
        assert (tokens[i, n:] == PAD).all()


@pytest.mark.parametrize("attention", list(ATTENTIONS))
@torch.no_grad()
def test_rows_sharing_a_sentence_memory_equal_rows_with_their_own_copy(attention):
    """A decoder step for g rows per sentence (beam search) reads the sentence's memory in place."""
    model, (src, src_len, _) = make(attention).eval(), padded_batch()
    memory, hidden = model.encode(src, src_len)
    g, rows = 3, torch.arange(src.size(0)).repeat_interleave(3)
    y = torch.randint(4, 20, (src.size(0) * g,))
    hidden = hidden.index_select(1, rows) + 0.1 * torch.randn(1, len(rows), hidden.size(-1))
    shared = model.step(y, hidden, memory)
    copied = model.step(y, hidden, memory.index_select(rows))
    for a, b in zip(shared, copied, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_gru_encoder_equals_the_packed_one_with_gradients(bidirectional):
    """The one-layer GRU's padded fast path gives the packed path's outputs, state and gradients."""
    model, (src, src_len, _) = make(bidirectional=bidirectional), padded_batch()
    emb = model.encoder.embedding(src).detach().requires_grad_()
    results = []
    for path in (model.encoder.forward_padded, model.encoder.forward_packed):
        emb.grad = None
        out, hidden = path(emb, src_len)
        (out.square().sum() + hidden.sin().sum()).backward()
        results.append((out.detach(), hidden.detach(), emb.grad.clone()))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)
    assert results[0][0][0, 3:].abs().max() == 0  # zero at padding


@pytest.mark.parametrize("attention", list(ATTENTIONS))
@pytest.mark.parametrize(
    "levers",
    [{"deep_output": True}, {"bridge": True, "bidirectional": True}, {"tie_embeddings": True},
     {"input_feeding": True}, {"input_feeding": True, "cell": "lstm", "num_layers": 2}],
)  # fmt: skip
def test_levers_train_and_decode_alike(attention, levers):
    """Teacher-forced training logits equal step-by-step decoding's with each lever on."""
    if levers.get("input_feeding") and ATTENTIONS[attention].attend_first:
        with pytest.raises(ValueError, match="input_feeding needs an attention queried after"):
            make(attention, **levers)
        return
    model = make(attention, **levers)
    src, src_len, tgt_in = padded_batch()
    forced, _ = model(src, src_len, tgt_in, 1.0)
    assert torch.allclose(forced, stepwise_logits(model, src, src_len, tgt_in), atol=1e-5)


def test_levers_change_the_network():
    plain, deep = make("luong_general"), make("luong_general", deep_output=True)
    assert deep.decoder.combine.in_features == plain.decoder.combine.in_features + 16
    src, src_len, _ = padded_batch()
    bridged = make(bridge=True)
    _, hidden = bridged.encode(src, src_len)
    assert not torch.allclose(hidden, bridged.encoder(src, src_len)[1])
    tied = make(tie_embeddings=True)
    assert tied.generator.weight is tied.decoder.embedding.weight
    untied = make()
    count = sum(p.numel() for p in tied.parameters())  # a shared tensor is counted once
    assert count == sum(p.numel() for p in untied.parameters()) - untied.generator.weight.numel()
    with pytest.raises(ValueError, match="tie_embeddings needs emb_size == hidden_size"):
        make(tie_embeddings=True, emb_size=8)


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general"])
def test_teacher_forcing_per_sequence_is_all_or_nothing(attention):
    model = make(attention)
    src, src_len, tgt_in = padded_batch()
    forced, _ = model(src, src_len, tgt_in, 1.0)
    free, _ = model(src, src_len, tgt_in, 0.0)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out, _ = model(src, src_len, tgt_in, 0.5, per_sequence=True)
        kind = (
            "forced"
            if torch.allclose(out, forced)
            else "free"
            if torch.allclose(out, free)
            else "mixed"
        )
        seen.add(kind)
    assert seen == {"forced", "free"}


def test_built_in_attentions_decode_as_registered():
    styles = {n: (s.attend_first, s.query_emb, s.needs_max_length) for n, s in ATTENTIONS.items()}
    expected = {
        "bahdanau": (True, False, False),
        "luong_dot": (False, False, False),
        "luong_general": (False, False, False),
        "tutorial": (True, True, True),
    }
    assert styles.items() >= expected.items()
    assert set(RNNS) >= {"gru", "lstm"}


class ScaledDotAttention(Attention):
    """docs/extending.md's worked example: q . k / sqrt(d), queried by the RNN output."""

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        if query_size != key_size:
            raise ValueError("scaled dot attention needs query and key of the same size")
        self.scale = key_size**-0.5

    def scores(self, query, keys, proj):
        return (query @ keys.transpose(1, 2)) * self.scale


@pytest.fixture
def scaled_dot():
    """The docs' example attention, registered for one test."""
    register("scaled_dot", ScaledDotAttention, attend_first=False)
    yield "scaled_dot"
    del ATTENTIONS["scaled_dot"]


def test_a_registered_attention_is_a_model_and_config_option(scaled_dot, tmp_path):
    from seq2seq_nmt.config import validate

    model = make(scaled_dot)
    src, src_len, tgt_in = padded_batch()
    logits, attn = model(src, src_len, tgt_in)
    assert attn[0, :, 3:].abs().max() == 0 and logits.shape == (2, 4, 22)
    validate(make_cfg(tmp_path, f"model.attention={scaled_dot}"))
    with pytest.raises(ValueError, match="already registered"):
        register(scaled_dot, ScaledDotAttention, attend_first=False)


def test_unknown_attention_and_missing_max_length_are_one_line():
    with pytest.raises(ValueError, match=r"unknown attention 'general'; choose from \('bahdanau'"):
        make("general")
    with pytest.raises(ValueError, match="attention=tutorial needs max_length"):
        make("tutorial", max_length=None)


def test_input_feeding_feeds_the_previous_feature():
    """With input feeding, step 2 depends on step 1's feature, not only on the RNN state."""
    model = make("luong_general", input_feeding=True)
    assert model.decoder.rnn.input_size == 16 + 16
    src, src_len, tgt_in = padded_batch()
    memory, (rnn_hidden, feed) = model.encode(src, src_len)
    assert torch.equal(feed, torch.zeros(1, 2, 16))
    feat, (_, fed), _ = model.decoder.step(tgt_in[:, 0], (rnn_hidden, feed), memory)
    assert torch.equal(fed[0], feat)
    a, _, _ = model.decoder.step(tgt_in[:, 1], (rnn_hidden, fed), memory)
    b, _, _ = model.decoder.step(tgt_in[:, 1], (rnn_hidden, torch.zeros_like(fed)), memory)
    assert not torch.allclose(a, b)


def test_beam_search_runs_with_input_feeding_and_never_scores_below_greedy():
    """The fed feature travels in nested hidden states ((h, c), feed) through beam selection."""
    model = make("luong_general", input_feeding=True, cell="lstm", num_layers=2)
    src, src_len, _ = padded_batch()
    limits = output_limits(src_len)
    greedy_best = greedy_hypotheses(model, src, src_len, limits)
    beam_best = beam_search(model, src, src_len, limits, beam_size=3)
    for g, b in zip(greedy_best, beam_best, strict=True):
        assert b[0].norm_score >= g[0].norm_score - 1e-4  # float32 sums of 13 steps
