"""Lightning callbacks of this project (the stock ones are configured in conf/callbacks/): a
seed per step, EMA, the divergence guard, verified checkpoints and the resumed learning rate."""

import logging
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn

from seq2seq_nmt.train.checks import verify_checkpoint
from seq2seq_nmt.train.errors import DivergenceError, StorageError

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Callback)


def callback_of(trainer: pl.Trainer, kind: type[C]) -> C | None:
    """The trainer's first callback of ``kind`` (a WorkMeter, Lightning's Timer, ...), or None."""
    return next((c for c in trainer.callbacks if isinstance(c, kind)), None)


class StepSeed(pl.Callback):
    """Reseeds torch before every training batch from ``(seed, batch index across epochs)``.

    Teacher forcing and dropout then draw the same numbers at a given batch whether the run went
    straight through or was resumed from a checkpoint (Lightning saves no RNG state), and whatever
    validation, sanity checks or dataloader workers drew before it (fairseq seeds its steps so too).
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, *_) -> None:
        step = trainer.fit_loop.total_batch_idx
        torch.manual_seed(
            int(np.random.SeedSequence([self.seed, step]).generate_state(1, np.uint64)[0])
        )


class EMA(pl.Callback):
    """Exponential moving average of the weights, ``ema = decay * ema + (1 - decay) * weights``,
    taken after every ``every_n_steps``-th optimizer step (a plain copy up to ``start_step``).

    Validation, and a test of the live model, run with the average. Every checkpoint's
    ``state_dict`` holds the average (what translate.py loads); the raw weights and the average
    travel in this callback's state, so that ``ckpt_path`` resumes both. Checkpoints written with
    ``save_weights_only`` skip callbacks and hold the raw weights.
    """

    def __init__(self, decay: float = 0.999, every_n_steps: int = 1, start_step: int = 0):
        self.decay, self.every_n_steps, self.start_step = decay, every_n_steps, start_step
        self.ema: dict[str, torch.Tensor] | None = None  # the floating-point state_dict entries
        self.step = 0  # the global step of the last batch seen
        self._module: pl.LightningModule | None = None
        self._fitting = False
        self._raw: dict[str, torch.Tensor] | None = None  # while the average is swapped in

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # before a checkpoint is restored; a test or validation of one restores no raw weights
        self._module, self._fitting = pl_module, stage == TrainerFn.FITTING

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        weights = pl_module.state_dict()
        if self.ema is None:
            self.ema = {k: v.clone() for k, v in weights.items() if v.is_floating_point()}
        else:  # resumed: onto the module's device
            self.ema = {k: v.to(weights[k].device, copy=True) for k, v in self.ema.items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_) -> None:
        step = trainer.global_step
        if self.ema is None or step == self.step:  # no optimizer step (gradient accumulation)
            return
        self.step, weights = step, pl_module.state_dict()
        if step <= self.start_step:
            for k, v in self.ema.items():
                v.copy_(weights[k])
        elif step % self.every_n_steps == 0:
            for k, v in self.ema.items():
                v.lerp_(weights[k], 1.0 - self.decay)

    def _swap_in(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The average into the module, unless evaluating a checkpoint it loaded (already one)."""
        fitting = trainer.state.fn == TrainerFn.FITTING
        if self.ema is None or self._raw is not None or not (fitting or trainer.ckpt_path is None):
            return
        weights = pl_module.state_dict()
        self._raw = {k: weights[k].clone() for k in self.ema}
        for k, v in self.ema.items():
            weights[k].copy_(v)

    def _swap_out(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_) -> None:
        """The raw weights back into the module."""
        if self._raw is not None:
            weights = pl_module.state_dict()
            for k, v in self._raw.items():
                weights[k].copy_(v)
            self._raw = None

    on_validation_start = on_test_start = _swap_in
    on_validation_end = on_test_end = on_exception = _swap_out

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        if self.ema is not None:
            checkpoint["state_dict"] = checkpoint["state_dict"] | self.ema

    def state_dict(self) -> dict:
        if self.ema is None or self._module is None:
            return {}
        raw = self._module.state_dict() | (self._raw or {})
        return {"step": self.step, "ema": self.ema, "raw": raw}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores the average, and the raw weights into the module (which got the average)."""
        if self._fitting and self._module is not None:
            self.step, self.ema = state_dict["step"], state_dict["ema"]
            self._module.load_state_dict(state_dict["raw"])


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
    this check does not rely on it. Rank 0 checks, and every rank gets its verdict. A save that
    raises OSError (a full disk, under ``train.checkpoint_io.AtomicCheckpointIO``) is a
    StorageError naming the file.
    """

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        try:
            super()._save_checkpoint(trainer, filepath)
        except OSError as e:  # a full disk: the atomic save left no file under the final name
            raise StorageError(f"checkpoint save failed: {filepath}: {e.strerror or e}") from e
        problem = verify_checkpoint(Path(filepath)) if trainer.is_global_zero else None
        problem = trainer.strategy.broadcast(problem, src=0)
        if problem:
            raise StorageError(f"checkpoint save failed: {filepath} {problem}")


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
