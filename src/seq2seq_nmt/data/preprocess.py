"""From raw corpus pairs to normalised, filtered (source, target) pairs and deterministic splits."""

import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence

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


def filter_pairs(
    pairs: Iterable[tuple[str, str]],
    normalization: str,
    direction: str,
    max_length: int | None,
    prefixes: str | Sequence[str] | None,
    stats: Counter,
) -> list[tuple[str, str]]:
    """Normalise (en, fr) pairs, drop empty/long/unprefixed ones, and orient them as (src, tgt).

    A pair is kept when both sides have fewer than ``max_length`` words (the tutorial's rule, so
    that words + EOS fit in ``max_length`` positions) and the English side starts with a prefix.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose from {DIRECTIONS}")
    norm, keep_prefixes = get_normalizer(normalization), resolve_prefixes(prefixes)
    out = []
    for en, fr in pairs:
        en, fr = norm(en), norm(fr)
        if not en or not fr:
            stats["dropped_empty_side"] += 1
        elif max_length and max(len(en.split()), len(fr.split())) >= max_length:
            stats["dropped_too_long"] += 1
        elif keep_prefixes is not None and not en.startswith(keep_prefixes):
            stats["dropped_by_prefix"] += 1
        else:
            out.append((fr, en) if direction == "fr-en" else (en, fr))
    stats["pairs_kept"] += len(out)
    return out


def split_by_source(
    pairs: list[tuple[str, str]], val: float | int, test: float | int, seed: int
) -> tuple[list, list, list]:
    """Deterministic train/val/test split in which one source sentence never lands in two splits.

    ``val``/``test`` are fractions of the distinct source sentences (< 1) or counts of them.
    """
    sources = sorted({s for s, _ in pairs})
    random.Random(seed).shuffle(sources)
    n_val, n_test = (int(x * len(sources)) if x < 1 else int(x) for x in (val, test))
    if n_val + n_test >= len(sources):
        raise ValueError(f"val+test ({n_val}+{n_test}) leave no training data of {len(sources)}")
    split_of = {s: 1 for s in sources[:n_val]} | {s: 2 for s in sources[n_val : n_val + n_test]}
    splits: tuple[list, list, list] = ([], [], [])
    for pair in pairs:
        splits[split_of.get(pair[0], 0)].append(pair)
    return splits


def report(stats: Counter, source: str) -> None:
    """Log what loading counted (skipped, repaired and dropped lines)."""
    log.info("loaded %s: %s", source, ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
