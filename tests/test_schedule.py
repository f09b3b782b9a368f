"""The budget schedule: a learning rate that falls linearly over whichever limit is nearest."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer

from helpers import make_cfg
from seq2seq_nmt.config import ConfigError, validate
from seq2seq_nmt.train.budget import WorkMeter
from seq2seq_nmt.train.run import train
from seq2seq_nmt.train.schedule import budget_spent

TINY = ["debug=fast", "model.emb_size=32", "model.hidden_size=32", "trainer.limit_val_batches=2",
        "test=false", "logger=csv", "callbacks=[default,lr_decay]"]  # fmt: skip


def stub_trainer(*callbacks, step: int = 0, steps: float = float("inf")) -> SimpleNamespace:
    return SimpleNamespace(callbacks=list(callbacks), global_step=step,
                           estimated_stepping_batches=steps)  # fmt: skip


def timer(elapsed: float, duration: float) -> Timer:
    clock = Timer(duration=timedelta(seconds=duration))
    clock.load_state_dict({"time_elapsed": {"train": elapsed}})
    return clock


def test_the_nearest_limit_sets_the_budget_spent():
    meter = WorkMeter(tokens=1000)
    meter.tokens = 250
    assert budget_spent(stub_trainer(meter)) == 0.25
    assert budget_spent(stub_trainer(timer(30, 120))) == 0.25
    assert budget_spent(stub_trainer(step=3, steps=12)) == 0.25
    # three limits: the one nearest to stopping the run
    assert budget_spent(stub_trainer(meter, timer(60, 120), step=3, steps=12)) == 0.5
    meter.tokens = 1100  # a budget overrun by the last batch: the rate stays at its floor
    assert budget_spent(stub_trainer(meter)) == 1.0
    assert budget_spent(stub_trainer(WorkMeter(), Timer())) is None  # no limit at all


seen_rates: list[float] = []


class LearningRates(pl.Callback):
    """Appends the rate each optimizer step uses to ``seen_rates``."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        seen_rates.append(optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize(("final", "start"), [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5)])
def test_the_rate_falls_linearly_over_a_step_budget(tmp_path, final, start):
    seen_rates.clear()
    train(make_cfg(tmp_path, *TINY, "budget.steps=8", "optimizer.lr=0.002",
                   f"callbacks.lr_decay.final={final}", f"callbacks.lr_decay.start={start}",
                   "+callbacks.rates._target_=test_schedule.LearningRates"))  # fmt: skip
    expected = [0.002 * (1 - (1 - final) * max(k / 8 - start, 0) / (1 - start)) for k in range(8)]
    assert seen_rates == pytest.approx(expected)


def test_a_decay_without_a_limit_or_beside_a_scheduler_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="^callbacks.lr_decay falls over the run's limit"):
        validate(make_cfg(tmp_path, *TINY, "trainer.max_epochs=-1"))
    with pytest.raises(ConfigError, match="^callbacks.lr_decay and a scheduler are both set"):
        validate(make_cfg(tmp_path, *TINY, "scheduler=plateau"))
    with pytest.raises(ConfigError, match="^callbacks.lr_decay.final=1.5"):
        validate(make_cfg(tmp_path, *TINY, "callbacks.lr_decay.final=1.5"))
    validate(make_cfg(tmp_path, *TINY, "trainer.max_epochs=-1", "budget.time=00:00:10:00"))


class StopAt(pl.Callback):
    """Saves a checkpoint after optimizer step ``step`` and stops there (an interrupted run)."""

    def __init__(self, step: int, path: str):
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, *_):
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            trainer.should_stop = True


def test_a_resumed_run_goes_on_along_the_same_line(tmp_path):
    common = [*TINY, "optimizer.lr=0.002", "budget.steps=8",
              "+callbacks.rates._target_=test_schedule.LearningRates"]  # fmt: skip
    seen_rates.clear()
    ckpt = tmp_path / "step4.ckpt"
    train(make_cfg(tmp_path, *common, "+callbacks.stop._target_=test_schedule.StopAt",
                   "+callbacks.stop.step=4", f"+callbacks.stop.path={ckpt}"))  # fmt: skip
    assert len(seen_rates) == 4
    train(make_cfg(tmp_path / "resumed", *common, f"ckpt_path={ckpt}"))
    assert pytest.approx([0.002 * (1 - k / 8) for k in range(8)]) == seen_rates
