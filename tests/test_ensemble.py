"""Ensembles: one model alone is that model, a step is the mean of the models' log-probabilities,
beam search over mixed architectures scores what it outputs, mismatched checkpoints are refused."""

import pytest
import torch
from test_search import batch, forced_score, random_batch, random_model
from test_translate import translate

from helpers import make_cfg
from seq2seq_nmt.data.corpus import SAMPLE_PATH
from seq2seq_nmt.data.vocab import SOS
from seq2seq_nmt.decoding.ensemble import Ensemble
from seq2seq_nmt.decoding.search import beam_search, greedy_hypotheses, output_limits
from seq2seq_nmt.train.run import train
from seq2seq_nmt.translate.translator import Translator


@pytest.fixture(scope="module")
def french() -> list[str]:
    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()[3::120]
    return [line.split("\t")[1] for line in lines]


@pytest.fixture(scope="module")
def second_ckpt(tmp_path_factory):
    """Another model on the same data split and vocabularies: another seed for its weights."""
    out = tmp_path_factory.mktemp("second")
    train(make_cfg(out, "debug=fast", "seed=7", "dataset.seed=1234", "trainer.max_epochs=2",
                   "test=false", "logger=csv"))  # fmt: skip
    return out / "checkpoints" / "last.ckpt"


@torch.no_grad()
def test_an_ensemble_of_one_is_the_model(trained_ckpt, french):
    translator = Translator.from_checkpoint(trained_ckpt)
    model, one = translator.model, Ensemble([translator.model]).eval()
    src, src_len = batch(translator, french)
    limits = output_limits(src_len)
    for search in (
        lambda m: greedy_hypotheses(m, src, src_len, limits),
        lambda m: beam_search(m, src, src_len, limits, beam_size=5, nbest=5),
    ):
        expected, got = search(model), search(one)
        assert [[h.tokens for h in s] for s in got] == [[h.tokens for h in s] for s in expected]
        assert [h.score for s in got for h in s] == pytest.approx(
            [h.score for s in expected for h in s], abs=1e-5
        )


def first_step(model, src: torch.Tensor, src_len: torch.Tensor):
    memory, hidden = model.encode(src, src_len)
    return model.step(torch.full((src.size(0),), SOS), hidden, memory)


@torch.no_grad()
def test_a_step_is_the_mean_of_the_models_log_probabilities(trained_ckpt, second_ckpt, french):
    pair = Translator.from_checkpoints([trained_ckpt, second_ckpt])
    a, b = (Translator.from_checkpoint(p).model for p in (trained_ckpt, second_ckpt))
    assert isinstance(pair.model, Ensemble)
    src, src_len = batch(pair, french)
    logp, _, attn = first_step(pair.model, src, src_len)
    (la, _, wa), (lb, _, wb) = first_step(a, src, src_len), first_step(b, src, src_len)
    la, lb = la.log_softmax(-1), lb.log_softmax(-1)
    assert not torch.allclose(la, lb, atol=1e-2)  # two different models
    torch.testing.assert_close(logp, (la + lb) / 2)
    torch.testing.assert_close(attn, (wa + wb) / 2)


@torch.no_grad()
def test_beam_search_over_an_lstm_and_a_gru_scores_its_outputs():
    ensemble = Ensemble([random_model("bahdanau", "lstm"), random_model("luong_general", "gru")])
    src, src_len = random_batch()
    limits = output_limits(src_len, 1.0, 2)
    beams = beam_search(ensemble.eval(), src, src_len, limits, beam_size=4, alpha=0.0)
    for i, n in enumerate(src_len.tolist()):
        best = beams[i][0]
        assert best.score == pytest.approx(
            forced_score(ensemble, src[i : i + 1, :n], best.tokens), abs=1e-4
        )


def test_translate_py_takes_a_list_of_checkpoints(tmp_path, trained_ckpt, second_ckpt, capsys):
    lines = ["Il est vieux.", "Nous sommes contents.", "Je suis fatigue."]
    (tmp_path / "in.fr").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for beam_size in (1, 4):
        search = {"beam_size": beam_size}
        expected = Translator.from_checkpoints([trained_ckpt, second_ckpt]).translate(
            lines, **search
        )
        out, _ = translate(tmp_path, f"[{trained_ckpt},{second_ckpt}]", f"input={tmp_path / 'in.fr'}",
                           f"beam_size={beam_size}", capsys=capsys)  # fmt: skip
        assert out.splitlines() == expected
    single, _ = translate(tmp_path, trained_ckpt, "text=bonjour", capsys=capsys)
    assert translate(tmp_path, f"[{trained_ckpt}]", "text=bonjour", capsys=capsys)[0] == single


@pytest.mark.parametrize(
    ("part", "message"),
    [("tgt_tokenizer", "its target tokenizer differs"), ("normalization", "its normalisation differs")],
)  # fmt: skip
def test_mismatched_checkpoints_are_refused(tmp_path, trained_ckpt, capsys, part, message):
    ckpt = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    if part == "tgt_tokenizer":
        words = ckpt["nmt"]["tgt_tokenizer"]["index2word"]
        words[-1], words[-2] = words[-2], words[-1]
    else:
        ckpt["nmt"]["data"]["normalization"] = "europarl"
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    with pytest.raises(SystemExit) as exit_info:
        translate(tmp_path, f"[{trained_ckpt},{other}]", "text=bonjour", capsys=capsys)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and f"{other}: {message} from that of {trained_ckpt}" in err, err
