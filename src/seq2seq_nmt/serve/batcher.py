"""Batching across requests: the sentences of concurrent requests wait (at most ``max_wait_ms``
after the oldest arrived, or until ``max_batch_size`` are there), are decoded together in one
worker thread, off the event loop, and go back to their requests in order. Only sentences with
the same key (model and decoding options) share a batch."""

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

# decode(key, sentences) -> one result per sentence, in order; runs in the worker thread
Decode = Callable[[Hashable, list[str]], Sequence[Any]]


@dataclass
class _Item:
    text: str
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """Gathers sentences into batched ``decode`` calls; ``run()`` is its loop (one task)."""

    def __init__(self, decode: Decode, max_batch_size: int, max_wait_ms: float):
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("batching: max_batch_size must be >= 1 and max_wait_ms >= 0")
        self.decode, self.max_batch_size, self.max_wait = decode, max_batch_size, max_wait_ms / 1000
        self._queues: dict[Hashable, deque[_Item]] = {}
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self.batches = 0  # decodes so far (their sizes: ``sentences / batches``)
        self.sentences = 0

    async def submit(self, key: Hashable, texts: Sequence[str]) -> list[Any]:
        """The results of ``texts`` (decoded with ``key``), in order."""
        loop = asyncio.get_running_loop()
        items = [_Item(t, loop.create_future()) for t in texts]
        self._queues.setdefault(key, deque()).extend(items)
        self._wake.set()
        try:
            return list(await asyncio.gather(*(i.future for i in items)))
        finally:  # a request that timed out or went away: its sentences are not decoded
            for item in items:
                item.future.cancel()

    def _oldest(self) -> Hashable | None:
        """The key whose first waiting sentence arrived first (queues of cancelled ones dropped)."""
        for key, queue in list(self._queues.items()):
            while queue and queue[0].future.done():
                queue.popleft()
            if not queue:
                del self._queues[key]
        return min(self._queues, key=lambda k: self._queues[k][0].arrived, default=None)

    async def _gather(self, key: Hashable) -> list[_Item]:
        """Up to ``max_batch_size`` sentences of ``key``, once full or the first waited enough."""
        queue = self._queues[key]
        deadline = queue[0].arrived + self.max_wait
        while len(queue) < self.max_batch_size and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
        batch = []
        while queue and len(batch) < self.max_batch_size:
            item = queue.popleft()
            if not item.future.done():
                batch.append(item)
        return batch

    async def run(self) -> None:
        """Decode batches for as long as the server runs (cancel the task to stop)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                key = self._oldest()
                if key is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = await self._gather(key)
                if batch:
                    await self._decode(loop, key, batch)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _decode(self, loop: asyncio.AbstractEventLoop, key: Hashable, batch: list[_Item]):
        """Decode ``batch`` in the worker thread; its requests get the results (or the error)."""
        try:
            results = await loop.run_in_executor(
                self._executor, self.decode, key, [i.text for i in batch]
            )
        except Exception as e:  # those requests fail with it; the loop goes on
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(e)
            return
        self.batches, self.sentences = self.batches + 1, self.sentences + len(batch)
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
