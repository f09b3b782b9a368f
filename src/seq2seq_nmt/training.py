"""Compose data, model, module, callbacks, loggers and trainer from a Hydra config, then fit/test."""

import logging

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .module import TranslationModule

log = logging.getLogger(__name__)


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, TranslationModule]:
    """The datamodule (set up, vocabularies built) and the module it feeds."""
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    sizes = {
        "src_vocab_size": len(datamodule.src_vocab),
        "tgt_vocab_size": len(datamodule.tgt_vocab),
    }
    net_config = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items()}
    net_config.pop("_target_")
    module = TranslationModule(
        net=instantiate(cfg.model, **sizes),
        net_config=net_config | sizes,
        src_vocab=datamodule.src_vocab,
        tgt_vocab=datamodule.tgt_vocab,
        data_config=datamodule.data_config(),
        optimizer=instantiate(cfg.optimizer),
        loss=instantiate(cfg.loss),
        teacher_forcing_ratio=cfg.teacher_forcing_ratio,
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
    )
    return datamodule, module


def instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a callbacks/logger group."""
    return [instantiate(c) for c in (group or {}).values() if c and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (or resume) and test; return the final metrics, ``val/bleu`` being the best one."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_all(cfg.get("callbacks")),
        logger=instantiate_all(cfg.get("logger")),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.best_model_score is not None:
        metrics["val/bleu"] = float(ckpt.best_model_score)
        log.info("best checkpoint: %s (val/bleu %.2f)", ckpt.best_model_path, metrics["val/bleu"])
    if cfg.get("test"):
        best = "best" if ckpt is not None and ckpt.best_model_path else None
        metrics |= {
            k: float(v) for k, v in trainer.test(module, datamodule, ckpt_path=best)[0].items()
        }
    return metrics
