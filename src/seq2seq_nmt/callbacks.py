"""Lightning callbacks of this project (the stock ones are configured in conf/callbacks/)."""

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn


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
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if every_n_steps < 1 or start_step < 0:
            raise ValueError("EMA every_n_steps must be >= 1 and start_step >= 0")
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
