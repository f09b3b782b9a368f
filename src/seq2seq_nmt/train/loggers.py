"""Loggers beyond Lightning's own: a CSV logger that keeps its rows across a resume, and the check
that the experiment trackers a config names (``logger=mlflow``, ``logger=wandb``) are installed.

``conf/logger/`` holds one file per logger, each under its own key, so that several combine:
``logger=[tensorboard,mlflow]``.
"""

import csv
import importlib.util
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from seq2seq_nmt.config import ConfigError
from seq2seq_nmt.stores import opened

# class name at the end of a logger's _target_ -> (module it needs, the extra that installs it)
NEEDS: dict[str, tuple[str, str]] = {
    "MLFlowLogger": ("mlflow", "tracking"),
    "WandbLogger": ("wandb", "tracking"),
}


def check_available(loggers: DictConfig | None) -> None:
    """Raise a one-line ConfigError for a configured logger whose package is not installed, or a
    StoreError for a tracking store that cannot be opened (at start, not after the data is
    prepared)."""
    for name, conf in (loggers or {}).items():
        target = str(conf.get("_target_", "")) if isinstance(conf, DictConfig) else ""
        module, extra = NEEDS.get(target.rpartition(".")[2], (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"logger={name} needs the {module} package: pip install -e '.[{extra}]' "
                f"(or pip install {module})"
            )
        if module == "mlflow":
            check_mlflow_store(f"logger.{name}.tracking_uri", conf.get("tracking_uri"))


def check_mlflow_store(setting: str, uri: str | None) -> None:
    """StoreError unless the MLflow tracking store at ``uri`` opens and answers a query."""
    from mlflow.tracking import MlflowClient

    opened(setting, uri, lambda: MlflowClient(uri).search_experiments(max_results=1))


class AppendingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is kept: its header is
    read back and new rows are appended (Lightning's writer deletes the file when it starts, so a
    resumed run would lose every earlier row). Rows logged after the checkpoint a run resumes
    from (the last steps of a killed run) stay too: a step may then appear twice, the later row
    being the resumed run's. Relies on the writer's ``_check_log_dir_exists`` and
    ``metrics_keys`` (Lightning 2.x; pyproject.toml bounds the minor version)."""

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            header = next(csv.reader(f), [])
        self.metrics_keys = [k for k in header if k]  # the file's column order: appended rows fit


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger`` whose ``metrics.csv`` survives a resume in the same run directory
    (``ckpt_path=last``): see :class:`AppendingExperimentWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
