"""Checkpoint averaging: the elementwise mean, which checkpoints --best/--last pick, the result
translates, and mismatched or missing checkpoints are refused with one line and status 2."""

import re
import subprocess
import sys

import pytest
import torch

from helpers import ROOT
from seq2seq_nmt.checkpoint import WEIGHTS_PREFIX
from seq2seq_nmt.tools.average import main
from seq2seq_nmt.translate.translator import Translator


def load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def run_average(capsys, *args) -> int:
    """``python -m seq2seq_nmt.tools.average ARGS`` in this process: its exit status."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return 0


def assert_mean(output, inputs) -> None:
    """``output`` holds the elementwise mean of the inputs' weights and the first's nmt entry."""
    out, ins = load(output), [load(p) for p in inputs]
    assert out["nmt"] == ins[0]["nmt"] and out["averaged_from"] == [str(p) for p in inputs]
    assert out["state_dict"].keys() == ins[0]["state_dict"].keys()
    for k, v in out["state_dict"].items():
        mean = torch.stack([c["state_dict"][k] for c in ins]).mean(0)
        torch.testing.assert_close(v, mean, rtol=1e-6, atol=1e-7, msg=k)
    a, b = ins[0]["state_dict"], ins[-1]["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a)  # a mean of different weights


def test_best_two_of_a_run_are_averaged_and_translate(tmp_path, trained_run, capsys):
    files = sorted((trained_run / "checkpoints").glob("epoch*.ckpt"))
    bleu = {p: float(re.search(r"bleu(\d+\.\d+)", p.name).group(1)) for p in files}
    best = sorted(files, key=lambda p: -bleu[p])[:2]
    out = tmp_path / "avg.ckpt"
    assert run_average(capsys, trained_run, "--best", 2, "--output", out) == 0
    assert_mean(out, best)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avg.ckpt"]  # no temporary file left
    assert "averaged 2 checkpoints" in capsys.readouterr().err

    translator = Translator.from_checkpoint(out)
    net = {k.removeprefix(WEIGHTS_PREFIX): v for k, v in load(out)["state_dict"].items()}
    for k, v in translator.model.state_dict().items():
        assert torch.equal(v, net[k])
    assert all(translator.translate(["Il est vieux.", "Nous sommes contents."]))


def test_last_n_and_explicit_lists(tmp_path, trained_run, capsys):
    ckpts = sorted((trained_run / "checkpoints").glob("*.ckpt"))
    assert len(ckpts) == 3  # two scored + last.ckpt
    steps = {str(p): load(p)["global_step"] for p in ckpts}
    assert run_average(capsys, trained_run, "--last", 2, "-o", tmp_path / "last2.ckpt") == 0
    chosen = load(tmp_path / "last2.ckpt")["averaged_from"]
    assert [steps[p] for p in chosen] == sorted(set(steps.values()), reverse=True)[:2]
    assert run_average(capsys, *ckpts, "-o", tmp_path / "all.ckpt") == 0
    assert_mean(tmp_path / "all.ckpt", ckpts)


def mismatched(tmp_path, source, part: str):
    ckpt = load(source)
    if part == "tgt_tokenizer":
        words = ckpt["nmt"]["tgt_tokenizer"]["index2word"]
        words[-1], words[-2] = words[-2], words[-1]
    else:
        ckpt["nmt"]["model"]["dropout"] = 0.5
    path = tmp_path / f"{part}.ckpt"
    torch.save(ckpt, path)
    return path


def test_mismatched_vocabularies_are_refused_on_the_command_line(tmp_path, trained_ckpt):
    other = mismatched(tmp_path, trained_ckpt, "tgt_tokenizer")
    out = tmp_path / "avg.ckpt"
    proc = subprocess.run(
        [sys.executable, "-m", "seq2seq_nmt.tools.average", str(trained_ckpt), str(other), "-o", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "" and not out.exists()
    assert (
        proc.stderr == f"error: {other}: its target tokenizer differs from that of {trained_ckpt}\n"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [("model", "its model configuration differs"), ("missing", "checkpoint not found"),
     ("truncated", "unreadable checkpoint"), ("empty_dir", "no checkpoints (*.ckpt) in")],
)  # fmt: skip
def test_bad_inputs_give_one_line_and_status_2(tmp_path, trained_run, trained_ckpt, capsys, make,
                                               message):  # fmt: skip
    if make == "model":
        other = mismatched(tmp_path, trained_ckpt, "model")
    elif make == "truncated":
        other = tmp_path / "truncated.ckpt"
        other.write_bytes(trained_ckpt.read_bytes()[:50_000])
    elif make == "empty_dir":
        other = tmp_path / "run"
        other.mkdir()
    else:
        other = tmp_path / "missing.ckpt"
    out = tmp_path / "out" / "avg.ckpt"
    assert run_average(capsys, trained_ckpt, other, "-o", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()
