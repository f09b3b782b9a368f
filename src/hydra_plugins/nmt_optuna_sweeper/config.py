"""The sweeper's config, registered as ``hydra/sweeper: nmt_optuna`` (no Optuna import here:
Hydra imports every plugin module at each start)."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class TPESamplerConf:
    seed: int | None = None  # a resumed study draws from seed + the trials it already holds
    n_startup_trials: int = 10  # random trials before TPE starts modelling


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.nmt_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    direction: str = "maximize"  # or minimize: what the task function's return value wants
    study_name: str | None = None  # with a storage, the study to create or resume
    storage: str | None = None  # e.g. sqlite:///optuna.db (null: in memory, not resumable)
    n_trials: int = 20  # trials this invocation runs (a resumed study adds them)
    n_jobs: int = 1  # trials proposed per batch, run together by a parallel launcher
    sampler: TPESamplerConf = field(default_factory=TPESamplerConf)
    # key -> choice(...), range(...), interval(a, b), tag(log, interval(a, b)) or a fixed value
    params: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="nmt_optuna", node=OptunaSweeperConf, provider="seq2seq_nmt"
)
