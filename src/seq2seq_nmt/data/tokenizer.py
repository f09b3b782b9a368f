"""Tokenizers: cleaned text <-> ids for one side, trained on the training split only.

A config group option (``conf/tokenizer/``) instantiates a *trainer* (``Words`` or
``SentencePiece``) whose ``train`` returns the (source, target) tokenizers. A tokenizer
(``WordTokenizer``, ``SentencePieceTokenizer``) encodes with EOS, decodes (detokenised for
subwords) and travels as plain types (``to_dict``; ``from_dict`` reads one by its ``kind``), so
a checkpoint holds everything translation needs. Ids 0..3 are always PAD, SOS, EOS, UNK.
"""

import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np

from seq2seq_nmt.data.vocab import (
    EOS,
    PAD,
    SOS,
    SPECIALS,
    UNK,
    Vocab,
    content_positions,
    strip_specials,
)

log = logging.getLogger(__name__)
Lines = Callable[[], Iterator[str]]  # a fresh pass over one side's training sentences


class Tokenizer(Protocol):
    """One side's text <-> ids (ids 0..3: PAD, SOS, EOS, UNK), stored in checkpoints."""

    kind: str  # its name in TOKENIZERS
    detokenizes: bool  # decode() gives running text, scored against raw references

    def __len__(self) -> int: ...
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def pieces(self, ids: Iterable[int]) -> list[str]: ...
    def to_dict(self) -> dict: ...
    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer": ...


class TokenizerTrainer(Protocol):
    """What a ``conf/tokenizer/`` option instantiates: trains the (source, target) tokenizers."""

    kind: str
    normalization: str | None  # a normaliser that replaces dataset.normalization; None keeps it
    subwords: bool  # true: model.attention=tutorial (word positions) is refused with it

    def settings(self) -> dict:
        """Its options as plain types, ``kind`` included: part of the preprocessing cache key."""
        ...

    def train(
        self, src: Lines, tgt: Lines, min_freq: Sequence[int], max_size: Sequence[int | None]
    ) -> tuple[Tokenizer, Tokenizer]:
        """The (source, target) tokenizers trained on fresh passes ``src()``, ``tgt()``."""
        ...


def labelled_positions(
    tokenizer: Tokenizer, ids: Sequence[int], eos: bool = False
) -> tuple[list[int], list[str]]:
    """The positions of an output's tokens in ``ids`` (``vocab.content_positions``) and their
    pieces, ``<eos>`` last when ``eos`` and reached: an attention plot's rows and labels."""
    rows = content_positions(ids, eos)
    tokens = [ids[j] for j in rows]
    return rows, tokenizer.pieces(tokens) + [SPECIALS[EOS]] * (EOS in tokens)


class WordTokenizer:
    """Whitespace-separated words of the cleaned text and a ``Vocab`` (UNK for the rest)."""

    kind, detokenizes = "words", False

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.vocab.encode(t) for t in texts]

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return self.vocab.decode(ids)

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.pieces(ids))

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.vocab.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "WordTokenizer":
        return cls(Vocab.from_dict(d))


class SentencePieceTokenizer:
    """A SentencePiece model (BPE or unigram) whose ids 0..3 are PAD, SOS, EOS, UNK."""

    kind, detokenizes = "sentencepiece", True

    def __init__(self, model: bytes):
        import sentencepiece as spm

        self.model = bytes(model)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model)
        specials = tuple(self.sp.id_to_piece(i) for i in range(len(SPECIALS)))
        if specials != SPECIALS:
            raise ValueError(f"sentencepiece model's ids 0..3 are {specials}, not {SPECIALS}")

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        ids = self.sp.encode(list(texts), num_threads=os.cpu_count() or 1)
        for seq in ids:
            seq.append(EOS)
        return ids

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self.sp.id_to_piece(i) for i in strip_specials(ids)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode(strip_specials(ids))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model": self.model}

    @classmethod
    def from_dict(cls, d: dict) -> "SentencePieceTokenizer":
        return cls(d["model"])


TOKENIZERS: dict[str, type[Tokenizer]] = {
    "words": WordTokenizer,
    "sentencepiece": SentencePieceTokenizer,
}


def from_dict(d: dict) -> Tokenizer:
    """The tokenizer ``to_dict`` gave (a ``Vocab.to_dict`` without ``kind`` is ``words``)."""
    kind = d.get("kind", "words")
    if kind not in TOKENIZERS:
        raise ValueError(
            f"unknown tokenizer kind {kind!r}; this version reads {sorted(TOKENIZERS)}"
        )
    return TOKENIZERS[kind].from_dict(d)


class Words:
    """``tokenizer=words``: the word vocabularies of the reproduced tutorial, one per side, sized by
    ``dataset.min_freq`` and ``dataset.max_vocab_size``. Cleaning: ``dataset.normalization``."""

    kind, normalization, subwords = "words", None, False

    def settings(self) -> dict:
        return {"kind": self.kind}

    def train(
        self, src: Lines, tgt: Lines, min_freq: Sequence[int], max_size: Sequence[int | None]
    ) -> tuple[WordTokenizer, WordTokenizer]:
        """Count each side's words; keep those seen ``min_freq`` times, at most ``max_size``."""
        out = []
        for lines, freq, size in zip((src, tgt), min_freq, max_size, strict=True):
            counts = Counter()
            for line in lines():
                counts.update(line.split())
            out.append(WordTokenizer(Vocab.from_counts(counts, freq, size)))
        return out[0], out[1]


class SentencePiece:
    """``tokenizer=sentencepiece``: BPE or unigram subwords, one joint model or one per side,
    trained on at most ``max_sentences`` training sentences (a seeded sample) with
    ``character_coverage`` 1.0 and ``byte_fallback``, so that no character is lost. Cleaning:
    ``normalization`` (``unicode`` by default), which overrides ``dataset.normalization``."""

    kind, subwords = "sentencepiece", True

    def __init__(
        self,
        vocab_size: int = 8000,
        model_type: str = "bpe",
        joint: bool = True,
        character_coverage: float = 1.0,
        byte_fallback: bool = True,
        max_sentences: int = 1_000_000,
        normalization: str = "unicode",
        seed: int = 0,
    ):
        self.vocab_size, self.model_type, self.joint = vocab_size, model_type, joint
        self.character_coverage, self.byte_fallback = character_coverage, byte_fallback
        self.max_sentences, self.normalization, self.seed = max_sentences, normalization, seed

    def settings(self) -> dict:
        keys = ("vocab_size", "model_type", "joint", "character_coverage", "byte_fallback")
        keys += ("max_sentences", "normalization", "seed")
        return {"kind": self.kind} | {k: getattr(self, k) for k in keys}

    def train(
        self, src: Lines, tgt: Lines, min_freq: Sequence[int], max_size: Sequence[int | None]
    ) -> tuple[SentencePieceTokenizer, SentencePieceTokenizer]:
        """One model on both sides' sentences (``joint``) or one per side; ``min_freq`` and
        ``max_size`` are word-vocabulary settings and do not apply."""
        if self.joint:
            model = self._train(lambda: (s for lines in (src, tgt) for s in lines()))
            return model, model
        return self._train(src), self._train(tgt)

    def _sample(self, lines: Lines) -> Iterator[str]:
        """At most ``max_sentences`` of ``lines``, a seeded uniform sample in corpus order."""
        n = sum(1 for _ in lines())
        if n <= self.max_sentences:
            yield from lines()
            return
        rng = np.random.default_rng(self.seed)
        keep = np.zeros(n, dtype=bool)
        keep[rng.choice(n, self.max_sentences, replace=False)] = True
        log.info("sentencepiece: training on %d of %d sentences", self.max_sentences, n)
        yield from (s for s, k in zip(lines(), keep, strict=True) if k)

    def _train(self, lines: Lines) -> SentencePieceTokenizer:
        import sentencepiece as spm

        sample = list(self._sample(lines))
        vocab_size = self.vocab_size
        if self.character_coverage == 1.0:  # every character (and each byte) needs a piece
            chars = {"▁"}  # what sentencepiece makes of the space
            for sentence in sample:
                chars.update(sentence)
            chars.discard(" ")
            need = len(SPECIALS) + 256 * self.byte_fallback + len(chars)
            if vocab_size < need:
                log.warning(
                    "tokenizer.vocab_size=%d is below the %d pieces that the %d characters of "
                    "the training text%s need: using %d",
                    vocab_size, need, len(chars), " and the 256 bytes" * self.byte_fallback, need,
                )  # fmt: skip
                vocab_size = need
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sample),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=self.model_type,
            character_coverage=self.character_coverage,
            byte_fallback=self.byte_fallback,
            hard_vocab_limit=False,  # a small corpus gets fewer pieces, not an error
            normalization_rule_name="identity",  # the text is cleaned already: decode(encode(x)) == x
            pad_id=PAD, bos_id=SOS, eos_id=EOS, unk_id=UNK,
            pad_piece=SPECIALS[PAD], bos_piece=SPECIALS[SOS],
            eos_piece=SPECIALS[EOS], unk_piece=SPECIALS[UNK],
            input_sentence_size=0, shuffle_input_sentence=False,
            num_threads=os.cpu_count() or 1, minloglevel=2,
        )  # fmt: skip
        return SentencePieceTokenizer(model.getvalue())
