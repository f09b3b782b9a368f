"""Length-bucketed batch sampler: epoch-seeded, rank-sharded, resumable mid-epoch."""

from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist

SAMPLING = ("bucket", "replacement")  # each pair once an epoch, or drawn with replacement


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class BucketBatchSampler:
    """Batches of similar length, so padding stays small.

    Each epoch (seeded by ``seed + epoch``) shuffles the indices (or, with ``replacement``, draws
    as many uniformly with replacement), sorts pools of
    ``pool_factor * batch_size`` by length, cuts them into batches of ``batch_size`` examples
    (or at most ``max_tokens`` padded tokens) and shuffles the batch order. Under
    ``torch.distributed`` each rank takes every ``world``-th batch, all ranks the same count.
    ``state_dict`` records the epoch and how many batches were consumed, for exact resume.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        max_tokens: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        pool_factor: int = 50,
        drop_last: bool = False,
        replacement: bool = False,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self.shuffle, self.seed, self.pool_factor = shuffle, seed, pool_factor
        self.drop_last, self.replacement = drop_last, replacement
        self.epoch, self._consumed, self._resume_at = 0, 0, 0
        self._cache: tuple[tuple, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._resume_at = epoch, 0

    @property
    def resume_at(self) -> int:
        """Batches of the current epoch the next iteration skips (set by ``load_state_dict``)."""
        return self._resume_at

    def _cut(self, order: np.ndarray) -> list[np.ndarray]:
        """Cut length-sorted indices into batches by example count and token budget."""
        batches, start = [], 0
        for end in range(1, len(order) + 1):
            size = end - start
            too_many_tokens = (
                self.max_tokens
                and size > 1
                and size * self.lengths[order[end - 1]] > self.max_tokens
            )
            if too_many_tokens:
                batches.append(order[start : end - 1])
                start = end - 1
            elif size == self.batch_size:
                batches.append(order[start:end])
                start = end
        if start < len(order) and not (self.drop_last and len(order) - start < self.batch_size):
            batches.append(order[start:])
        return batches

    def batches(self) -> list[np.ndarray]:
        """This rank's batches for the current epoch (computed once per epoch and rank)."""
        key = (self.epoch, *_world())
        if self._cache is None or self._cache[0] != key:
            self._cache = key, self._make_batches()
        return self._cache[1]

    def _make_batches(self) -> list[np.ndarray]:
        if not self.shuffle:
            return self._shard(self._cut(np.argsort(self.lengths, kind="stable")))
        rng = np.random.default_rng(self.seed + self.epoch)
        n, pool = len(self.lengths), self.pool_factor * self.batch_size
        perm = rng.integers(0, n, n) if self.replacement else rng.permutation(n)
        batches = []
        for i in range(0, len(perm), pool):
            chunk = perm[i : i + pool]
            batches += self._cut(chunk[np.argsort(self.lengths[chunk], kind="stable")])
        return self._shard([batches[i] for i in rng.permutation(len(batches))])

    def _shard(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        world, rank = _world()
        if world == 1:
            return batches
        if not self.shuffle:  # evaluation: every batch once, spread over ranks
            return batches[rank::world]
        per_rank = len(batches) // world
        return batches[rank : per_rank * world : world]

    def __iter__(self) -> Iterator[list[int]]:
        batches, start = self.batches(), self._resume_at
        self._resume_at = 0
        for self._consumed in range(start + 1, len(batches) + 1):
            yield batches[self._consumed - 1].tolist()
        self.epoch += 1  # Lightning's set_epoch overrides this; plain loops get a fresh order
        self._consumed = 0

    def __len__(self) -> int:
        return len(self.batches())

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self._consumed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self._resume_at = state["epoch"], state["consumed"]
