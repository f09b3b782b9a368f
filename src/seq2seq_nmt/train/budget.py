"""Equal work per job: a training budget in target tokens, optimizer steps, epochs or wall time.

``budget.tokens=2e6`` (or ``budget.steps``, ``budget.epochs``, ``budget.time``) sets what every
job of a sweep trains, whatever else runs on the machine; ``null`` everywhere leaves the
``trainer`` limits (``trainer.max_epochs``) in charge. :class:`WorkMeter` counts the target tokens
trained (stored in checkpoints, so a resumed run goes on counting), stops at a token budget and
never lets a time limit add a second validation right after a scheduled one.
"""

import time
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.trainer.states import TrainerFn

from seq2seq_nmt.config import UNITS
from seq2seq_nmt.train.callbacks import callback_of


def chosen(budget: DictConfig | dict | None) -> tuple[str, Any] | None:
    """The budget's unit and value (``("tokens", 2e6)``), or None when none is set."""
    picked = [(unit, (budget or {}).get(unit)) for unit in UNITS]
    picked = [(unit, value) for unit, value in picked if value is not None]
    return picked[0] if picked else None


def trainer_limits(budget: DictConfig | dict | None) -> dict[str, Any]:
    """Trainer arguments that make the budget the one limit on training (none without one)."""
    match chosen(budget):
        case None:
            return {}
        case ("tokens", _):
            return {"max_epochs": -1, "max_steps": -1, "max_time": None}
        case ("steps", steps):
            return {"max_epochs": -1, "max_steps": int(steps), "max_time": None}
        case ("epochs", epochs):
            return {"max_epochs": int(epochs), "max_steps": -1, "max_time": None}
        case ("time", limit):
            return {"max_epochs": -1, "max_steps": -1, "max_time": limit}
    raise AssertionError("unreachable")


class WorkMeter(pl.Callback):
    """Counts the target tokens trained (padding excluded; every rank's under DDP) and the
    training time (validation excluded); stops training once ``tokens`` are reached. When a time
    limit (``trainer.max_time``, ``budget.time``) has run out by the end of a validation, training
    stops there, instead of validating again at the next step.

    On one device the count is a host integer, checked every step; under DDP the ranks add up
    their counts every ``ddp_every_n_steps`` steps (one collective), so that all stop together.
    """

    def __init__(self, tokens: float | None = None, ddp_every_n_steps: int = 10):
        self.budget = None if tokens is None else int(tokens)
        self.ddp_every_n_steps = ddp_every_n_steps
        self.tokens, self.train_time = 0, 0.0  # carried over by a resume
        self._pending = 0  # this rank's tokens not yet added up with the other ranks'
        self._since: float | None = None  # start of the current stretch of training
        self._fitting = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._fitting = stage == TrainerFn.FITTING  # a test of a checkpoint keeps the count

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since = time.monotonic()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, *_
    ) -> None:
        self._pending += int(batch["tgt_tokens"])  # counted on the host by the collate function
        if trainer.world_size == 1 or trainer.global_step % self.ddp_every_n_steps == 0:
            self._add_up(trainer, pl_module)
        if self.budget is not None and self.tokens >= self.budget:
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._add_up(trainer, pl_module)

    def _add_up(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Add every rank's pending tokens to the count (a collective under DDP)."""
        if trainer.world_size > 1:
            pending = torch.tensor(self._pending, device=pl_module.device)
            self._pending = int(trainer.strategy.reduce(pending, reduce_op="sum"))
        self.tokens, self._pending = self.tokens + self._pending, 0

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pause()
        self._add_up(trainer, pl_module)  # the validation's row counts every token before it

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._since = time.monotonic()
        timer = callback_of(trainer, Timer)
        if timer is not None and timer.time_remaining() is not None:
            out = timer.time_remaining() <= 0
            trainer.should_stop = trainer.should_stop or trainer.strategy.broadcast(out)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pause()

    def _pause(self) -> None:
        if self._since is not None:
            self.train_time += time.monotonic() - self._since
            self._since = None

    def elapsed(self) -> float:
        """Training seconds so far (validation excluded), across resumes."""
        running = time.monotonic() - self._since if self._since is not None else 0.0
        return self.train_time + running

    def state_dict(self) -> dict:
        return {"tokens": self.tokens, "train_time": self.elapsed()}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._fitting:
            return
        self.tokens = int(state_dict.get("tokens", 0))
        self.train_time = float(state_dict.get("train_time", 0.0))
