"""From raw corpus pairs to normalised, filtered (source, target) pairs and deterministic splits."""

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .normalize import get_normalizer

log = logging.getLogger(__name__)

# English prefixes of the PyTorch tutorial (after its normalisation: "I'm" -> "i m").
TUTORIAL_PREFIXES = (
    "i am ", "i m ", "he is", "he s ", "she is", "she s ",
    "you are", "you re ", "we are", "we re ", "they are", "they re ",
)  # fmt: skip
# The article's extension of that list: the tutorial's plus frequent openings of everyday speech.
ARTICLE_PREFIXES = TUTORIAL_PREFIXES + (
    "i don t", "do you", "i want", "i think", "tom is", "i have", "i can t", "i didn t",
    "it is", "it s ", "this is", "that is", "that s ", "there is", "there s ", "you don t",
    "we don t", "i will", "i ll ", "i was", "i need", "i like", "are you", "is it", "what is",
    "what s ", "where is", "how are", "can you", "let s ", "i know", "i ve ", "i d ", "tom was",
)  # fmt: skip
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


def source_key(sentence: str) -> int:
    """A stable 64-bit hash of a sentence (the same in every process and run)."""
    return int.from_bytes(hashlib.blake2b(sentence.encode(), digest_size=8).digest(), "little")


def assign_splits(keys: np.ndarray, val: float | int, test: float | int, seed: int) -> np.ndarray:
    """Split id (0 train, 1 val, 2 test) of each pair, given its source's ``source_key``.

    The distinct sources are shuffled with ``seed``; the first ``val`` go to validation, the next
    ``test`` to test (fractions of the distinct sources when < 1, else counts), so one source
    never lands in two splits. Memory: a few bytes per pair, whatever the sentence lengths.
    """
    sources = np.unique(keys)
    n_val, n_test = (int(x * len(sources)) if x < 1 else int(x) for x in (val, test))
    if n_val + n_test >= len(sources):
        raise ValueError(f"val+test ({n_val}+{n_test}) leave no training data of {len(sources)}")
    order = np.random.default_rng(seed).permutation(len(sources))
    split_of = np.zeros(len(sources), dtype=np.int8)
    split_of[order[:n_val]], split_of[order[n_val : n_val + n_test]] = 1, 2
    return split_of[np.searchsorted(sources, keys)]


def split_by_source(
    pairs: list[tuple[str, str]], val: float | int, test: float | int, seed: int
) -> tuple[list, list, list]:
    """Deterministic train/val/test split of (src, tgt) pairs by source sentence (``assign_splits``)."""
    keys = np.fromiter((source_key(s) for s, _ in pairs), dtype=np.uint64, count=len(pairs))
    splits: tuple[list, list, list] = ([], [], [])
    for pair, k in zip(pairs, assign_splits(keys, val, test, seed), strict=True):
        splits[k].append(pair)
    return splits


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
