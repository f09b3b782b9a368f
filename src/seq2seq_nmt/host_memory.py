"""Host memory kept for reuse: glibc's malloc hands large freed blocks back to the system, so a
training step, which allocates and frees the same large tensors (logits, their gradients, the
embeddings' gradients) every step, page-faults them in again each time. ``keep_freed_memory``
raises the thresholds (``mallopt``) so that those blocks stay in the heap and are reused."""

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 1 << 30  # free memory at the heap's top kept up to 1 GiB


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 32 MiB for reuse (and up to 1 GiB of free
    heap); False where the C library has no ``mallopt`` (not glibc: nothing changes)."""
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is None:
        return False
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
