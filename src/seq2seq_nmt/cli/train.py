"""``nmt-train [group=option ...] [key=value ...]`` (also ``python train.py`` in a checkout).

Only Hydra is imported up front: ``--help`` and ``--cfg`` answer without importing torch, and a
bad setting is reported before Lightning is imported."""

import logging
import sys
import time
from contextlib import suppress
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig

from seq2seq_nmt.cli import CONFIG_PATH

log = logging.getLogger(__name__)


def known_errors() -> tuple[type[Exception], ...]:
    """Bad config, data, storage, third-party store or checkpoint to resume, or a diverged run:
    one line, exit 2. A signal (``train.signals.Interrupted``) exits with 128 + its number."""
    from seq2seq_nmt.config import ConfigError
    from seq2seq_nmt.data.download import CorpusError
    from seq2seq_nmt.stores import StoreError
    from seq2seq_nmt.train.errors import DivergenceError, ResumeError, StorageError

    return ConfigError, CorpusError, StorageError, StoreError, ResumeError, DivergenceError


def run(cfg: DictConfig) -> float | None:
    """Check the config, then train and test; the best validation BLEU (Optuna's objective)."""
    from seq2seq_nmt.config import ConfigError, validate
    from seq2seq_nmt.console import quiet, quiet_libraries
    from seq2seq_nmt.train.checks import check_output_folders, output_folders
    from seq2seq_nmt.train.records import FAILED, record_outcome

    quiet()
    try:
        validate(cfg)  # before any data is read
    except ConfigError as e:
        with suppress(OSError):  # the run directory says why it has no results
            record_outcome(Path(cfg.paths.output_dir), FAILED, time.monotonic(), error=str(e))
        raise
    log.info("config checked: %s", " ".join(HydraConfig.get().overrides.task) or "defaults")
    check_output_folders(output_folders(cfg))
    from seq2seq_nmt.train.run import train  # Lightning loads here, once the config is checked

    quiet_libraries()
    try:
        return train(cfg).get("val/bleu")
    except InstantiationException as e:  # a bad setting found while building the data
        if isinstance(e.__cause__, known_errors()):
            raise e.__cause__ from None
        raise


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        return run(cfg)
    except known_errors() as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records a failed job and goes on with the others
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
