"""Process signals a scheduler sends (SIGTERM at a time limit or on preemption, SIGUSR1 where a
launcher asks for it): the run saves a resumable ``last.ckpt``, records ``interrupted`` with the
signal and exits with status 128 + the signal's number, so the scheduler can requeue it and
``ckpt_path=last`` resume it exactly. SIGINT (Ctrl-C) is Lightning's graceful interrupt.

:func:`watching` installs the handlers around a run. Outside training (the data being prepared)
a signal stops the run at once; during training :class:`SignalCheckpoint` (which takes SIGTERM
back from Lightning's handler) stops it at the end of the current batch, on every rank, after
saving ``last.ckpt`` there: where the step checkpoints are saved, so the resume is exact. A
signal during validation is acted on at the next training batch; one after the last training
batch ends the run when ``fit_and_test`` returns (``train()``)."""

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # handled here; SIGINT is Lightning's


class Interrupted(SystemExit):
    """The run stopped on ``signum``: exit status 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum, self.name = signum, signal.Signals(signum).name

    def __str__(self) -> str:
        return f"interrupted by {self.name}"


class Watch:
    """The first signal received; raised at once unless a fit defers it to a batch end."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferred = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        log.warning("received %s: stopping", signal.Signals(signum).name)
        self.signum = self.signum or signum
        if not self.deferred:
            raise Interrupted(signum)


WATCH = Watch()  # the process's signal state: a signal handler is process-wide too


@contextmanager
def watching() -> Iterator[Watch]:
    """``WATCH`` installed for ``SIGNALS`` (cleared first); the previous handlers restored after.
    Only the main thread can install handlers: elsewhere (a launcher's thread) none are."""
    WATCH.signum, WATCH.deferred = None, False
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, WATCH) for s in SIGNALS} if main else {}
    try:
        yield WATCH
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def last_checkpoint_callback(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The first checkpoint callback that keeps ``last.ckpt``."""
    return next((c for c in trainer.checkpoint_callbacks if c.save_last), None)


class SignalCheckpoint(Callback):
    """During ``fit``, defers ``WATCH``'s signals to the end of the current training batch, where
    it saves ``last.ckpt`` and stops the run (``Interrupted``)."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        WATCH.deferred = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``WATCH`` in place of the SIGTERM handler Lightning registered after ``on_fit_start``:
        Lightning's broadcasts from inside the handler, which deadlocks DDP ranks; here the ranks
        agree at a batch end instead (Lightning restores the handlers after ``fit``)."""
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                signal.signal(s, WATCH)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        WATCH.deferred = False

    def on_train_batch_end(self, trainer: pl.Trainer, *_) -> None:
        # every rank stops at the same batch (a no-op on one device; under DDP one all-reduce a
        # step, as Lightning's own SIGTERM broadcast): the save below is collective
        if not trainer.strategy.reduce_boolean_decision(WATCH.signum is not None, all=False):
            return
        WATCH.signum = WATCH.signum or signal.SIGTERM  # a rank that did not get it stops alike
        ckpt = last_checkpoint_callback(trainer)
        if ckpt is None:
            log.warning("no checkpoint callback keeps last.ckpt: nothing saved")
        else:
            ckpt._save_last_checkpoint(trainer, ckpt._monitor_candidates(trainer))
            log.warning("saved %s at step %d", ckpt.last_model_path, trainer.global_step)
        raise Interrupted(WATCH.signum)
