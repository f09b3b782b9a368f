"""OmegaConf resolvers the configs use, registered when the package is imported (also in the
processes of Hydra launchers, which import the task function's package)."""

import os

from omegaconf import OmegaConf

# Set per process by Lightning's DDP launcher (LOCAL_RANK, NODE_RANK), torchrun (RANK,
# LOCAL_RANK, GROUP_RANK), SLURM (SLURM_PROCID) and jsrun (JSM_NAMESPACE_RANK).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
RANK_VARIABLES += ("SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_rank_zero() -> bool:
    """Whether this process is (or will be) global rank 0, read from the launcher's environment,
    so that it can be known before Hydra sets up the run and before any process group exists."""
    return all(int(os.environ.get(var, "0") or 0) == 0 for var in RANK_VARIABLES)


def rank_zero(value, other=None):
    """``${rank_zero:VALUE,OTHER}``: VALUE in the rank-0 process, OTHER (default null) elsewhere."""
    return value if is_rank_zero() else other


def not_mixed(precision) -> bool:
    """``${not_mixed:${trainer.precision}}``: False for an autocast (``*-mixed``) precision.

    Fused optimizers unscale gradients inside their step, which Lightning's mixed precision with
    gradient clipping refuses; in full precision they are the fastest on CPU and GPU alike."""
    return not str(precision).endswith("-mixed")


def register() -> None:
    OmegaConf.register_new_resolver("rank_zero", rank_zero, replace=True)
    OmegaConf.register_new_resolver("not_mixed", not_mixed, replace=True)
