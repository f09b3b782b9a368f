"""Load a checkpoint safely and translate raw sentences with it."""

import logging
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .data.datamodule import collate
from .data.normalize import get_normalizer
from .data.vocab import Vocab
from .model import Seq2Seq
from .module import CHECKPOINT_KEY
from .search import greedy, output_limits

log = logging.getLogger(__name__)


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable, unsafe or not ours (one-line message)."""


def _first_line(e: BaseException, limit: int = 120) -> str:
    """``Type: first line`` of an exception, cut to ``limit`` characters."""
    line = (str(e).strip().splitlines() or [""])[0]
    text = f"{type(e).__name__}: {line}" if line else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load(weights_only=True)`` with one-line errors; checks it is a seq2seq-nmt checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, not a plain-type checkpoint ({_first_line(e)})"
        ) from e
    except Exception as e:  # truncated zip, foreign bytes, ...
        raise CheckpointError(f"{path}: unreadable checkpoint ({_first_line(e)})") from e
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a seq2seq-nmt checkpoint (no '{CHECKPOINT_KEY}' entry)")
    return ckpt


class Translator:
    """A trained model with its vocabularies and preprocessing: raw sentences in, translations out."""

    def __init__(self, model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, data_config: dict):
        self.model = model.eval()
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.normalize = get_normalizer(data_config["normalization"])
        self.max_length = model.max_length

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Translator":
        ckpt = load_checkpoint(path)
        meta = ckpt[CHECKPOINT_KEY]
        try:
            model = Seq2Seq(**meta["model"])
            prefix = "net."
            state = {
                k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)
            }
            model.load_state_dict(state)
            vocabs = Vocab.from_dict(meta["src_vocab"]), Vocab.from_dict(meta["tgt_vocab"])
            return cls(model.to(device), *vocabs, meta["data"])
        except (TypeError, KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: inconsistent checkpoint ({_first_line(e)})") from e

    def encode(self, line: str, lineno: int = 0) -> list[int]:
        """Normalised ids with EOS; for the tutorial attention, cut to its ``max_length`` slots."""
        ids = self.src_vocab.encode(self.normalize(line))
        if self.max_length is not None and len(ids) > self.max_length:
            log.warning(
                "line %d: %d words, but the tutorial attention sees only %d; the rest is dropped",
                lineno, len(ids) - 1, self.max_length - 1,
            )  # fmt: skip
            ids = ids[: self.max_length - 1] + ids[-1:]
        return ids

    @torch.no_grad()
    def translate(
        self, lines: Sequence[str], batch_size: int = 64, ratio: float = 1.5, offset: int = 5
    ) -> list[str]:
        """Translate ``lines`` in length-sorted batches; empty lines give empty outputs, in order."""
        encoded = [
            self.encode(line, i + 1) if self.normalize(line) else None
            for i, line in enumerate(lines)
        ]
        todo = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
        out = [""] * len(lines)
        device = next(self.model.parameters()).device
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            items = [(np.asarray(encoded[i]), np.asarray(encoded[i]), None) for i in idx]
            batch = collate(items)
            src, src_len = batch["src"].to(device), batch["src_len"].to(device)
            tokens, _ = greedy(self.model, src, src_len, output_limits(src_len, ratio, offset))
            for i, hyp in zip(idx, tokens.tolist(), strict=True):
                out[i] = " ".join(self.tgt_vocab.decode(hyp))
        return out


def quote_text_arg(arg: str) -> str:
    """Quote a ``text=...`` override so that any sentence passes Hydra's override grammar.

    Quotes are dropped by normalisation anyway, so when a sentence holds both kinds, its double
    quotes become single ones.
    """
    key, sep, value = arg.partition("=")
    if key.lstrip("+") != "text" or not sep or value[:1] in ("'", '"'):
        return arg
    value = value.rstrip("\\")
    if '"' in value and "'" not in value:
        return f"{key}='{value}'"
    return f'{key}="' + value.replace('"', "'") + '"'


def read_input(cfg) -> list[str]:
    """Lines from ``text``, ``input`` (a file) or standard input."""
    if cfg.get("text") is not None:
        return str(cfg.text).split("\n")
    if cfg.get("input"):
        path = Path(cfg.input)
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    return sys.stdin.read().splitlines()


def run(cfg) -> None:
    """translate.py's body: one-line errors on stderr and exit status 2 for bad input."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        translator = Translator.from_checkpoint(cfg.ckpt, cfg.get("device", "cpu"))
        lines = read_input(cfg)
    except (CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    outputs = translator.translate(
        lines, cfg.batch_size, cfg.max_output_ratio, cfg.max_output_offset
    )
    text = "".join(o + "\n" for o in outputs)
    if cfg.get("output"):
        Path(cfg.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
