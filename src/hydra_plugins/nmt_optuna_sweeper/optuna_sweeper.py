"""A Hydra sweeper on Optuna (3.x and later): TPE search over ``hydra.sweeper.params`` with
ask-and-tell, the study created or resumed from ``storage``; each trial is one Hydra job."""

import logging
import math
import sys
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from seq2seq_nmt.stores import StoreError, opened

log = logging.getLogger(__name__)


def distribution(override: Override) -> Any:
    """The Optuna distribution of a sweep override, or the value of a fixed one (as a string)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    if override.is_choice_sweep() or override.is_range_sweep():
        return CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
    value = override.value()
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(value.start, value.end, log=log_scale)
    raise ValueError(f"{override.input_line}: not a sweep this sweeper supports")


class OptunaSweeper(Sweeper):
    """Runs ``n_trials`` trials, ``n_jobs`` at a time, each a Hydra job whose return value is
    told to the study (a failed job or a non-finite value: a failed trial); writes the best
    trial to ``optimization_results.yaml`` in the sweep directory."""

    def __init__(
        self, direction: str, study_name: str | None, storage: str | None, n_trials: int,
        n_jobs: int, sampler: DictConfig, params: DictConfig | None,
    ):  # fmt: skip
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs, self.sampler = n_trials, max(1, n_jobs), sampler
        self.params = params or {}

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        try:
            import optuna
        except ImportError:
            raise ImportError(
                "the Optuna search needs optuna: pip install -e '.[sweep]' (or pip install optuna)"
            ) from None

        lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        parsed = {
            o.get_key_element(): distribution(o)
            for o in OverridesParser.create().parse_overrides(lines)
        }
        space = {
            k: d for k, d in parsed.items() if isinstance(d, optuna.distributions.BaseDistribution)
        }
        fixed = [f"{k}={v}" for k, v in parsed.items() if k not in space]
        study = self.open_study(optuna)
        seed = self.sampler.seed
        study.sampler = optuna.samplers.TPESampler(
            seed=None if seed is None else seed + len(study.trials),
            n_startup_trials=self.sampler.n_startup_trials,
        )
        log.info(
            "study %s (%s): %d trials so far", study.study_name, self.storage, len(study.trials)
        )
        failures: list[Exception] = []
        for start in range(0, self.n_trials, self.n_jobs):
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - start))]
            overrides = [[*fixed, *(f"{k}={v}" for k, v in t.params.items())] for t in trials]
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            for trial, ret in zip(trials, returns, strict=True):
                failures += tell(study, trial, ret)
        if len(failures) == self.n_trials:
            raise failures[0]
        self.save_results(study)

    def open_study(self, optuna: Any) -> Any:
        """The study, created or loaded from ``storage``; a storage that cannot be opened is one
        line on stderr and exit status 2, before any trial."""
        try:
            return opened(
                "hydra.sweeper.storage", self.storage,
                lambda: optuna.create_study(
                    study_name=self.study_name, storage=self.storage, direction=self.direction,
                    load_if_exists=True,
                ),
            )  # fmt: skip
        except StoreError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    def save_results(self, study: Any) -> None:
        from optuna.trial import TrialState

        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return
        best = study.best_trial
        log.info("best trial %d: %s = %s", best.number, best.params, best.value)
        results = {"name": "optuna", "study": study.study_name, "best_params": best.params,
                   "best_value": best.value, "n_trials": len(study.trials)}  # fmt: skip
        OmegaConf.save(
            OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml"
        )


def tell(study: Any, trial: Any, ret: Any) -> list[Exception]:
    """Tell ``trial``'s outcome to the study: its value, or failed (with the job's exception when
    it raised one, returned as a list of it)."""
    from optuna.trial import TrialState

    try:
        value = ret.return_value  # raises the job's exception when it failed
    except Exception as e:
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, e)
        return [e]
    if not isinstance(value, int | float) or not math.isfinite(value):
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d returned %r, not a finite number: failed", trial.number, value)
        return []
    study.tell(trial, float(value))
    return []
