"""The translator: a trained model (or an ensemble of several) with its tokenizers and
preprocessing; raw sentences in, translations out, decoded in length-sorted batches, in fp32,
bf16 or int8 (dynamically quantised, CPU only)."""

import copy
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seq2seq_nmt.checkpoint import (
    CHECKPOINT_KEY,
    ENSEMBLE_PARTS,
    CheckpointError,
    check_compatible,
    first_line,
    load_checkpoint,
    load_network,
)
from seq2seq_nmt.data.batch import collate
from seq2seq_nmt.data.normalize import get_normalizer
from seq2seq_nmt.data.tokenizer import Tokenizer, labelled_positions
from seq2seq_nmt.data.tokenizer import from_dict as tokenizer_from_dict
from seq2seq_nmt.data.vocab import EOS, SPECIALS, UNK
from seq2seq_nmt.decoding.ensemble import Ensemble
from seq2seq_nmt.decoding.options import DecodingOptions, check_batch_size
from seq2seq_nmt.decoding.search import Hypothesis
from seq2seq_nmt.decoding.strategies import decode, generators
from seq2seq_nmt.model import Seq2Seq

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "bf16", "int8")
NO_REPLACE_UNK = (
    "replace_unk=true needs a word-level checkpoint (tokenizer=words); this one uses subwords, "
    "which spell out rare words (and have no <unk> with byte fallback)"
)


def check_precision(precision: str, device: str) -> None:
    """ValueError (one line) unless ``precision`` is one of ``PRECISIONS`` and runs on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: one of {', '.join(PRECISIONS)}")
    if precision == "int8" and str(device).partition(":")[0] != "cpu":
        raise ValueError(f"precision=int8 (dynamic quantisation) runs on CPU only, not {device}")


def quantize(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its Linear, GRU and LSTM layers dynamically quantised to int8."""
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        return torch.ao.quantization.quantize_dynamic(
            model, {nn.Linear, nn.GRU, nn.LSTM}, dtype=torch.qint8
        )


def with_precision(model: nn.Module, precision: str) -> nn.Module:
    """``model`` itself for fp32, else a copy cast to bfloat16 or dynamically quantised to int8."""
    if precision == "int8":
        return quantize(model)
    return copy.deepcopy(model).to(torch.bfloat16) if precision == "bf16" else model


@dataclass
class Translation:
    """One input line: its source tokens as the model saw them (words or subword pieces, EOS
    left out) with their ids (EOS included), and its outputs best first."""

    source: list[str]
    ids: list[int]
    hypotheses: list[Hypothesis]  # empty for an empty line


class Translator:
    """A trained model with its tokenizers and preprocessing: raw sentences in, translations out.

    ``precision`` (``with_precision``): ``fp32``; ``bf16``, a copy of the model cast to bfloat16;
    ``int8``, a copy with int8 dynamically quantised Linear and recurrent layers (CPU only)."""

    def __init__(
        self,
        model: Seq2Seq | Ensemble,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        data_config: dict,
        precision: str = "fp32",
    ):
        check_precision(precision, str(next(model.parameters()).device))
        self.model = with_precision(model, precision).eval()
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        self.data_config = dict(data_config)
        self.normalize = get_normalizer(data_config["normalization"])
        self.max_length = model.max_length

    @property
    def subwords(self) -> bool:
        """Whether the output is detokenised subword text (scored against raw references)."""
        return self.tgt_tokenizer.detokenizes

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "cpu", precision: str = "fp32"
    ) -> "Translator":
        return cls.from_checkpoints([path], device, precision)

    @classmethod
    def from_checkpoints(
        cls, paths: Sequence[str | Path], device: str = "cpu", precision: str = "fp32"
    ) -> "Translator":
        """One checkpoint's model, or the ensemble of several with the same tokenizers and
        normalisation (CheckpointError, one line, otherwise), decoding in ``precision``
        (ValueError, one line, when unknown or not for ``device``)."""
        check_precision(precision, device)  # before any checkpoint is read
        if not paths:
            raise CheckpointError("no checkpoint given")
        return cls.from_loaded(paths, [load_checkpoint(p) for p in paths], device, precision)

    @classmethod
    def from_loaded(
        cls, paths: Sequence[str | Path], ckpts: Sequence[dict], device: str = "cpu",
        precision: str = "fp32",
    ) -> "Translator":  # fmt: skip
        """``from_checkpoints`` on checkpoints already read (``load_checkpoint``) from ``paths``."""
        check_precision(precision, device)
        check_compatible(paths, ckpts, ENSEMBLE_PARTS)
        models = [load_network(p, c) for p, c in zip(paths, ckpts, strict=True)]
        meta = ckpts[0][CHECKPOINT_KEY]
        try:
            translator = cls(
                models[0] if len(models) == 1 else Ensemble(models),
                tokenizer_from_dict(meta["src_tokenizer"]),
                tokenizer_from_dict(meta["tgt_tokenizer"]),
                meta["data"],
                precision,
            )
        except (TypeError, KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{paths[0]}: inconsistent checkpoint ({first_line(e)})") from e
        translator.model.to(device)
        return translator

    def encode(self, line: str, lineno: int = 0) -> list[int]:
        """Ids of the cleaned line (EOS included; none for an empty line); for the tutorial
        attention, cut to its ``max_length`` slots."""
        text = self.normalize(line)
        if not text:
            return []
        ids = self.src_tokenizer.encode_batch([text])[0]
        if self.max_length is not None and len(ids) > self.max_length:
            log.warning(
                "line %d: %d tokens, but the tutorial attention sees only the first %d; "
                "the rest is not translated",
                lineno, len(ids) - 1, self.max_length - 1,
            )  # fmt: skip
            ids = [*ids[: self.max_length - 1], EOS]
        return ids

    def _translation(self, line: str, lineno: int) -> Translation:
        ids = self.encode(line, lineno)
        return Translation(self.src_tokenizer.pieces(ids), ids, [])

    @torch.no_grad()
    def search(
        self,
        lines: Sequence[str],
        options: DecodingOptions | None = None,
        batch_size: int = 64,
        first_lineno: int = 1,
    ) -> list[Translation]:
        """Decode ``lines`` in length-sorted batches with ``options`` (default: greedy), in
        order; ``first_lineno`` numbers the lines in warnings."""
        options = options or DecodingOptions()
        check_batch_size(batch_size)
        out = [self._translation(s, i) for i, s in enumerate(lines, first_lineno)]
        todo = sorted((i for i, t in enumerate(out) if t.ids), key=lambda i: len(out[i].ids))
        device = next(self.model.parameters()).device
        seeded = generators(options.seed, device)
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            ids = [np.asarray(out[i].ids) for i in idx]
            batch = collate([(s, s, None) for s in ids])
            src, src_len = batch["src"].to(device), batch["src_len"].to(device)
            hyps = decode(self.model, src, src_len, options, next(seeded))
            for i, n, h in zip(idx, src_len.tolist(), hyps, strict=True):
                out[i].hypotheses = [
                    Hypothesis(x.tokens, x.score, x.norm_score, x.attn[:, :n].float().cpu())
                    for x in h
                ]
        return out

    def output(
        self, tr: Translation, rank: int = 0, replace_unk: bool = False, eos: bool = False
    ) -> tuple[list[str], torch.Tensor]:
        """Tokens (words or pieces) of hypothesis ``rank`` (with ``<eos>`` if asked and reached)
        and their attention rows.

        ``replace_unk`` (words only): each ``<unk>`` becomes the source word it attends to most.
        """
        if replace_unk and self.subwords:
            raise ValueError(NO_REPLACE_UNK)
        if not tr.hypotheses:
            return [], torch.empty(0, len(tr.source) + 1)
        hyp = tr.hypotheses[rank]
        rows, pieces = labelled_positions(self.tgt_tokenizer, hyp.tokens, eos)
        if replace_unk:
            src_pos = hyp.attn[rows, : len(tr.source)].argmax(-1).tolist()
            unk = SPECIALS[UNK]
            pieces = [tr.source[p] if w == unk else w for w, p in zip(pieces, src_pos, strict=True)]
        return pieces, hyp.attn[rows]

    def text(self, tr: Translation, rank: int = 0, replace_unk: bool = False) -> str:
        """Hypothesis ``rank`` as text: detokenised for subwords, the words joined otherwise."""
        if not tr.hypotheses:
            return ""
        if self.subwords:
            return self.tgt_tokenizer.decode(tr.hypotheses[rank].tokens)
        return " ".join(self.output(tr, rank, replace_unk)[0])

    def translate(
        self, lines: Sequence[str], batch_size: int = 64, replace_unk: bool = False, **options
    ) -> list[str]:
        """The best translation of each line (empty lines give empty strings); ``options``:
        ``DecodingOptions`` fields (``beam_size=5``, ``strategy="sample"``, ...)."""
        found = self.search(lines, DecodingOptions.from_mapping(options), batch_size)
        return [self.text(t, 0, replace_unk) for t in found]
