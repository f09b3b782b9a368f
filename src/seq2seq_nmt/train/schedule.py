"""A learning rate that falls with the budget spent: the schedule for a fixed time or work budget.

Training for a fixed budget (10 minutes, 2M tokens, 30 epochs) ends at a point the schedule can
know, so the rate can fall towards it: linearly from the start (Li et al., "Budgeted training",
ICLR 2020) or as a cool-down over the last part. :func:`budget_spent` measures how much of
whichever limit is nearest has been used; :class:`LinearDecay` sets the rate from it before
every step. What it did to the presets: docs/performance.md.
"""

import math

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer

from seq2seq_nmt.train.budget import WorkMeter
from seq2seq_nmt.train.callbacks import callback_of


def budget_spent(trainer: pl.Trainer) -> float | None:
    """The fraction, in [0, 1], used of the limit nearest to stopping the run: the token budget,
    the time limit (``trainer.max_time``, ``budget.time``; validation counts, as it does for the
    limit) or the steps ``max_steps``/``max_epochs`` allow. None when the run has no limit."""
    spent = []
    if (meter := callback_of(trainer, WorkMeter)) is not None and meter.budget is not None:
        spent.append(meter.tokens / meter.budget)
    timer = callback_of(trainer, Timer)
    if timer is not None and (left := timer.time_remaining()) is not None:
        elapsed = timer.time_elapsed()
        spent.append(elapsed / max(elapsed + left, 1e-9))
    if math.isfinite(steps := trainer.estimated_stepping_batches) and steps > 0:
        spent.append(trainer.global_step / steps)
    return min(max(spent), 1.0) if spent else None


class LinearDecay(pl.Callback):
    """Sets the learning rate before every optimizer step from ``spent`` (:func:`budget_spent`):
    ``lr`` until ``start`` of the budget is spent, then falling linearly to ``final * lr`` at its
    end (``start=0``: from the first step; ``start=0.8``: a cool-down over the last fifth).

    A run without a limit keeps ``lr`` (``config`` refuses that combination). A resumed run goes
    on from where it stopped (the step, token and time counts are restored). Under DDP the ranks'
    clocks differ, so rank 0's figure is broadcast every ``sync_every_n_steps`` steps and the
    ranks use the same rate in between.
    """

    def __init__(
        self, lr: float, final: float = 0.0, start: float = 0.0, sync_every_n_steps: int = 10
    ):
        self.lr, self.final, self.start = lr, final, start
        self.sync_every_n_steps = sync_every_n_steps

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._update(trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, *_) -> None:
        if trainer.world_size == 1 or trainer.global_step % self.sync_every_n_steps == 0:
            self._update(trainer)

    def _update(self, trainer: pl.Trainer) -> None:
        spent = budget_spent(trainer) or 0.0
        if trainer.world_size > 1:
            spent = trainer.strategy.broadcast(spent)
        falling = max(spent - self.start, 0.0) / (1.0 - self.start)
        lr = self.lr * (1.0 - (1.0 - self.final) * falling)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr
