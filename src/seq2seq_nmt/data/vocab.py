"""Vocabulary: the tutorial's ``Lang`` (word2index, index2word, word2count) with reserved specials."""

from collections import Counter
from collections.abc import Iterable, Sequence

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<sos>", "<eos>", "<unk>")


def content_positions(ids: Sequence[int], eos: bool = False) -> list[int]:
    """Positions of a sentence's tokens in ``ids``: before the first EOS, PAD and SOS left out;
    with ``eos``, that EOS's position too (an attention plot's last row)."""
    out = []
    for j, i in enumerate(ids):
        if i == EOS:
            return [*out, j] if eos else out
        if i not in (PAD, SOS):
            out.append(j)
    return out


def strip_specials(ids: Iterable[int]) -> list[int]:
    """A sentence's token ids: ``ids`` up to the first EOS, PAD and SOS left out."""
    ids = list(ids)
    return [int(ids[j]) for j in content_positions(ids)]


class Vocab:
    """Word <-> id mapping; ids 0..3 are PAD, SOS, EOS, UNK, every other word is counted."""

    def __init__(self, words: Iterable[str] = (), counts: dict[str, int] | None = None):
        self.index2word: list[str] = list(SPECIALS)
        self.word2index: dict[str, int] = {w: i for i, w in enumerate(SPECIALS)}
        self.word2count: dict[str, int] = dict(counts or {})
        for w in words:
            if w not in self.word2index:
                self.word2index[w] = len(self.index2word)
                self.index2word.append(w)

    @classmethod
    def build(
        cls, sentences: Iterable[str], min_freq: int = 1, max_size: int | None = None
    ) -> "Vocab":
        """Count words in space-tokenised sentences; keep those seen ``min_freq`` times, most frequent first."""
        return cls.from_counts(Counter(w for s in sentences for w in s.split()), min_freq, max_size)

    @classmethod
    def from_counts(
        cls, counts: dict[str, int], min_freq: int = 1, max_size: int | None = None
    ) -> "Vocab":
        """Keep the words counted at least ``min_freq`` times, most frequent first, at most ``max_size``."""
        kept = sorted(
            (w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w)
        )
        return cls(kept[:max_size] if max_size else kept, dict(counts))

    def __len__(self) -> int:
        return len(self.index2word)

    def encode(self, sentence: str, eos: bool = True) -> list[int]:
        """Ids of the words of ``sentence`` (UNK for unknown ones), followed by EOS."""
        ids = [self.word2index.get(w, UNK) for w in sentence.split()]
        return ids + [EOS] if eos else ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words for ``ids``, stopping at EOS and skipping PAD/SOS."""
        return [self.index2word[i] for i in strip_specials(ids)]

    def to_dict(self) -> dict:
        """Plain-type form, safe for ``torch.load(weights_only=True)``."""
        return {"index2word": list(self.index2word), "word2count": dict(self.word2count)}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        words = d["index2word"]
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError("vocabulary does not start with the reserved <pad> <sos> <eos> <unk>")
        return cls(words[len(SPECIALS) :], d.get("word2count"))
