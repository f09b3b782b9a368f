"""Corpus BLEU and chrF with sacrebleu on detokenised sentence strings, gathered across ranks."""

import torch.distributed as dist
from sacrebleu.metrics import BLEU, CHRF

BLEU_TOKENIZERS = tuple(BLEU.TOKENIZERS)  # the names metrics.tokenize accepts


def gather_strings(items: list) -> list:
    """Every rank's list, concatenated in rank order (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [x for part in parts for x in part]


def corpus_bleu(hyps: list[str], refs: list[str], tokenize: str = "13a") -> tuple[float, str]:
    """sacrebleu corpus BLEU (``tokenize``: 13a by default, exp smoothing) and its signature."""
    bleu = BLEU(tokenize=tokenize, force=True)
    return bleu.corpus_score(hyps, [refs]).score, str(bleu.get_signature())


def corpus_chrf(hyps: list[str], refs: list[str]) -> tuple[float, str]:
    """sacrebleu corpus chrF and its signature."""
    chrf = CHRF()
    return chrf.corpus_score(hyps, [refs]).score, str(chrf.get_signature())
