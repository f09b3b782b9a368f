"""The package's one notion of "rank zero": the process that owns the run directory, its
records and its log (:func:`is_rank_zero`, :func:`rank_zero_only`)."""

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Set per process by Lightning's DDP launcher (LOCAL_RANK, NODE_RANK), torchrun (RANK,
# LOCAL_RANK, GROUP_RANK), SLURM (SLURM_PROCID) and jsrun (JSM_NAMESPACE_RANK).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
RANK_VARIABLES += ("SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_rank_zero() -> bool:
    """Whether this process is (or will be) global rank 0: the one test of rank zero in the package
    (the Hydra resolver ``${rank_zero:...}``, the run records, anything else that rank 0 alone
    writes).

    Why this and not Lightning's ``rank_zero_only.rank`` alone: the launcher's environment
    (``RANK_VARIABLES``) is known before Hydra sets up the run directory and before any trainer
    or process group exists, which is when the resolvers of ``conf/hydra/`` run; and it includes
    ``NODE_RANK`` and ``GROUP_RANK``, which Lightning's import-time guess ignores (the first
    process of a second node would pass for rank 0 there). Once a Lightning strategy has set up
    the processes it records the global rank in ``rank_zero_only.rank``; that is honoured too, so
    a process whose environment says nothing (one started by ``ddp_spawn``) is still ranked right.
    """
    if any(int(os.environ.get(var, "0") or 0) != 0 for var in RANK_VARIABLES):
        return False
    lightning = sys.modules.get("pytorch_lightning.utilities.rank_zero")  # not imported: no rank
    rank = getattr(getattr(lightning, "rank_zero_only", None), "rank", 0)
    return not rank


def rank_zero_only(fn: F) -> F:
    """``fn`` run in the rank-0 process only (elsewhere the call returns None): see
    :func:`is_rank_zero`."""

    @functools.wraps(fn)
    def on_rank_zero(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if is_rank_zero() else None

    return on_rank_zero  # type: ignore[return-value]


def rank_zero(value, other=None):
    """``${rank_zero:VALUE,OTHER}``: VALUE in the rank-0 process, OTHER (default null) elsewhere."""
    return value if is_rank_zero() else other
