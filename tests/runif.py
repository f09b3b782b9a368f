"""``RunIf``: a test runs only where the machine has what it needs, and is skipped with the
missing requirements as its reason elsewhere (in the style of the lightning-hydra-template's
``RunIf``)::

    @pytest.mark.gpu
    @RunIf(min_cuda_gpus=1, bf16_cuda=True)
    def test_bf16_on_cuda(): ...

The conditions are read when the decorator is built (at collection), without initialising CUDA.
"""

import importlib.util

import pytest
import torch
from packaging.version import Version


def cuda_gpus() -> int:
    """How many CUDA GPUs torch sees (0 with a CPU-only build or no driver)."""
    return torch.cuda.device_count()


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(name) is not None


def torch_version() -> Version:
    return Version(torch.__version__.split("+")[0])


def missing(
    min_cuda_gpus: int = 0,
    bf16_cuda: bool = False,
    triton: bool = False,
    min_torch: str | None = None,
) -> list[str]:
    """What this machine lacks of the requirements, one phrase each (empty: the test may run)."""
    reasons = []
    gpus = cuda_gpus() if min_cuda_gpus or bf16_cuda else 0
    if gpus < min_cuda_gpus:
        plural = "s" if min_cuda_gpus > 1 else ""
        reasons.append(f"at least {min_cuda_gpus} CUDA GPU{plural} (found {gpus})")
    if bf16_cuda and not (gpus and torch.cuda.is_bf16_supported()):
        reasons.append("a CUDA GPU with bfloat16 support")
    if triton and not has_module("triton"):
        reasons.append("Triton (torch.compile's GPU code generator)")
    if min_torch is not None and torch_version() < Version(min_torch):
        reasons.append(f"torch >= {min_torch} (found {torch.__version__})")
    return reasons


def RunIf(
    min_cuda_gpus: int = 0,
    bf16_cuda: bool = False,
    triton: bool = False,
    min_torch: str | None = None,
    **kwargs,
) -> pytest.MarkDecorator:
    """``pytest.mark.skipif`` on the requirements this machine lacks, which the reason names.

    ``min_cuda_gpus``: CUDA GPUs needed; ``bf16_cuda``: a CUDA GPU that supports bfloat16;
    ``triton``: Triton importable (``torch.compile`` on CUDA); ``min_torch``: a torch version.
    Other keyword arguments go to ``skipif`` (e.g. ``strict``)."""
    reasons = missing(min_cuda_gpus, bf16_cuda, triton, min_torch)
    return pytest.mark.skipif(
        bool(reasons), reason=f"requires {', '.join(reasons)}" if reasons else "", **kwargs
    )
