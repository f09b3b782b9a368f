"""Sentence normalisers, looked up by the name stored in configs and checkpoints."""

import re
import unicodedata
from collections.abc import Callable


def unicode_to_ascii(s: str) -> str:
    """Drop accents: NFD-decompose and remove combining marks (the tutorial's unicodeToAscii)."""
    return "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")


def normalize_tutorial(s: str) -> str:
    """The tutorial's normalizeString: ASCII, lower case, ``.!?`` split off, other non-letters gone."""
    s = unicode_to_ascii(s.lower().strip())
    s = re.sub(r"([.!?])", r" \1", s)
    s = re.sub(r"[^a-zA-Z.!?]+", r" ", s)
    return " ".join(s.split())


NORMALIZERS: dict[str, Callable[[str], str]] = {"tutorial": normalize_tutorial}


def get_normalizer(name: str) -> Callable[[str], str]:
    """Return the normaliser called ``name``, or raise a one-line ValueError."""
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise ValueError(
            f"unknown normalization {name!r}; choose from {sorted(NORMALIZERS)}"
        ) from None
