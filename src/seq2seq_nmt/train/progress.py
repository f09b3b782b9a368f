"""What a run says while it trains: one line per validation (also a row of ``curve.csv``, the
learning curve ``nmt-report`` draws), and progress as a bar on a terminal or as a plain line every
few hundred steps when the output goes to a file."""

import csv
import io
import logging
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, TQDMProgressBar

from seq2seq_nmt.data.io import atomic_write
from seq2seq_nmt.rank import is_rank_zero
from seq2seq_nmt.train.budget import WorkMeter
from seq2seq_nmt.train.callbacks import callback_of

log = logging.getLogger(__name__)
CURVE_FILE = "curve.csv"
CURVE_COLUMNS = ("step", "epoch", "tokens", "train_time_s", "val_bleu", "val_loss", "tokens_per_s")


def scalar(metrics: dict, key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


class ValidationLog(pl.Callback):
    """After each validation of training: one console line (epoch, step, BLEU, loss, tokens/s)
    and one row of ``<run dir>/curve.csv``, rewritten atomically. The rows travel in
    checkpoints, so a resumed run's curve holds the steps it resumed from and no later ones."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / CURVE_FILE
        self.rows: list[dict[str, Any]] = []
        self._fitting = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._fitting = stage == "fit"  # a test of a checkpoint keeps the curve

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        meter = callback_of(trainer, WorkMeter)
        if trainer.sanity_checking or trainer.state.fn != "fit" or meter is None:
            return
        row = self.row(trainer, meter)
        self.rows.append(row)
        bleu, loss = row["val_bleu"], row["val_loss"]
        log.info(
            "epoch %d step %d: val BLEU %s, val loss %s, %s tgt tokens/s, %s tokens, %.0f s",
            row["epoch"], row["step"], "-" if bleu is None else f"{bleu:.2f}",
            "-" if loss is None else f"{loss:.3f}", f"{row['tokens_per_s']:,.0f}",
            f"{row['tokens']:,}", row["train_time_s"],
        )  # fmt: skip
        if is_rank_zero():
            self.write()

    def row(self, trainer: pl.Trainer, meter: WorkMeter) -> dict[str, Any]:
        """This validation's row; tokens/s over the training since the previous one."""
        metrics, elapsed = trainer.callback_metrics, meter.elapsed()
        last = self.rows[-1] if self.rows else {"tokens": 0, "train_time_s": 0.0}
        seconds = elapsed - last["train_time_s"]
        return {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "tokens": meter.tokens,
            "train_time_s": round(elapsed, 2),
            "val_bleu": scalar(metrics, "val/bleu"),
            "val_loss": scalar(metrics, "val/loss"),
            "tokens_per_s": (meter.tokens - last["tokens"]) / seconds if seconds > 0 else 0.0,
        }

    def write(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        with atomic_write(self.path) as tmp:
            tmp.write_text(text.getvalue())

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        if self._fitting:
            self.rows = list(state_dict.get("rows", []))


class PlainProgress(ProgressBar):
    """Progress for a log file: a plain line every ``every_n_steps`` training steps."""

    def __init__(self, every_n_steps: int = 200):
        super().__init__()
        self.every_n_steps, self._enabled = every_n_steps, True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_) -> None:
        step = trainer.global_step
        if not self._enabled or step == 0 or step % self.every_n_steps:
            return
        loss = trainer.progress_bar_metrics.get("train/loss")
        meter = callback_of(trainer, WorkMeter)
        tokens = f", {meter.tokens:,} tokens" if meter is not None else ""
        shown = "-" if loss is None else f"{float(loss):.3f}"
        log.info("epoch %d step %d: train loss %s%s", trainer.current_epoch, step, shown, tokens)


def progress_bar(refresh_rate: int = 10, every_n_steps: int = 200) -> ProgressBar:
    """Lightning's TQDM bars when standard output is a terminal, else :class:`PlainProgress`
    (no carriage returns or cursor escapes in a log file)."""
    if sys.stdout.isatty():
        return TQDMProgressBar(refresh_rate=refresh_rate)
    return PlainProgress(every_n_steps)
