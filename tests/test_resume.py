"""Exact resume: a run SIGKILLed mid-epoch and resumed with ``ckpt_path=last`` ends with the
weights of the same run left alone (data order, optimizer, teacher forcing and dropout draws)."""

import os
import signal
import subprocess
import sys

import pytest
import torch

from helpers import ROOT

EPOCHS, BATCHES, CKPT_EVERY, KILL_AT = 2, 20, 5, 27  # the kill is mid-epoch 2
TINY = [
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "model.emb_size=32",
    "model.hidden_size=32",
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.limit_train_batches={BATCHES}",
    f"callbacks.step_checkpoint.every_n_train_steps={CKPT_EVERY}",
    "trainer.limit_val_batches=2",
    "test=false",
    "logger=csv",
]
KILLER = f"""
import os, signal
import pytorch_lightning as pl

class KillAt(pl.Callback):
    def on_train_batch_start(self, trainer, *_):
        if trainer.global_step == {KILL_AT}:
            os.kill(os.getpid(), signal.SIGKILL)
"""


def train(run_dir, *overrides, env=None) -> subprocess.Popen:
    """``python train.py`` in ``run_dir`` (one thread, so every run sums in the same order)."""
    cmd = [sys.executable, "train.py", *TINY, f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def finish(proc: subprocess.Popen) -> int:
    _, err = proc.communicate(timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"training failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return proc.returncode


def last(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path):
    (tmp_path / "killer.py").write_text(KILLER)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    kill = ["+callbacks.kill._target_=killer.KillAt"]
    procs = [train(straight), train(killed, *kill, env={"PYTHONPATH": str(tmp_path)})]
    assert [finish(p) for p in procs] == [0, -signal.SIGKILL]

    saved = last(killed)  # the step checkpoint the killed run left behind
    assert saved["global_step"] == KILL_AT // CKPT_EVERY * CKPT_EVERY
    loader = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader == {"epoch": 1, "consumed": saved["global_step"] - BATCHES}  # mid-epoch 2

    assert finish(train(killed, "ckpt_path=last")) == 0
    a, b = last(straight), last(killed)
    assert a["global_step"] == b["global_step"] == EPOCHS * BATCHES
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, weight in a["state_dict"].items():
        assert torch.equal(weight, b["state_dict"][name]), name
    clocked = ("WorkMeter", "ValidationLog")  # their times and tokens/s follow the clock
    same = [{k: v for k, v in c["callbacks"].items() if k not in clocked} for c in (a, b)]
    assert same[0] and str(same[0]) == str(same[1]).replace(str(killed), str(straight))
    # same best val/bleu and checkpoint scores; the same tokens and learning curve
    assert a["callbacks"]["WorkMeter"]["tokens"] == b["callbacks"]["WorkMeter"]["tokens"] > 0
    curves = [[{k: r[k] for k in ("step", "tokens", "val_bleu")} for r in c["callbacks"]["ValidationLog"]["rows"]]
              for c in (a, b)]  # fmt: skip
    assert curves[0] == curves[1] and len(curves[0]) == EPOCHS
