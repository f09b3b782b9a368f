"""Host memory kept for reuse: a step's large tensors stop page-faulting once glibc keeps them."""

import subprocess
import sys
import textwrap

import pytest

from helpers import make_cfg
from seq2seq_nmt.config import ConfigError, validate
from seq2seq_nmt.host_memory import keep_freed_memory

STEPS = textwrap.dedent(
    """
    import resource, sys, torch
    from seq2seq_nmt.host_memory import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    def step(rows):  # a step's logits and their gradient: batch 128 x 6-13 target positions
        a, b = torch.ones(rows, 3933), torch.zeros(rows, 3933)
        return float((a + b).sum())
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    sizes = [128 * t for t in (13, 7, 10, 6, 12, 9, 11, 8)]
    for rows in sizes:
        step(rows)
    counts = []
    for rows in sizes[::-1] + sizes:
        before = faults()
        step(rows)
        counts.append(faults() - before)
    print(" ".join(map(str, counts)))
    """
)


def faults_per_step(mode: str) -> list[int]:
    """Page faults of each of 16 steps of varying sizes after 8 warm-up steps, in a fresh
    process."""
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [int(n) for n in out.stdout.split()]


@pytest.mark.skipif(not keep_freed_memory(), reason="the C library has no mallopt (not glibc)")
def test_kept_memory_is_reused_without_page_faults():
    """Kept, a step's large tensors are reused: most steps fault no page, where with glibc's
    defaults (which adapt as they go, so are not asserted) most steps faulted thousands."""
    kept = faults_per_step("keep")
    assert sorted(kept)[len(kept) // 2] == 0, (
        kept
    )  # most steps: the heap may still grow now and then


def test_keep_host_memory_is_a_checked_boolean(tmp_path):
    validate(make_cfg(tmp_path, "keep_host_memory=false"))
    with pytest.raises(ConfigError, match="keep_host_memory"):
        validate(make_cfg(tmp_path, "keep_host_memory=sometimes"))
