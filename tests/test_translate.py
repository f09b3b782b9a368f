"""translate.py: inputs (text, files, pipes, a terminal), outputs, scores, plots and bad input."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
import torch

from helpers import ROOT, imported, make_cfg, run_translate
from seq2seq_nmt.data.corpus import SAMPLE_PATH
from seq2seq_nmt.data.normalize import normalize_tutorial
from seq2seq_nmt.data.tokenizer import WordTokenizer
from seq2seq_nmt.data.vocab import EOS, UNK, Vocab
from seq2seq_nmt.decoding.options import DecodingOptions
from seq2seq_nmt.decoding.search import Hypothesis
from seq2seq_nmt.model import Seq2Seq
from seq2seq_nmt.translate.command import run
from seq2seq_nmt.translate.translator import Translation, Translator


class Terminal(io.StringIO):
    """Standard input as a person typing at a terminal."""

    def isatty(self) -> bool:
        return True


class Payload:
    """Unpickling this object would create a file: a stand-in for arbitrary code in a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    """(raw French, raw English) pairs of the sample corpus."""
    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()[7::80]
    return [(fr, en) for en, fr in (line.split("\t")[:2] for line in lines)]


def translate(tmp_path, ckpt, *overrides: str, stdin=None, capsys=None) -> tuple[str, str]:
    """Run translate.py's body in this process; its stdout and stderr."""
    capsys.readouterr()
    run(make_cfg(tmp_path, f"ckpt={ckpt}", *overrides, config="translate"), stdin=stdin)
    captured = capsys.readouterr()
    return captured.out, captured.err


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_cli_scores_a_file_against_references_like_sacrebleu(tmp_path, trained_ckpt, pairs):
    """The issue's 'done when' command; references already normalised, as a test split would be.
    Translation never loads Lightning (about 3 s less to start: docs/performance.md)."""
    src = write(tmp_path / "test.fr", [fr for fr, _ in pairs])
    ref = write(tmp_path / "test.en", [normalize_tutorial(en) for _, en in pairs])
    out = tmp_path / "hyp.en"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "translate.py", f"ckpt={trained_ckpt}", f"input={src}",
         f"reference={ref}", "beam_size=5", f"output={out}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    hyps = out.read_text().splitlines()
    refs = ref.read_text().splitlines()
    assert len(hyps) == len(pairs) and proc.stdout == ""
    modules = imported(proc.stderr)
    assert "torch" in modules and not {"pytorch_lightning", "torchmetrics"} & modules
    bleu = sacrebleu.corpus_bleu(hyps, [refs])
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    assert f"BLEU = {bleu.score:.2f} | chrF = {chrf.score:.2f} | {len(hyps)} lines" in proc.stderr
    assert "normalised with the checkpoint's 'tutorial' normaliser" in proc.stderr
    assert re.search(
        r"BLEU signature: nrefs:1\|case:mixed\|eff:no\|tok:13a\|smooth:exp", proc.stderr
    )
    assert "chrF signature: nrefs:1" in proc.stderr
    assert bleu.score > 0


def test_raw_references_are_normalised_like_training_targets(tmp_path, trained_ckpt, pairs, capsys):
    src = write(tmp_path / "src.fr", [fr for fr, _ in pairs])
    raw = write(tmp_path / "raw.en", [en for _, en in pairs])
    clean = write(tmp_path / "clean.en", [normalize_tutorial(en) for _, en in pairs])
    _, err_raw = translate(
        tmp_path, trained_ckpt, f"input={src}", f"reference={raw}", capsys=capsys
    )
    _, err_clean = translate(
        tmp_path, trained_ckpt, f"input={src}", f"reference={clean}", capsys=capsys
    )
    assert err_raw == err_clean and "BLEU = " in err_raw


def test_empty_lines_keep_their_place_and_nbest_lists(tmp_path, trained_ckpt, capsys):
    lines = ["Je suis très fatigué !", "", "   ", "Il est vieux.", "123"]
    src = write(tmp_path / "in.fr", lines)
    out, _ = translate(tmp_path, trained_ckpt, f"input={src}", capsys=capsys)
    one_best = out.splitlines()
    assert len(one_best) == 5 and one_best[1] == one_best[2] == one_best[4] == ""
    assert one_best[0] and one_best[3]
    out, _ = translate(
        tmp_path, trained_ckpt, f"input={src}", "beam_size=4", "nbest=3", capsys=capsys
    )
    rows = [line.split("\t") for line in out.splitlines()]
    assert [int(n) for n, _, _ in rows] == [n for n in range(1, 6) for _ in range(3)]
    assert [(s, t) for n, s, t in rows if n == "2"] == [("0.0000", "")] * 3
    scores = [float(s) for n, s, _ in rows if n == "4"]
    assert scores == sorted(scores, reverse=True) and len({t for n, _, t in rows if n == "4"}) == 3


def test_piped_stdin_and_output_file(tmp_path, trained_ckpt, capsys):
    lines = ["Il est vieux.", "", "Nous sommes contents."]
    expected = Translator.from_checkpoint(trained_ckpt).translate(lines)
    out, _ = translate(tmp_path, trained_ckpt, stdin=io.StringIO("\n".join(lines)), capsys=capsys)
    assert out.splitlines() == expected
    path = tmp_path / "out.en"
    out, _ = translate(tmp_path, trained_ckpt, f"output={path}", stdin=io.StringIO("\n".join(lines) + "\n"),
                       capsys=capsys)  # fmt: skip
    assert out == "" and path.read_text().splitlines() == expected


def test_terminal_input_is_translated_line_by_line(tmp_path, trained_ckpt, capsys):
    typed = Terminal("Il est vieux.\nNous sommes contents.\n")
    out, err = translate(tmp_path, trained_ckpt, stdin=typed, capsys=capsys)
    expected = Translator.from_checkpoint(trained_ckpt).translate(
        ["Il est vieux.", "Nous sommes contents."]
    )
    assert out.splitlines() == expected
    assert err.count("> ") == 3 and "Ctrl-D" in err  # a prompt per line, and one at the end


def test_plot_attention_writes_one_png_per_sentence(tmp_path, trained_ckpt, capsys):
    src = write(tmp_path / "in.fr", ["Il est vieux.", "", "Nous sommes contents."])
    plots = tmp_path / "plots"
    translate(
        tmp_path,
        trained_ckpt,
        f"input={src}",
        f"plot_attention={plots}",
        "beam_size=3",
        capsys=capsys,
    )
    files = sorted(p.name for p in plots.iterdir())
    assert files == ["00001.png", "00003.png"]
    assert all((plots / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)


def test_replace_unk_copies_the_most_attended_source_word():
    vocab = Vocab(["il", "est", "."])
    words = WordTokenizer(vocab)
    translator = Translator(
        Seq2Seq(len(vocab), len(vocab), 8, 8), words, words, {"normalization": "tutorial"}
    )
    attn = torch.tensor([[0.9, 0.05, 0.05, 0.0], [0.1, 0.1, 0.7, 0.1], [0.1, 0.8, 0.1, 0.0]])
    ids = [vocab.word2index["il"], UNK, EOS]
    source = ["il", "est", "zzyzx"]
    tr = Translation(source, words.encode(" ".join(source)), [Hypothesis(ids, -1.0, -1.0, attn)])
    assert translator.output(tr)[0] == ["il", "<unk>"]
    assert translator.output(tr, replace_unk=True)[0] == ["il", "zzyzx"]


def test_a_200_word_line(trained_ckpt, caplog):
    line = " ".join(("Il est vieux et nous sommes contents " * 29).split()[:200])
    translator = Translator.from_checkpoint(trained_ckpt)
    for beam_size in (1, 5):
        out = translator.search([line], DecodingOptions(beam_size=beam_size))[0]
        assert len(out.source) == 200 and 1 <= len(out.hypotheses[0].tokens) <= 1.5 * 201 + 5
    vocab = translator.src_tokenizer
    tutorial = Translator(Seq2Seq(len(vocab), len(vocab), 8, 8, attention="tutorial", max_length=10),
                          vocab, vocab, {"normalization": "tutorial"})  # fmt: skip
    with caplog.at_level("WARNING"):
        out = tutorial.search([line], DecodingOptions(beam_size=3))[0]
    assert len(out.source) == 9 and out.hypotheses
    assert "200 tokens, but the tutorial attention sees only the first 9" in caplog.text


def test_checkpoint_with_pickled_objects_is_refused(tmp_path, trained_ckpt, capsys):
    ckpt = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    marker = tmp_path / "payload-ran"
    ckpt["extra"] = Payload(marker)
    path = tmp_path / "crafted.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(SystemExit) as exit_info:
        translate(tmp_path, path, "text=bonjour", capsys=capsys)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and not marker.exists()
    assert err.count("\n") == 1 and "refused, not a plain-type checkpoint" in err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["beam_size=2", "nbest=3"], "nbest must be an integer in [1, beam_size=2]"),
     (["beam_size=0"], "beam_size must be an integer >= 1"),
     (["strategy=sample", "beam_size=3"], "beam_size=3 needs strategy=beam, not sample"),
     (["top_p=0.9"], "top_p=0.9 needs strategy=sample"),
     (["input=missing.fr"], "input file not found"),
     (["text=bonjour", "reference=REF"], "1 input lines but 2 reference lines"),
     (["reference=REF"], "reference= needs text=, input= or piped standard input"),
     (["ckpt=TRUNCATED", "text=bonjour"], "unreadable checkpoint")],
)  # fmt: skip
def test_bad_input_gives_one_line_and_status_2(tmp_path, trained_ckpt, capsys, overrides, message):
    ref = write(tmp_path / "ref.en", ["a", "b"])
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained_ckpt.read_bytes()[:50_000])
    overrides = [o.replace("REF", str(ref)).replace("TRUNCATED", str(truncated)) for o in overrides]
    with pytest.raises(SystemExit) as exit_info:
        translate(tmp_path, trained_ckpt, *overrides, stdin=Terminal(""), capsys=capsys)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and message in err, err


@pytest.fixture(scope="module")
def tutorial_ckpt(tmp_path_factory) -> Path:
    """A checkpoint of the tutorial's position attention (max_length 10), trained one epoch."""
    from seq2seq_nmt.train.run import train

    out = tmp_path_factory.mktemp("tutorial")
    train(make_cfg(out, "debug=fast", "model=tutorial", "trainer.max_epochs=1", "test=false"))
    return out / "checkpoints" / "last.ckpt"


def translate_cli(ckpt: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_translate(f"ckpt={ckpt}", *args, check=True, **kwargs)


def test_the_truncation_warning_reaches_stderr_from_the_command_line(tutorial_ckpt):
    line = " ".join(["il est grand"] * 10)  # 30 words, the attention sees 9
    proc = translate_cli(tutorial_ckpt, f"text={line}")
    assert (
        "WARNING: line 1: 30 tokens, but the tutorial attention sees only the first 9"
        in proc.stderr
    )
    assert len(proc.stdout.splitlines()) == 1


def test_text_reaches_the_model_as_typed(tutorial_ckpt):
    """No interpolation, no quote rewriting: ${...} stays three words, not 30 from the env."""
    env = os.environ | {"LONG": " ".join(["il est grand"] * 10)}
    proc = translate_cli(tutorial_ckpt, 'text=Il a dit "oui" ${oc.env:LONG}', env=env)
    assert "WARNING" not in proc.stderr  # 7 words after cleaning: no truncation
    typed = translate_cli(tutorial_ckpt, 'text=Il a dit "oui" ${oc.env:LONG} [a, b]', env=env)
    piped = translate_cli(tutorial_ckpt, input='Il a dit "oui" ${oc.env:LONG} [a, b]\n', env=env)
    assert typed.stdout == piped.stdout and typed.stdout.strip()
