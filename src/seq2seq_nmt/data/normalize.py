"""Sentence normalisers, looked up by the name stored in configs and checkpoints.

``tutorial`` and ``europarl`` are the ASCII-folding cleanings of the sources the presets reproduce;
``unicode`` (and ``unicode_lower``) keep any language intact."""

import re
import string
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


# Punctuation and the non-printable ASCII characters, both deleted by the Europarl cleaning.
_NON_PRINTABLE = "".join(chr(i) for i in range(128) if chr(i) not in string.printable)
_EUROPARL_DELETE = str.maketrans("", "", string.punctuation + _NON_PRINTABLE)


def normalize_europarl(s: str) -> str:
    """The article's Europarl cleaning: NFD -> ASCII, lower case, punctuation and non-printable
    characters removed, tokens containing digits dropped (``isalpha`` on each token)."""
    s = unicodedata.normalize("NFD", s).encode("ascii", "ignore").decode("ascii")
    s = " ".join(s.lower().split()).translate(_EUROPARL_DELETE)
    return " ".join(w for w in s.split() if w.isalpha())


def normalize_unicode(s: str) -> str:
    """Cleaning that keeps the language: NFKC, whitespace runs collapsed to one space; case,
    accents, punctuation and every script are kept."""
    return " ".join(unicodedata.normalize("NFKC", s).split())


def normalize_unicode_lower(s: str) -> str:
    """``unicode``, then lower-cased."""
    return normalize_unicode(s).lower()


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "tutorial": normalize_tutorial,
    "europarl": normalize_europarl,
    "unicode": normalize_unicode,
    "unicode_lower": normalize_unicode_lower,
}


def get_normalizer(name: str) -> Callable[[str], str]:
    """Return the normaliser called ``name``, or raise a one-line ValueError."""
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise ValueError(
            f"unknown normalization {name!r}; choose from {sorted(NORMALIZERS)}"
        ) from None
