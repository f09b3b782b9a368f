"""Compose data, model, module, callbacks, loggers and trainer from a Hydra config, then fit/test."""

import logging
import time
from contextlib import suppress
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from seq2seq_nmt.config import ConfigError
from seq2seq_nmt.data.io import atomic_write
from seq2seq_nmt.host_memory import keep_freed_memory
from seq2seq_nmt.rank import rank_zero_only
from seq2seq_nmt.train.budget import WorkMeter, trainer_limits
from seq2seq_nmt.train.callbacks import callback_of
from seq2seq_nmt.train.checkpoint_io import AtomicCheckpointIO
from seq2seq_nmt.train.errors import DivergenceError, ResumeError, StorageError
from seq2seq_nmt.train.lightning_module import TranslationModule
from seq2seq_nmt.train.loggers import check_available
from seq2seq_nmt.train.precision import trainer_precision
from seq2seq_nmt.train.progress import ValidationLog
from seq2seq_nmt.train.records import (
    COMPLETED,
    DIVERGED,
    FAILED,
    FULL,
    INTERRUPTED,
    RUNNING,
    TEST_HYPS,
    TEST_REFS,
    record_outcome,
    record_provenance,
)
from seq2seq_nmt.train.resume import checked_resume
from seq2seq_nmt.train.signals import Interrupted, SignalCheckpoint, Watch, watching

log = logging.getLogger(__name__)


class CheckpointNotFoundError(ResumeError, FileNotFoundError):
    """``ckpt_path`` names no file: a ResumeError (one line and exit status 2 from ``train.py``,
    like every other checkpoint that cannot be resumed from) that is also a FileNotFoundError."""


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, TranslationModule]:
    """The datamodule (set up, tokenizers trained) and the module it feeds."""
    if cfg.get("keep_host_memory", True):
        keep_freed_memory()
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    sizes = {
        "src_vocab_size": len(datamodule.src_tokenizer),
        "tgt_vocab_size": len(datamodule.tgt_tokenizer),
    }
    net_config = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()}
    net_config.pop("_target_")
    net_config.pop("compile", None)  # how the model runs, not what it is: not in checkpoints
    module = TranslationModule(
        net=instantiate(cfg.model, **sizes),
        net_config=net_config | sizes,
        src_tokenizer=datamodule.src_tokenizer,
        tgt_tokenizer=datamodule.tgt_tokenizer,
        data_config=datamodule.data_config(),
        optimizer=instantiate(cfg.optimizer),
        loss=instantiate(cfg.loss),
        teacher_forcing_ratio=cfg.teacher_forcing_ratio,
        teacher_forcing_mode=cfg.get("teacher_forcing_mode", "step"),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        bleu_tokenize=cfg.get("metrics", {}).get("tokenize", "13a"),
    )
    params = sum(p.numel() for p in module.net.parameters())
    log.info("model: %s attention, %s parameters", cfg.model.attention, f"{params:,}")
    return datamodule, module


def split_metrics(report: dict) -> dict[str, float]:
    """``data/<split>_<side>_in_train_pct``: how much of val/test also occurs in training."""
    return {
        f"data/{name}_{key}": value
        for name, shares in report.get("overlap", {}).items()
        for key, value in shares.items()
    }


def instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a callbacks/logger group."""
    return [instantiate(c) for c in (group or {}).values() if c and "_target_" in c]


def make_trainer(cfg: DictConfig, **kwargs) -> pl.Trainer:
    """``cfg.trainer`` instantiated with ``kwargs``, its precision resolved for the hardware
    (:func:`seq2seq_nmt.train.precision.trainer_precision`), checkpoints written atomically in
    their folder (:class:`seq2seq_nmt.train.checkpoint_io.AtomicCheckpointIO`), its limits set by
    ``cfg.budget`` where one is chosen (:mod:`seq2seq_nmt.train.budget`)."""
    settings = trainer_precision(cfg.trainer.get("precision", "32-true"), cfg.trainer.accelerator)
    settings["plugins"] = [*settings.get("plugins", []), AtomicCheckpointIO()]
    settings |= trainer_limits(cfg.get("budget"))
    return instantiate(cfg.trainer, **settings, **kwargs)


def resume_path(ckpt_path: str | None, trainer: pl.Trainer) -> str | None:
    """``ckpt_path`` checked: ``last`` is this run's ``checkpoints/last.ckpt`` (none yet: start
    afresh, so ``ckpt_path=last`` can be set before the first attempt); a path must exist."""
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        ckpt = trainer.checkpoint_callback
        where = Path(ckpt.dirpath) if ckpt is not None and ckpt.dirpath else None
        if where is not None and (where / "last.ckpt").is_file():
            return str(where / "last.ckpt")
        hint = "to resume a run, pass hydra.run.dir=<its directory> ckpt_path=last"
        log.warning("ckpt_path=last: no last.ckpt in %s, training from scratch (%s)", where, hint)
        return None
    if not Path(ckpt_path).is_file():
        raise CheckpointNotFoundError(f"ckpt_path={ckpt_path}: checkpoint not found")
    return str(ckpt_path)


def hyperparameters(cfg: DictConfig) -> dict:
    """The settings that make a run (no paths, loggers or callbacks), for TensorBoard's HPARAMS."""
    params = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in params.items() if k not in ("paths", "logger", "callbacks")}


def log_hyperparameters(trainer: pl.Trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """Hyperparameters with the final metrics (``hp/*``), so runs compare side by side: in
    TensorBoard's HPARAMS; the trackers (MLflow, W&B) got the parameters at the start
    (:func:`log_parameters`) and get the ``hp/*`` metrics here."""
    final = {f"hp/{k.replace('/', '_')}": v for k, v in metrics.items() if k.endswith("bleu")}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hyperparameters(cfg), final)
        elif final and not isinstance(logger, CSVLogger):
            logger.log_metrics(final, step=trainer.global_step)
        logger.save()


def log_parameters(trainer: pl.Trainer, cfg: DictConfig) -> None:
    """The run's settings to every logger before training, so a run that fails still shows its
    parameters; TensorBoard's HPARAMS need the final metrics and are written at the end, but its
    ``hparams.yaml`` (written once, at its first save) gets the settings now."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.hparams.update(hyperparameters(cfg))
        else:
            logger.log_hyperparams(hyperparameters(cfg))


def without_validation(cfg: DictConfig, callbacks: list) -> tuple[list, dict]:
    """Callbacks and trainer settings for an empty validation split: no early stopping, no
    best-by-val/bleu checkpoints (last.ckpt only), no validation loop; a scheduler is refused."""
    if cfg.get("scheduler"):
        raise ConfigError("the validation split is empty: the scheduler needs val/bleu")
    log.warning(
        "the validation split is empty (dataset.val_size=%s): validation skipped, "
        "no early stopping, checkpoints keep last.ckpt only", cfg.dataset.val_size,
    )  # fmt: skip
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor:
            cb.save_top_k = 0
    return [cb for cb in callbacks if not isinstance(cb, EarlyStopping)], {"limit_val_batches": 0}


def fit_and_test(cfg: DictConfig, run_dir: Path) -> tuple[pl.Trainer, dict[str, float]]:
    """Build, fit (or resume), test the best checkpoint; the trainer and final metrics.

    An empty validation split skips validation, an empty test split the test (warnings)."""
    check_available(cfg.get("logger"))  # before the data is prepared
    datamodule, module = build(cfg)
    callbacks, settings = instantiate_all(cfg.get("callbacks")), {}
    meter = WorkMeter(tokens=OmegaConf.select(cfg, "budget.tokens"))
    callbacks += [meter, ValidationLog(run_dir)]
    if not len(datamodule.datasets["val"]):
        callbacks, settings = without_validation(cfg, callbacks)
    callbacks.append(SignalCheckpoint())  # SIGTERM/SIGUSR1: last.ckpt, then stop
    trainer = make_trainer(
        cfg, callbacks=callbacks, logger=instantiate_all(cfg.get("logger")), **settings
    )
    last = cfg.get("ckpt_path") == "last"
    ckpt_path = checked_resume(resume_path(cfg.get("ckpt_path"), trainer), module, last)
    record_provenance(run_dir, datamodule, Path(cfg.paths.root_dir), ckpt_path)
    log_parameters(trainer, cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics |= split_metrics(datamodule.split_report)
    metrics["train/tgt_tokens"] = meter.tokens
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.best_model_score is not None:
        metrics["val/bleu"] = float(ckpt.best_model_score)
        log.info("best checkpoint: %s (val/bleu %.2f)", ckpt.best_model_path, metrics["val/bleu"])
    test = cfg.get("test") and not trainer.interrupted
    if test and not len(datamodule.datasets["test"]):
        log.warning(
            "the test split is empty (dataset.test_size=%s): testing skipped", cfg.dataset.test_size
        )
    elif test:
        best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
        results = trainer.test(module, datamodule, ckpt_path=best, verbose=False)[0]
        metrics |= {k: float(v) for k, v in results.items()}
        write_test_outputs(run_dir, module.test_outputs)
    log_hyperparameters(trainer, cfg, metrics)
    log.info("result: %s", result_line(trainer, metrics))
    return trainer, metrics


def full_disk_error(e: BaseException, run_dir: Path) -> StorageError | None:
    """A one-line StorageError for an OSError of a full disk or quota raised by a write this
    package does not make itself (a logger's file, say), or the StorageError it was raised while
    handling (a logger's last save after a failed checkpoint save); None for any other one."""
    if not isinstance(e, OSError) or e.errno not in FULL:
        return None
    cause = e.__context__
    while cause is not None and not isinstance(cause, StorageError):
        cause = cause.__context__
    where = e.filename or f"the files of {run_dir}"
    return cause or StorageError(f"cannot write {where}: {e.strerror}")


def record_failure(run_dir: Path, started: float, e: BaseException, watch: Watch) -> None:
    """``metrics.json`` for a run that raised ``e``: ``interrupted`` (with the signal, if one
    stopped it), ``diverged`` or ``failed``; a record that cannot be written does not hide ``e``."""
    status = INTERRUPTED if isinstance(e, KeyboardInterrupt | SystemExit) else FAILED
    status = DIVERGED if isinstance(e, DivergenceError) else status
    fields = {"error": f"{type(e).__name__}: {e}"}
    if watch.signum is not None:
        status, fields = INTERRUPTED, {"error": str(Interrupted(watch.signum))}
        fields["signal"] = Interrupted(watch.signum).name
    with suppress(StorageError):
        record_outcome(run_dir, status, started, **fields)


def training_time(trainer: pl.Trainer) -> float:
    """Seconds of training (validation excluded, across resumes), from the run's WorkMeter."""
    return round(callback_of(trainer, WorkMeter).elapsed(), 1)


@rank_zero_only
def write_test_outputs(run_dir: Path, outputs: list[tuple[str, str, str]]) -> None:
    """``test.hyp.txt`` and ``test.ref.txt``: the test split's outputs and references, a line
    each, in the same order (for the report's paired bootstrap between settings)."""
    for name, column in ((TEST_HYPS, 1), (TEST_REFS, 2)):
        text = "".join(" ".join(row[column].split()) + "\n" for row in outputs)
        with atomic_write(run_dir / name) as tmp:
            tmp.write_text(text, encoding="utf-8")


def result_line(trainer: pl.Trainer, metrics: dict[str, float]) -> str:
    """The run's outcome in one line: best validation and test BLEU, work done, status."""
    parts = [f"{name} {metrics[key]:.2f}" for key, name in
             (("val/bleu", "best val BLEU"), ("test/bleu", "test BLEU")) if key in metrics]  # fmt: skip
    parts.append(f"{trainer.global_step} steps, {int(metrics['train/tgt_tokens']):,} tgt tokens")
    parts.append(f"{training_time(trainer):.0f} s training")
    return ", ".join(parts) + (" (interrupted)" if trainer.interrupted else "")


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (or resume) and test; return the final metrics, ``val/bleu`` being the best one.

    The run directory gets ``run.json`` (provenance) and ``metrics.json`` (outcome and status).
    A SIGTERM or SIGUSR1 ends the run with ``Interrupted`` (see ``train.signals``).
    """
    started, run_dir = time.monotonic(), Path(cfg.paths.output_dir)
    record_outcome(run_dir, RUNNING, started)
    pl.seed_everything(cfg.seed, workers=True)
    with watching() as watch:
        try:
            trainer, metrics = fit_and_test(cfg, run_dir)
        except BaseException as e:  # Lightning turns Ctrl-C into SystemExit after its shutdown
            error = full_disk_error(e, run_dir) or e
            record_failure(run_dir, started, error, watch)
            if watch.signum is not None and not isinstance(e, Interrupted):
                raise Interrupted(watch.signum) from None  # Lightning's SIGTERMException
            if error is not e:
                raise error from e
            raise
        if watch.signum is not None:  # came after the last training batch: stop here
            record_failure(run_dir, started, Interrupted(watch.signum), watch)
            raise Interrupted(watch.signum)
    ckpt = trainer.checkpoint_callback
    record_outcome(
        run_dir, INTERRUPTED if trainer.interrupted else COMPLETED, started,
        steps=trainer.global_step, epochs=trainer.current_epoch, train_time_s=training_time(trainer),
        best_checkpoint=ckpt.best_model_path if ckpt is not None else None, metrics=metrics,
    )  # fmt: skip
    return metrics
