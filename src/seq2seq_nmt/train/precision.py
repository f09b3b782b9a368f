"""Training precision: bf16 that keeps the fused optimizer and gradient clipping, and full
precision instead of bf16 on a CPU where bf16 does not pay (no native bf16, or slower matmuls)."""

import functools
import logging
import os
import platform
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from pytorch_lightning.utilities import GradClipAlgorithmType

log = logging.getLogger(__name__)
BF16 = ("bf16-mixed", "bf16-true", "bf16")
# x86: AVX512-BF16 (Cooper Lake, Zen 4/5) or AMX (Sapphire Rapids on); Arm: the BF16 extension
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def bf16_flags(cpuinfo: str) -> set[str]:
    """The bf16 instruction sets a ``/proc/cpuinfo`` text lists (x86 ``flags``, Arm
    ``Features``)."""
    lines = cpuinfo.splitlines()
    flags = {f for ln in lines if ln.startswith(("flags", "Features")) for f in ln.split()}
    return flags & NATIVE_BF16_FLAGS


def has_native_bf16(cpuinfo: str) -> bool:
    """Whether a ``/proc/cpuinfo`` text lists a bf16 instruction set."""
    return bool(bf16_flags(cpuinfo))


# bf16 must make the probe's matmul at least this much faster: autocast adds casts around it
BF16_MIN_SPEEDUP = 1.2
# the decision, made once by the launching process: DDP workers it starts inherit it
DECISION_ENV = "SEQ2SEQ_NMT_CPU_BF16"


@functools.cache
def native_bf16_cpu() -> bool:
    """Whether bf16 pays on this CPU: its flags list a bf16 instruction set (where there is a
    /proc/cpuinfo) and a bf16 matmul of the models' shapes runs at least ``BF16_MIN_SPEEDUP``
    times a float32 one. The flag alone is not enough: a CPU with AVX512-BF16 but no AMX (or a
    virtual machine hiding AMX) has been measured running bf16 matmuls at half float32's speed.
    Decided once and left in ``$SEQ2SEQ_NMT_CPU_BF16`` so that the processes of one run agree."""
    if (decided := os.environ.get(DECISION_ENV)) in ("0", "1"):
        return decided == "1"
    cpuinfo = Path("/proc/cpuinfo")
    native = not cpuinfo.is_file() or has_native_bf16(cpuinfo.read_text(errors="replace"))
    pays = native and bf16_matmul_speedup() >= BF16_MIN_SPEEDUP
    os.environ[DECISION_ENV] = "1" if pays else "0"
    return pays


def bf16_matmul_speedup(rows: int = 128, size: int = 512, repeats: int = 15) -> float:
    """float32 time over bf16 time of a (rows x size) @ (size x size) matmul, the fastest of
    ``repeats`` interleaved runs each (about 30 ms in all)."""
    import time

    a, b = torch.randn(rows, size), torch.randn(size, size)
    pairs = {torch.float32: (a, b), torch.bfloat16: (a.bfloat16(), b.bfloat16())}
    best = dict.fromkeys(pairs, float("inf"))
    for _ in range(repeats):
        for dtype, (x, y) in pairs.items():
            start = time.perf_counter()
            for _ in range(4):
                x @ y
            best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[torch.float32] / best[torch.bfloat16]


def device_type(accelerator: Any) -> str:
    """``cuda``, ``mps`` or ``cpu``: where a trainer with ``accelerator`` will run."""
    name = str(accelerator)
    if name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "mps" if name == "mps" else "cpu"


def effective_precision(precision: Any, accelerator: Any) -> str:
    """``precision``, or ``32-true`` (with a one-line warning) for bf16 on a CPU where bf16 does
    not pay (``native_bf16_cpu``): there autocasting costs more than it saves."""
    precision = str(precision)
    if precision in BF16 and device_type(accelerator) == "cpu" and not native_bf16_cpu():
        log.warning(
            "trainer.precision=%s: bf16 does not pay on this CPU (%s: no AVX512-BF16, AMX or Arm "
            "BF16, or bf16 matmuls under %.1fx float32's speed); training in 32-true",
            precision, platform.processor() or platform.machine(), BF16_MIN_SPEEDUP,
        )  # fmt: skip
        return "32-true"
    return precision


class Bf16Mixed(MixedPrecision):
    """bf16 autocast as Lightning's ``bf16-mixed``, with two differences that make it pay:
    gradient clipping with a fused optimizer (bf16 has no scaler, so no gradients to unscale),
    and the weights' bf16 copies cached for the step (``cache_enabled``) instead of cast again at
    every one of the decoder's per-token calls."""

    def __init__(self, device: str):
        super().__init__("bf16-mixed", device)

    def clip_gradients(
        self,
        optimizer: torch.optim.Optimizer,
        clip_val: int | float = 0.0,
        gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM,
    ) -> None:
        Precision.clip_gradients(self, optimizer, clip_val, gradient_clip_algorithm)

    def autocast_context_manager(self) -> torch.autocast:
        return torch.autocast(self.device, dtype=torch.bfloat16, cache_enabled=True)


def trainer_precision(precision: Any, accelerator: Any) -> dict[str, Any]:
    """The ``pl.Trainer`` arguments for ``trainer.precision``: ``bf16-mixed`` becomes the
    :class:`Bf16Mixed` plugin, a bf16 precision on a CPU without native bf16 ``32-true``."""
    precision = effective_precision(precision, accelerator)
    if precision in ("bf16-mixed", "bf16"):
        return {"precision": None, "plugins": [Bf16Mixed(device_type(accelerator))]}
    return {"precision": precision}
