"""The ceiling on a sentence's length in tokens (``dataset.max_sentence_tokens``), applied to
every split whatever ``max_length`` says: one pathological pair (a whole document on one line)
would otherwise make a batch of it and exhaust memory. Longer pairs are dropped and counted
with a WARNING. Translation input keeps its own handling (``Translator``)."""

import logging

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MAX_SENTENCE_TOKENS = 1024


def kept(src_lengths: np.ndarray, tgt_lengths: np.ndarray, limit: int, split: str) -> np.ndarray:
    """The indices of the pairs whose sides both have at most ``limit`` tokens (EOS included);
    a WARNING counts the others, naming ``split``."""
    keep = np.flatnonzero(np.maximum(src_lengths, tgt_lengths) <= limit)
    if dropped := len(src_lengths) - len(keep):
        log.warning(
            "%s: %d of %d pairs dropped: longer than dataset.max_sentence_tokens=%d tokens "
            "(the longest %d)",
            split, dropped, len(src_lengths), limit,
            int(np.maximum(src_lengths, tgt_lengths).max()),
        )  # fmt: skip
    return keep
