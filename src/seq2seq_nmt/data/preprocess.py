"""From raw corpus pairs to normalised, filtered (source, target) pairs (splits: ``split``)."""

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from seq2seq_nmt.data.normalize import get_normalizer, normalize_tutorial

log = logging.getLogger(__name__)

# English prefixes of the PyTorch tutorial (after its normalisation: "I'm" -> "i m").
TUTORIAL_PREFIXES = (
    "i am ", "i m ", "he is", "he s ", "she is", "she s ",
    "you are", "you re ", "we are", "we re ", "they are", "they re ",
)  # fmt: skip
# The article's list, verbatim: the tutorial's twelve followed by its own fifty, lower-cased as its
# code does (and as the normaliser leaves English); duplicates removed, giving 59 prefixes.
_ARTICLE_EXTRA = (
    "I don t", "Do you", "I want", "Are you", "I have", "I think", "I can t", "I was", "He is",
    "I m not", "This is", "I just", "I didn t", "I am", "I thought", "I know", "Tom is", "I had",
    "Did you", "Have you", "Can you", "He was", "You don t", "I d like", "It was", "You should",
    "Would you", "I like", "It is", "She is", "You can t", "He has", "What do", "If you",
    "I need", "No one", "You are", "You have", "I feel", "I really", "Why don t", "I hope",
    "I will", "We have", "You re not", "You re very", "She was", "I love", "You must", "I can",
)  # fmt: skip
ARTICLE_PREFIXES = tuple(
    dict.fromkeys(TUTORIAL_PREFIXES + tuple(p.lower() for p in _ARTICLE_EXTRA))
)
PREFIX_LISTS: dict[str, tuple[str, ...] | None] = {
    "tutorial": TUTORIAL_PREFIXES,
    "article": ARTICLE_PREFIXES,
    "none": None,
}

ENGLISH = "en"


def resolve_prefixes(prefixes: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """A named list ('tutorial', 'article', 'none'), an explicit list, or None (no filter)."""
    if prefixes is None or not isinstance(prefixes, str):
        return tuple(prefixes) if prefixes is not None else None
    if prefixes not in PREFIX_LISTS:
        raise ValueError(f"unknown prefix list {prefixes!r}; choose from {sorted(PREFIX_LISTS)}")
    return PREFIX_LISTS[prefixes]


def english_side(langs: Sequence[str]) -> int:
    """0 or 1: which of the (source, target) languages is English (the prefix lists are English);
    a one-line ValueError when neither is."""
    if ENGLISH not in langs:
        raise ValueError(
            f"dataset.prefixes filters English sentences, but neither side of "
            f"{'-'.join(langs)} is English (en); set dataset.prefixes=none"
        )
    return list(langs).index(ENGLISH)


def clean_pairs(
    pairs: Iterable[tuple[str, str]],
    normalization: str,
    langs: Sequence[str],
    max_length: int | None,
    prefixes: str | Sequence[str] | None,
    stats: Counter,
) -> Iterator[tuple[str, str, str]]:
    """Normalise raw (source, target) pairs and drop empty, long or unprefixed ones; yield
    (source, target, raw target): the raw target, whitespace collapsed, is a reference for
    tokenizers that detokenise.

    A pair is kept when both sides have fewer than ``max_length`` words of the cleaned text (the
    tutorial's rule, so that words + EOS fit in ``max_length`` positions), whatever the tokenizer,
    and its English side starts with a prefix. The prefix lists are written in the tutorial's
    cleaning ("i m "), so the English side is matched in that form whatever ``normalization`` is.
    Lazy: pairs stream through, each drop counted in ``stats``.
    """
    norm, keep_prefixes = get_normalizer(normalization), resolve_prefixes(prefixes)
    english = english_side(langs) if keep_prefixes is not None else 0
    as_listed = normalization == "tutorial"
    for raw in pairs:
        src, tgt = norm(raw[0]), norm(raw[1])
        if not src or not tgt:
            stats["dropped_empty_side"] += 1
        elif max_length and max(len(src.split()), len(tgt.split())) >= max_length:
            stats["dropped_too_long"] += 1
        elif keep_prefixes is not None and not (
            (src, tgt)[english] if as_listed else normalize_tutorial(raw[english])
        ).startswith(keep_prefixes):
            stats["dropped_by_prefix"] += 1
        else:
            stats["pairs_kept"] += 1
            yield src, tgt, " ".join(raw[1].split())


def filter_pairs(*args: Any) -> list[tuple[str, str]]:
    """The cleaned (source, target) pairs of ``clean_pairs``, as a list."""
    return [(src, tgt) for src, tgt, _ in clean_pairs(*args)]


def per_side(value: Any, langs: Sequence[str], default: Any = None) -> tuple[Any, Any]:
    """A (source, target) setting: one value for both, or a mapping by side (``src``/``tgt``)
    or by language code (``fr``/``en``, ...); a side it does not name gets ``default``."""
    if not isinstance(value, Mapping):
        return value, value
    src, tgt = langs
    if unknown := set(value) - {"src", "tgt", src, tgt}:
        raise ValueError(
            f"unknown keys {sorted(unknown)} in {dict(value)}; use src/tgt or {src}/{tgt}"
        )
    return value.get("src", value.get(src, default)), value.get("tgt", value.get(tgt, default))


def report(stats: Counter, source: str) -> None:
    """Log what loading counted (skipped, repaired and dropped lines)."""
    log.info("loaded %s: %s", source, ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
