"""EMA callback: the update formula, validation and checkpoints on the average, exact resume."""

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import make_cfg
from seq2seq_nmt.checkpoint import WEIGHTS_PREFIX
from seq2seq_nmt.train.callbacks import EMA
from seq2seq_nmt.train.run import train
from seq2seq_nmt.translate.translator import Translator

Weights = dict[str, torch.Tensor]


def copy(module: nn.Module) -> Weights:
    return {k: v.clone() for k, v in module.state_dict().items()}


class Tiny(pl.LightningModule):
    """A linear regression whose validation and test record the weights they ran with."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(3, 2)
        self.validated_with: list[tuple[int, Weights]] = []
        self.tested_with: list[Weights] = []

    def training_step(self, batch, _):
        return F.mse_loss(self.net(batch[0]), batch[1])

    def validation_step(self, batch, _):
        self.validated_with.append((self.global_step, copy(self)))
        self.log("val_loss", F.mse_loss(self.net(batch[0]), batch[1]))

    def test_step(self, batch, _):
        self.tested_with.append(copy(self))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2)


class Recorder(pl.Callback):
    """The raw weights after each optimizer step, by global step (0: before training)."""

    def __init__(self):
        self.raw: dict[int, Weights] = {}

    def on_fit_start(self, trainer, module):
        self.raw[0] = copy(module)

    def on_train_batch_end(self, trainer, module, *_):
        self.raw[trainer.global_step] = copy(module)


def fit_tiny(tmp_path, *callbacks: pl.Callback) -> tuple[Tiny, Recorder, pl.Trainer]:
    gen = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(16, 3, generator=gen), torch.randn(16, 2, generator=gen))
    module, recorder = Tiny(), Recorder()
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=2, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, val_check_interval=4,
        limit_val_batches=1, default_root_dir=tmp_path, callbacks=[*callbacks, recorder],
    )  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=2), DataLoader(data, batch_size=16))
    return module, recorder, trainer


def expected_ema(
    raw: dict[int, Weights], decay: float, every: int, start: int
) -> dict[int, Weights]:
    """The average after each step, computed by hand from the recorded raw weights."""
    ema, out = dict(raw[0]), {0: dict(raw[0])}
    for step in range(1, max(raw) + 1):
        if step <= start:
            ema = dict(raw[step])
        elif step % every == 0:
            ema = {k: decay * v + (1 - decay) * raw[step][k] for k, v in ema.items()}
        out[step] = ema
    return out


def assert_weights_equal(a: Weights, b: Weights) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7, msg=k)


def differs(a: Weights, b: Weights) -> bool:
    return any(not torch.allclose(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("decay", "every", "start"), [(0.5, 1, 0), (0.8, 2, 3)])
def test_average_validation_and_every_checkpoint_follow_the_formula(tmp_path, decay, every, start):
    steps = ModelCheckpoint(tmp_path / "steps", "s{step}", every_n_train_steps=3, save_top_k=-1)
    on_val = ModelCheckpoint(tmp_path / "val", "v{step}", monitor="val_loss", save_top_k=-1)
    ema = EMA(decay, every_n_steps=every, start_step=start)
    module, recorder, _ = fit_tiny(tmp_path, ema, steps, on_val)
    expected = expected_ema(recorder.raw, decay, every, start)
    assert max(recorder.raw) == 16
    assert_weights_equal(ema.ema, expected[16])
    assert differs(ema.ema, recorder.raw[16])

    # validation ran with the average, training went on with the raw weights
    assert [s for s, _ in module.validated_with] == [4, 8, 12, 16]
    for step, weights in module.validated_with:
        assert_weights_equal(weights, expected[step])
    assert_weights_equal(copy(module), recorder.raw[16])
    _, alone, _ = fit_tiny(tmp_path / "alone")  # the same training without EMA
    for step, weights in alone.raw.items():
        assert_weights_equal(recorder.raw[step], weights)

    files = [*(tmp_path / "steps").iterdir(), *(tmp_path / "val").iterdir()]
    assert len(files) == 5 + 4
    for path in files:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        step, state = ckpt["global_step"], ckpt["callbacks"]["EMA"]
        assert_weights_equal(ckpt["state_dict"], expected[step])
        assert_weights_equal(state["ema"], expected[step])
        assert_weights_equal(state["raw"], recorder.raw[step])
        assert state["step"] == step


def test_a_test_of_the_live_model_uses_the_average_one_of_a_checkpoint_its_weights(tmp_path):
    steps = ModelCheckpoint(
        tmp_path, "s{step}", auto_insert_metric_name=False, every_n_train_steps=6, save_top_k=-1
    )
    ema = EMA(0.7)
    module, recorder, trainer = fit_tiny(tmp_path, ema, steps)
    data = DataLoader(TensorDataset(torch.randn(2, 3), torch.randn(2, 2)), batch_size=2)
    trainer.test(module, data, verbose=False)
    trainer.test(module, data, ckpt_path=tmp_path / "s6.ckpt", verbose=False)
    saved = torch.load(tmp_path / "s6.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert_weights_equal(module.tested_with[0], ema.ema)
    assert_weights_equal(module.tested_with[1], saved)
    assert differs(saved, recorder.raw[6]) and differs(saved, ema.ema)


TINY = ["debug=fast", "callbacks=[default,ema]", "callbacks.ema.decay=0.9",
        "trainer.limit_train_batches=8", "trainer.limit_val_batches=2", "test=false",
        "logger=csv"]  # fmt: skip


def last(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_resume_restores_raw_and_average_and_translate_loads_the_average(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(make_cfg(straight, *TINY, "trainer.max_epochs=2"))
    train(make_cfg(resumed, *TINY, "trainer.max_epochs=1"))
    halfway = last(resumed)
    train(make_cfg(resumed, *TINY, "trainer.max_epochs=2", "ckpt_path=last"))

    a, b = last(straight), last(resumed)
    assert halfway["global_step"] == 8 and a["global_step"] == b["global_step"] == 16
    for ckpt in (halfway, a, b):
        state = ckpt["callbacks"]["EMA"]
        assert_weights_equal(ckpt["state_dict"], state["ema"])
        assert differs(state["ema"], state["raw"])
    for part in ("ema", "raw"):
        for k, v in a["callbacks"]["EMA"][part].items():
            assert torch.equal(v, b["callbacks"]["EMA"][part][k]), (part, k)
    assert differs(halfway["callbacks"]["EMA"]["raw"], b["callbacks"]["EMA"]["raw"])

    model = Translator.from_checkpoint(straight / "checkpoints" / "last.ckpt").model
    net = {k.removeprefix(WEIGHTS_PREFIX): v for k, v in a["state_dict"].items()}
    assert_weights_equal(model.state_dict(), net)
