"""The checkpoint format (seq2seq_nmt.checkpoint): the payload a training run writes, a checkpoint
of the previous format that still loads, a format this version does not know refused in one line."""

import re

import pytest
import torch

from helpers import run_translate
from seq2seq_nmt import __version__
from seq2seq_nmt.checkpoint import (
    CHECKPOINT_KEY,
    FORMAT,
    WEIGHTS_PREFIX,
    CheckpointError,
    load_checkpoint,
    network_weights,
)
from seq2seq_nmt.model import Seq2Seq
from seq2seq_nmt.translate.translator import Translator

LINES = ["je suis fatigue .", "il est grand .", "nous sommes prets ."]


def raw(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_a_run_writes_the_current_format_and_names_the_weights_with_one_prefix(trained_ckpt):
    ckpt = raw(trained_ckpt)
    payload = ckpt[CHECKPOINT_KEY]
    assert payload["format"] == FORMAT and payload["version"] == __version__
    assert set(payload) == {
        "format", "version", "model", "src_tokenizer", "tgt_tokenizer", "data", "run",
    }  # fmt: skip
    assert isinstance(payload["run"], str) and len(payload["run"]) == 32  # the run's identity
    assert all(k.startswith(WEIGHTS_PREFIX) for k in ckpt["state_dict"])
    net = Seq2Seq(**payload["model"])
    assert network_weights(ckpt["state_dict"]).keys() == net.state_dict().keys()


def previous_format(ckpt: dict, fmt: int) -> dict:
    """The payload as the package wrote it in format 1 (word vocabularies and a ``direction``)
    or before ``format`` existed (format 0: the same without the key)."""
    payload = ckpt[CHECKPOINT_KEY]
    vocabs = {f"{side}_vocab": dict(payload[f"{side}_tokenizer"]) for side in ("src", "tgt")}
    for vocab in vocabs.values():
        assert vocab.pop("kind") == "words"
    data = {k: v for k, v in payload["data"].items() if k not in ("src_lang", "tgt_lang")}
    data["direction"] = f"{payload['data']['src_lang']}-{payload['data']['tgt_lang']}"
    old = {"version": "0.1.0", "model": payload["model"], "data": data, **vocabs}
    return {**ckpt, CHECKPOINT_KEY: old | ({"format": fmt} if fmt else {})}


@pytest.mark.parametrize("fmt", [0, 1])
def test_a_checkpoint_of_a_previous_format_still_loads(tmp_path, trained_ckpt, fmt):
    old = tmp_path / "old.ckpt"
    torch.save(previous_format(raw(trained_ckpt), fmt), old)
    assert raw(old)[CHECKPOINT_KEY].get("format") == (fmt or None)
    upgraded = load_checkpoint(old)[CHECKPOINT_KEY]  # read as the current format
    assert upgraded == raw(trained_ckpt)[CHECKPOINT_KEY] | {"version": "0.1.0", "run": None}
    expected = Translator.from_checkpoint(trained_ckpt).translate(LINES)
    assert Translator.from_checkpoint(old).translate(LINES) == expected
    assert Translator.from_checkpoints([trained_ckpt, old]).translate(LINES)  # an ensemble


def test_a_format_this_version_does_not_know_is_refused_in_one_line(tmp_path, trained_ckpt):
    ckpt = raw(trained_ckpt)
    ckpt[CHECKPOINT_KEY] |= {"format": 999, "version": "9.0.0"}
    future = tmp_path / "future.ckpt"
    torch.save(ckpt, future)
    message = f"{future}: unknown checkpoint format 999 (written by seq2seq-nmt 9.0.0)"
    with pytest.raises(CheckpointError, match="^" + re.escape(message)):
        Translator.from_checkpoint(future)
    out = run_translate(f"ckpt={future}", "text=bonjour")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
