"""From raw corpus pairs to normalised, filtered (source, target) pairs (splits: ``split``)."""

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .normalize import get_normalizer

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
PREFIX_LISTS = {"tutorial": TUTORIAL_PREFIXES, "article": ARTICLE_PREFIXES, "none": None}

DIRECTIONS = ("fr-en", "en-fr")


def resolve_prefixes(prefixes: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """A named list ('tutorial', 'article', 'none'), an explicit list, or None (no filter)."""
    if prefixes is None or not isinstance(prefixes, str):
        return tuple(prefixes) if prefixes is not None else None
    if prefixes not in PREFIX_LISTS:
        raise ValueError(f"unknown prefix list {prefixes!r}; choose from {sorted(PREFIX_LISTS)}")
    return PREFIX_LISTS[prefixes]


def clean_pairs(
    pairs: Iterable[tuple[str, str]],
    normalization: str,
    direction: str,
    max_length: int | None,
    prefixes: str | Sequence[str] | None,
    stats: Counter,
) -> Iterator[tuple[str, str]]:
    """Normalise (en, fr) pairs, drop empty/long/unprefixed ones, and orient them as (src, tgt).

    A pair is kept when both sides have fewer than ``max_length`` words (the tutorial's rule, so
    that words + EOS fit in ``max_length`` positions) and the English side starts with a prefix.
    Lazy: pairs stream through, each drop counted in ``stats``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose from {DIRECTIONS}")
    norm, keep_prefixes = get_normalizer(normalization), resolve_prefixes(prefixes)
    for en, fr in pairs:
        en, fr = norm(en), norm(fr)
        if not en or not fr:
            stats["dropped_empty_side"] += 1
        elif max_length and max(len(en.split()), len(fr.split())) >= max_length:
            stats["dropped_too_long"] += 1
        elif keep_prefixes is not None and not en.startswith(keep_prefixes):
            stats["dropped_by_prefix"] += 1
        else:
            stats["pairs_kept"] += 1
            yield (fr, en) if direction == "fr-en" else (en, fr)


def filter_pairs(*args: Any) -> list[tuple[str, str]]:
    """``clean_pairs`` as a list."""
    return list(clean_pairs(*args))


def per_side(value: Any, direction: str, default: Any = None) -> tuple[Any, Any]:
    """A (source, target) setting: one value for both, or a mapping by side (``src``/``tgt``)
    or by language (``fr``/``en``); a side it does not name gets ``default``."""
    if not isinstance(value, Mapping):
        return value, value
    src, tgt = direction.split("-")
    if unknown := set(value) - {"src", "tgt", src, tgt}:
        raise ValueError(f"unknown keys {sorted(unknown)} in {dict(value)}; use src/tgt or fr/en")
    return value.get("src", value.get(src, default)), value.get("tgt", value.get(tgt, default))


def report(stats: Counter, source: str) -> None:
    """Log what loading counted (skipped, repaired and dropped lines)."""
    log.info("loaded %s: %s", source, ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
