"""translate.py's precision=: bf16 and int8 translate as fp32 does, int8 really quantises (a copy),
every architecture and ensembles decode in both, and bad values are one line and exit status 2."""

import warnings

import pytest
import torch
from test_search import random_batch
from test_translate import Terminal, translate, write
from torch import nn
from torch.ao.nn.quantized import dynamic as quantized

from helpers import run_translate
from seq2seq_nmt.data.corpus import SAMPLE_PATH
from seq2seq_nmt.data.vocab import SOS
from seq2seq_nmt.decoding.search import greedy, output_limits
from seq2seq_nmt.model import Seq2Seq
from seq2seq_nmt.translate.translator import Translator, with_precision

SAME = 0.8  # at least this share of the lines translate exactly as in fp32


@pytest.fixture(scope="module")
def french() -> list[str]:
    """40 raw French sentences of the sample corpus."""
    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()[5::100]
    return [line.split("\t")[1] for line in lines]


@pytest.fixture(scope="module")
def fp32(trained_ckpt, french) -> dict[int, list[str]]:
    """The fp32 translations of ``french``, greedy (1) and beam 5."""
    translator = Translator.from_checkpoint(trained_ckpt)
    return {beam: translator.translate(french, beam_size=beam) for beam in (1, 5)}


def agreement(out: list[str], expected: list[str]) -> float:
    return sum(a == b for a, b in zip(out, expected, strict=True)) / len(expected)


@pytest.mark.parametrize("beam", [1, 5])
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_each_precision_translates_as_fp32_without_warnings(
    trained_ckpt, french, fp32, precision, beam
):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.ao.quantization's deprecation notices included
        translator = Translator.from_checkpoint(trained_ckpt, precision=precision)
        out = translator.translate(french, beam_size=beam)
    assert agreement(out, fp32[beam]) >= SAME, list(zip(out, fp32[beam], strict=True))


def test_cli_int8_translates_as_fp32_on_a_clean_console(tmp_path, trained_ckpt, french, fp32):
    src = write(tmp_path / "test.fr", french)
    proc = run_translate(f"ckpt={trained_ckpt}", f"input={src}", "precision=int8", "beam_size=5")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert agreement(proc.stdout.splitlines(), fp32[5]) >= SAME


def test_int8_quantises_a_copy_and_bf16_casts_one(trained_ckpt):
    base = Translator.from_checkpoint(trained_ckpt)
    args = base.src_tokenizer, base.tgt_tokenizer, base.data_config
    int8 = Translator(base.model, *args, precision="int8").model
    kinds = {type(m) for m in int8.modules()}
    assert {quantized.Linear, quantized.GRU} <= kinds and not kinds & {nn.Linear, nn.GRU}
    bf16 = Translator(base.model, *args, precision="bf16").model
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in base.model.parameters()} == {torch.float32}
    assert isinstance(base.model.generator, nn.Linear)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_an_ensemble_translates_as_fp32(trained_ckpt, french, fp32, precision):
    pair = Translator.from_checkpoints([trained_ckpt, trained_ckpt], precision=precision)
    for beam in (1, 5):
        assert agreement(pair.translate(french, beam_size=beam), fp32[beam]) >= SAME


@torch.no_grad()
def step_log_probs(model: nn.Module, src, src_len, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probabilities (B, T, V) of each step when the decoder reads ``tokens`` (B, T)."""
    memory, hidden = model.encode(src, src_len)
    y, out = torch.full((src.size(0),), SOS), []
    for t in range(tokens.size(1)):
        logits, hidden, _ = model.step(y, hidden, memory)
        out.append(logits.float().log_softmax(-1))
        y = tokens[:, t]
    return torch.stack(out, dim=1)


@pytest.mark.parametrize(
    "settings",
    [{"cell": "gru"}, {"cell": "lstm", "bidirectional": True, "bridge": True},
     {"cell": "gru", "num_layers": 2, "attention": "luong_general", "input_feeding": True},
     {"cell": "lstm", "attention": "tutorial", "deep_output": True}],
)  # fmt: skip
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_every_architecture_decodes_close_to_fp32(settings, precision):
    """Packed and padded encoders, GRU and LSTM states, input feeding: each step's log-probs
    within 0.03 of fp32's (about 0.01 measured; a state not carried over between steps: 0.07+)."""
    torch.manual_seed(0)
    model = Seq2Seq(30, 25, emb_size=32, hidden_size=32, dropout=0.0, max_length=9, **settings)
    model.eval()
    src, src_len = random_batch()
    tokens = greedy(model, src, src_len, output_limits(src_len))[0]
    expected = step_log_probs(model, src, src_len, tokens)
    got = step_log_probs(with_precision(model, precision), src, src_len, tokens)
    assert (got - expected).abs().max() < 0.03


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["precision=fp16"], "error: precision='fp16': one of fp32, bf16, int8"),
     (["precision=int8", "device=cuda"],
      "error: precision=int8 (dynamic quantisation) runs on CPU only, not cuda")],
)  # fmt: skip
def test_bad_precision_gives_one_line_and_status_2(
    tmp_path, trained_ckpt, capsys, overrides, message
):
    with pytest.raises(SystemExit) as exit_info:
        translate(
            tmp_path, trained_ckpt, "text=bonjour", *overrides, stdin=Terminal(""), capsys=capsys
        )
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == message + "\n"
