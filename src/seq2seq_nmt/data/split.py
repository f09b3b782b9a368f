"""Train/val/test splits that share no sentence, on either side, and the report that proves it.

Pairs that share a source or a target sentence (after cleaning) are linked; the connected
groups of linked pairs are drawn whole into validation and test, so no sentence of either split,
source or target, also occurs in training. A split may instead come from an external corpus:
then the training pairs that share a sentence with it are removed. Everything works on 64-bit
sentence hashes, a few bytes per pair, so full Europarl stays within memory.
"""

import hashlib
from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

TRAIN, VAL, TEST, REMOVED = 0, 1, 2, 3  # split ids; REMOVED: a training pair dropped for overlap
SPLIT_NAMES = ("train", "val", "test")


def sentence_key(sentence: str) -> int:
    """A stable 64-bit hash of a sentence (the same in every process and run)."""
    return int.from_bytes(hashlib.blake2b(sentence.encode(), digest_size=8).digest(), "little")


def group_ids(src_keys: np.ndarray, tgt_keys: np.ndarray) -> np.ndarray:
    """The connected group of each pair, pairs being linked by a shared source or target."""
    src, src_node = np.unique(src_keys, return_inverse=True)
    tgt, tgt_node = np.unique(tgt_keys, return_inverse=True)
    n, ones = len(src) + len(tgt), np.ones(len(src_node), dtype=np.int8)
    graph = coo_matrix((ones, (src_node, tgt_node + len(src))), shape=(n, n))
    return connected_components(graph, directed=False)[1][src_node]


def split_count(size: float | int, n: int) -> int:
    """A split size: a fraction (< 1) of ``n`` pairs, or a count."""
    return round(size * n) if size < 1 else int(size)


def draw_groups(groups: np.ndarray, wanted: Sequence[int], seed: int) -> np.ndarray:
    """Split index (1, 2, ... for ``wanted[0]``, ``wanted[1]``, ..., 0 for the rest) of each pair.

    Groups are visited in an order shuffled by ``seed``; a group goes whole to the first split
    it fits in (a group larger than what a split still needs stays in training), until every
    split holds its ``wanted`` pairs or the groups run out.
    """
    sizes = np.bincount(groups)
    need, where = list(wanted), np.zeros(len(sizes), dtype=np.int8)
    smallest = int(sizes[sizes > 0].min(initial=1))
    for g in np.random.default_rng(seed).permutation(len(sizes)).tolist():
        for k, left in enumerate(need):
            if 0 < sizes[g] <= left:
                where[g], need[k] = k + 1, left - sizes[g]
                break
        if all(left < smallest for left in need):
            break
    return where[groups]


def assign_splits(
    src_keys: np.ndarray,
    tgt_keys: np.ndarray,
    origin: np.ndarray,
    val: float | int,
    test: float | int,
    seed: int,
) -> tuple[np.ndarray, dict]:
    """Split id of each pair (``TRAIN``, ``VAL``, ``TEST`` or ``REMOVED``) and what was done.

    ``origin`` is ``TRAIN`` for pairs of the training corpus and ``VAL``/``TEST`` for pairs of
    external evaluation sets; a split that has external pairs is not drawn from the corpus, and
    corpus pairs sharing a sentence with it are ``REMOVED``. The other splits are drawn as whole
    groups (``group_ids``) of ``val``/``test`` pairs (fractions of the corpus when < 1).
    """
    split, info = origin.astype(np.int8), {}
    corpus = origin == TRAIN
    external = [k for k in (VAL, TEST) if np.any(origin == k)]
    for k in external:
        mine = origin == k
        clash = corpus & (np.isin(src_keys, src_keys[mine]) | np.isin(tgt_keys, tgt_keys[mine]))
        split[clash] = REMOVED
        info[f"train_pairs_removed_for_{SPLIT_NAMES[k]}"] = int(clash.sum())
    drawn = [k for k in (VAL, TEST) if k not in external]
    pool = np.flatnonzero(split == TRAIN)
    sizes = {VAL: val, TEST: test}
    wanted = [split_count(sizes[k], len(pool)) for k in drawn]
    if wanted and sum(wanted) >= len(pool):
        raise ValueError(
            f"val+test ({'+'.join(map(str, wanted))}) leave no training data of {len(pool)}"
        )
    if pool.size:
        groups = group_ids(src_keys[pool], tgt_keys[pool])  # 0..n-1, every one used
        info |= {"groups": int(groups.max()) + 1, "largest_group": int(np.bincount(groups).max())}
        if wanted:
            where = draw_groups(groups, wanted, seed)
            split[pool] = np.array([TRAIN, *drawn], dtype=np.int8)[where]
    return split, info


def overlap(src_keys: np.ndarray, tgt_keys: np.ndarray, split: np.ndarray) -> dict:
    """For val and test: the share (%) of their sources and of their targets found in training."""
    train_src, train_tgt = src_keys[split == TRAIN], tgt_keys[split == TRAIN]
    out = {}
    for k in (VAL, TEST):
        mine = split == k
        if mine.any():
            out[SPLIT_NAMES[k]] = {
                "src_in_train_pct": 100 * float(np.isin(src_keys[mine], train_src).mean()),
                "tgt_in_train_pct": 100 * float(np.isin(tgt_keys[mine], train_tgt).mean()),
            }
    return out


def split_pairs(
    pairs: Sequence[tuple[str, str]], val: float | int, test: float | int, seed: int
) -> tuple[list, list, list]:
    """(train, val, test) lists of (src, tgt) pairs, split as ``assign_splits`` does."""
    src, tgt = (
        np.fromiter((sentence_key(p[i]) for p in pairs), dtype=np.uint64, count=len(pairs))
        for i in (0, 1)
    )
    split, _ = assign_splits(src, tgt, np.zeros(len(pairs), np.int8), val, test, seed)
    out: tuple[list, list, list] = ([], [], [])
    for pair, k in zip(pairs, split.tolist(), strict=True):
        out[k].append(pair)
    return out
