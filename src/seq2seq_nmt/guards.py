"""Guards that stop a run loudly instead of letting it fail silently: a diverging loss, non-finite
weights about to be saved, a run or checkpoint folder that cannot be written, a checkpoint that
was not written or does not load back, a resume that cannot honour the config."""

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint

from .checkpoint import CheckpointError, read_payload
from .data.io import unwritable

log = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """Training diverged: a non-finite loss, a loss above the bound for too long, or non-finite
    weights about to be saved (one-line message)."""


class StorageError(RuntimeError):
    """A run or checkpoint folder that cannot be written, or a checkpoint that did not land."""


class ResumeError(ValueError):
    """A checkpoint to resume from that does not load, or was trained with other settings."""


def _last_checkpoint(trainer: pl.Trainer) -> str:
    """Where the newest finite weights are on disk (paths are set before their file is saved)."""
    ckpt = trainer.checkpoint_callback
    paths = [getattr(ckpt, name, "") for name in ("last_model_path", "best_model_path")]
    path = next((p for p in paths if p and Path(p).is_file()), None)
    return f"the last finite checkpoint is {path}" if path else "no checkpoint was written"


class DivergenceGuard(Callback):
    """Stops training on a non-finite training loss, or one above ``max_loss`` for ``patience``
    steps in a row. The loss is watched on its device every step and read back only every
    ``every_n_steps`` steps and at each epoch's end (one device sync per read), so a GPU never
    waits for the host between those reads.

    It also refuses to save a checkpoint whose weights are not all finite, whatever writes it, so
    the last finite checkpoint on disk stays the last one. Lightning runs checkpoint callbacks
    after all others, so a divergence seen at a step stops the run before that step's save.
    """

    def __init__(self, max_loss: float | None = None, patience: int = 100, every_n_steps: int = 1):
        self.max_loss, self.patience, self.every_n_steps = max_loss, patience, every_n_steps
        self._bad: torch.Tensor | None = None  # a non-finite loss since the last read
        self._above: torch.Tensor | None = None  # steps in a row with the loss above max_loss

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach()
        bad = ~torch.isfinite(loss)
        self._bad = bad if self._bad is None else self._bad | bad
        if self.max_loss is not None:
            above = (loss > self.max_loss).long()
            self._above = above if self._above is None else (self._above + 1) * above
        if trainer.global_step % self.every_n_steps == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: pl.Trainer) -> None:
        """Read the watched state (one sync) and stop every rank together if it diverged."""
        if self._bad is None:
            return
        bad, above = bool(self._bad), int(self._above) if self._above is not None else 0
        self._bad, step, reason = None, trainer.global_step, None
        if bad:
            reason = f"loss not finite at or before step {step}"
        elif above >= self.patience:
            reason = f"loss above {self.max_loss} for {above} steps up to step {step}"
        # every rank stops together (a no-op on one device)
        if trainer.strategy.reduce_boolean_decision(reason is not None, all=False):
            reason = reason or f"on another process at step {step}"
            raise DivergenceError(f"training diverged: {reason}; {_last_checkpoint(trainer)}")

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        for name, t in checkpoint.get("state_dict", {}).items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise DivergenceError(
                    f"training diverged: non-finite weights ({name}) at step "
                    f"{trainer.global_step}, not saved; {_last_checkpoint(trainer)}"
                )


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ModelCheckpoint, each file it saves checked to exist and load (memory-mapped,
    weights only); otherwise the run stops with a StorageError. Its class name is Lightning's, so
    its state in checkpoints keeps Lightning's key (older checkpoints resume with their top-k).

    The check wraps ``_save_checkpoint``, the one method through which ModelCheckpoint writes
    every file (top-k and last.ckpt): a callback's ``on_save_checkpoint`` runs before the file is
    written, and one on ``on_validation_end`` or ``on_train_batch_end`` would depend on callback
    order and miss saves made elsewhere. Lightning's atomic save can swallow a PermissionError;
    this check does not rely on it. Rank 0 checks, and every rank gets its verdict.
    """

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        problem = verify_checkpoint(Path(filepath)) if trainer.is_global_zero else None
        problem = trainer.strategy.broadcast(problem, src=0)
        if problem:
            raise StorageError(f"checkpoint save failed: {filepath} {problem}")


def verify_checkpoint(path: Path) -> str | None:
    """What is wrong with the checkpoint file at ``path`` (None: present and loads)."""
    if not path.is_file():
        return "was not written"
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # any unpickling or zip error means the file is unusable
        why = str(e).splitlines()[0].split(". ")[0] if str(e) else ""
        return f"does not load ({type(e).__name__}: {why})"
    return None


def output_folders(cfg: DictConfig) -> list[Path]:
    """The run directory and every callback's ``dirpath`` (the checkpoint folders)."""
    callbacks = [c for c in (cfg.get("callbacks") or {}).values() if c]
    dirs = [c.get("dirpath") for c in callbacks if isinstance(c, DictConfig)]
    return [Path(cfg.paths.output_dir), *(Path(d) for d in dirs if d)]


def check_writable(folders: list[Path]) -> None:
    """Create each folder and a file in it, or raise a one-line StorageError naming it."""
    for folder in folders:
        if (why := unwritable(folder)) is not None:
            raise StorageError(f"cannot write to {folder}: {why}")


def newest_readable(folder: Path, bad: Path) -> Path | None:
    """The newest checkpoint in ``folder``, other than ``bad``, that loads."""
    others = [p for p in folder.glob("*.ckpt") if p != bad]
    others.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return next((p for p in others if verify_checkpoint(p) is None), None)


def checked_resume(ckpt_path: str | None, module: Any, last: bool) -> str | None:
    """The checkpoint to resume from, checked: it loads (for ``ckpt_path=last``, else the newest
    readable checkpoint beside it, with a warning naming the bad file; none: train from scratch)
    and was trained with ``module``'s model, data and vocabularies (else a ResumeError)."""
    if ckpt_path is None:
        return None
    path = Path(ckpt_path)
    problem = verify_checkpoint(path)
    if problem and not last:
        raise ResumeError(f"ckpt_path={path}: {problem}")
    if problem:
        found = newest_readable(path.parent, path)
        where = found or "scratch (no readable checkpoint beside it)"
        log.warning("ckpt_path=last: %s %s; resuming from %s", path, problem, where)
        if found is None:
            return None
        path = found
    check_same_settings(path, module)
    return str(path)


def check_same_settings(path: Path, module: Any) -> None:
    """Raise a ResumeError when the checkpoint at ``path`` was trained with another model shape,
    data preprocessing or vocabulary than ``module`` (settings it does not record are not
    compared): a resume cannot honour those."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    try:
        saved = read_payload(ckpt, path)
    except CheckpointError as e:
        raise ResumeError(f"ckpt_path={e}") from e
    now = {"model": module.net_config, "data": module.data_config}
    diffs = [
        f"{part}.{key}={saved[part][key]!r} (now {value!r})"
        for part, values in now.items()
        for key, value in values.items()
        if key in saved.get(part, {})
        and saved[part][key] != value
        and not key.endswith("_vocab_size")  # the vocabularies are compared below
    ]
    for side in ("src_tokenizer", "tgt_tokenizer"):
        if saved[side] != getattr(module, side).to_dict():
            diffs.append(f"{side} (other data or tokenizer settings)")
    if diffs:
        raise ResumeError(
            f"ckpt_path={path}: trained with other settings: {', '.join(diffs)}; "
            "resume with the settings it was trained with, or train afresh"
        )


class ResumeSettings(Callback):
    """Keeps the configured learning rate in checkpoints. On resume, a changed ``lr`` is applied
    to the restored optimizer, with a warning, instead of being silently replaced by the saved
    one; an unchanged one leaves the restored rate alone (a scheduler may have lowered it)."""

    def __init__(self, lr: float):
        self.lr, self._saved_lr = lr, None

    def state_dict(self) -> dict:
        return {"lr": self.lr}

    def load_state_dict(self, state_dict: dict) -> None:
        self._saved_lr = state_dict.get("lr")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._saved_lr is None or self._saved_lr == self.lr:
            return
        log.warning(
            "resuming with optimizer.lr=%s (the checkpoint was trained with %s): applied",
            self.lr, self._saved_lr,
        )  # fmt: skip
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr
        self._saved_lr = None
