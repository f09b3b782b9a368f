"""Does bf16 pay on this CPU? The flags, the training's probe and its decision, and matmul speeds.

    python bench/precision_probe.py [--repeats 5]

Prints the bf16 flags of ``/proc/cpuinfo``, ``bf16_matmul_speedup()`` (the probe that decides
whether ``trainer.precision=bf16-*`` falls back to ``32-true``) with the decision, and GFLOP/s
of float32, bfloat16 and float16 matmuls at the shapes of the benchmark model's training step
(batch 64, hidden 256, about 4,000 target words) and at 1024^3, each the fastest of
``--repeats`` runs, with the torch threads of the environment (``OMP_NUM_THREADS``).
"""

import argparse
import time
from pathlib import Path

import torch
from benchlib import cpu_name

from seq2seq_nmt.train.precision import (
    BF16_MIN_SPEEDUP,
    bf16_flags,
    bf16_matmul_speedup,
    native_bf16_cpu,
)

SHAPES = {
    "decoder GRU gates (64x512 @ 512x768)": (64, 512, 768),
    "generator (704x256 @ 256x3933)": (704, 256, 3933),
    "square (1024^3)": (1024, 1024, 1024),
}
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def gflops(m: int, k: int, n: int, dtype: torch.dtype, repeats: int) -> float:
    """GFLOP/s of (m x k) @ (k x n) in ``dtype``, the fastest of ``repeats`` timed runs."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    calls = max(2, int(2e8 / (2 * m * k * n)))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        best = min(best, (time.perf_counter() - start) / calls)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cpuinfo = Path("/proc/cpuinfo")
    flags = bf16_flags(cpuinfo.read_text(errors="replace")) if cpuinfo.is_file() else set()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"ISA {torch.backends.cpu.get_cpu_capability()}")  # fmt: skip
    print(f"bf16 flags: {sorted(flags) or 'none'}")
    speedup = bf16_matmul_speedup()
    decision = "bf16 kept" if native_bf16_cpu() else "falls back to 32-true"
    print(f"probe: bf16 matmul {speedup:.2f}x float32 (needs {BF16_MIN_SPEEDUP}x): {decision}")
    print("\n| matmul | " + " | ".join(str(d).removeprefix("torch.") for d in DTYPES) + " |")
    print("|---|" + "---:|" * len(DTYPES))
    for name, shape in SHAPES.items():
        speeds = [gflops(*shape, dtype, args.repeats) for dtype in DTYPES]
        print(f"| {name} | " + " | ".join(f"{s:.0f} GFLOP/s" for s in speeds) + " |")


if __name__ == "__main__":
    main()
