"""The translator: a trained model (or an ensemble of several) with its vocabularies and
preprocessing; raw sentences in, translations out, decoded in length-sorted batches."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import (
    CHECKPOINT_KEY,
    ENSEMBLE_PARTS,
    CheckpointError,
    check_compatible,
    first_line,
    load_checkpoint,
    load_network,
)
from .data.batch import collate
from .data.normalize import get_normalizer
from .data.vocab import EOS, PAD, SOS, UNK, Vocab
from .ensemble import Ensemble
from .model import Seq2Seq
from .search import Hypothesis, beam_search, greedy_hypotheses, output_limits

log = logging.getLogger(__name__)


@dataclass
class Translation:
    """One input line: its normalised source words as the model saw them, its outputs best first."""

    source: list[str]
    hypotheses: list[Hypothesis]  # empty for an empty line


class Translator:
    """A trained model with its vocabularies and preprocessing: raw sentences in, translations out."""

    def __init__(
        self, model: Seq2Seq | Ensemble, src_vocab: Vocab, tgt_vocab: Vocab, data_config: dict
    ):
        self.model = model.eval()
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.data_config = dict(data_config)
        self.normalize = get_normalizer(data_config["normalization"])
        self.max_length = model.max_length

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Translator":
        return cls.from_checkpoints([path], device)

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | Path], device: str = "cpu") -> "Translator":
        """One checkpoint's model, or the ensemble of several with the same vocabularies and
        normalisation (CheckpointError, one line, otherwise)."""
        if not paths:
            raise CheckpointError("no checkpoint given")
        ckpts = [load_checkpoint(p) for p in paths]
        check_compatible(paths, ckpts, ENSEMBLE_PARTS)
        models = [load_network(p, c) for p, c in zip(paths, ckpts, strict=True)]
        meta = ckpts[0][CHECKPOINT_KEY]
        try:
            translator = cls(
                models[0] if len(models) == 1 else Ensemble(models),
                Vocab.from_dict(meta["src_vocab"]),
                Vocab.from_dict(meta["tgt_vocab"]),
                meta["data"],
            )
        except (TypeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{paths[0]}: inconsistent checkpoint ({first_line(e)})") from e
        translator.model.to(device)
        return translator

    def encode(self, line: str, lineno: int = 0) -> list[str]:
        """Normalised source words; for the tutorial attention, cut to its ``max_length`` slots."""
        words = self.normalize(line).split()
        if self.max_length is not None and len(words) >= self.max_length:
            log.warning(
                "line %d: %d words, but the tutorial attention sees only the first %d; "
                "the rest is not translated",
                lineno, len(words), self.max_length - 1,
            )  # fmt: skip
            words = words[: self.max_length - 1]
        return words

    @torch.no_grad()
    def search(
        self,
        lines: Sequence[str],
        beam_size: int = 1,
        nbest: int = 1,
        length_penalty: float = 1.0,
        batch_size: int = 64,
        max_output_ratio: float = 1.5,
        max_output_offset: int = 5,
        first_lineno: int = 1,
    ) -> list[Translation]:
        """Decode ``lines`` in length-sorted batches (greedy when ``beam_size`` is 1), in order.

        Outputs are at most ``max_output_ratio * source tokens + max_output_offset`` tokens long.
        """
        out = [Translation(self.encode(s, i), []) for i, s in enumerate(lines, first_lineno)]
        todo = sorted((i for i, t in enumerate(out) if t.source), key=lambda i: len(out[i].source))
        device = next(self.model.parameters()).device
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            ids = [np.asarray(self.src_vocab.encode(" ".join(out[i].source))) for i in idx]
            batch = collate([(s, s, None) for s in ids])
            src, src_len = batch["src"].to(device), batch["src_len"].to(device)
            limits = output_limits(src_len, max_output_ratio, max_output_offset)
            if beam_size == 1:
                hyps = greedy_hypotheses(self.model, src, src_len, limits, length_penalty)
            else:
                hyps = beam_search(
                    self.model, src, src_len, limits, beam_size, length_penalty, nbest
                )
            for i, n, h in zip(idx, src_len.tolist(), hyps, strict=True):
                out[i].hypotheses = [
                    Hypothesis(x.tokens, x.score, x.norm_score, x.attn[:, :n].cpu()) for x in h
                ]
        return out

    def output(
        self, tr: Translation, rank: int = 0, replace_unk: bool = False, eos: bool = False
    ) -> tuple[list[str], torch.Tensor]:
        """Words of hypothesis ``rank`` (with ``<eos>`` if asked and reached) and their attention rows.

        ``replace_unk``: each ``<unk>`` becomes the source word it attends to most.
        """
        if not tr.hypotheses:
            return [], torch.empty(0, len(tr.source) + 1)
        hyp = tr.hypotheses[rank]
        rows = [
            j for j, t in enumerate(hyp.tokens) if t not in (PAD, SOS, EOS) or (eos and t == EOS)
        ]
        words = [self.tgt_vocab.index2word[hyp.tokens[j]] for j in rows]
        if replace_unk:
            src_pos = hyp.attn[rows, : len(tr.source)].argmax(-1).tolist()
            unk = self.tgt_vocab.index2word[UNK]
            words = [tr.source[p] if w == unk else w for w, p in zip(words, src_pos, strict=True)]
        return words, hyp.attn[rows]

    def translate(self, lines: Sequence[str], replace_unk: bool = False, **search) -> list[str]:
        """The best translation of each line (empty lines give empty strings)."""
        return [" ".join(self.output(t, 0, replace_unk)[0]) for t in self.search(lines, **search)]
