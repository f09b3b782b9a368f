"""DDP on CPU: two gloo processes on the sample corpus through train.py (Lightning's launcher
under Hydra), recorded per rank by a probe callback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

PROBE = '''
import json
from pathlib import Path

import pytorch_lightning as pl


class Probe(pl.Callback):
    """Per rank: each epoch's batches (example indices), how many it trained on, every
    checkpoint this process wrote and the learning rate of every step."""

    def __init__(self, out):
        self.out, self.seen = Path(out), 0

    def _record(self, trainer, **entry):
        with (self.out / f"probe-rank{trainer.global_rank}.jsonl").open("a") as f:
            f.write(json.dumps(entry | {"world": trainer.world_size}) + "\\n")

    def setup(self, trainer, module, stage):
        io = trainer.strategy.checkpoint_io
        save = io.save_checkpoint

        def recorded(checkpoint, path, *args, **kwargs):
            self._record(trainer, saved=str(path))
            return save(checkpoint, path, *args, **kwargs)

        io.save_checkpoint = recorded

    def on_train_batch_end(self, trainer, *args):
        self.seen += 1

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self._record(trainer, lr=optimizer.param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer, module):
        batches = trainer.train_dataloader.batch_sampler.batches()
        self._record(trainer, epoch=trainer.current_epoch, seen=self.seen,
                     batches=[b.tolist() for b in batches])
        self.seen = 0
'''

FAST_DDP = [
    "debug=fast",
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "model.emb_size=32",
    "model.hidden_size=32",
    "logger=csv",
    "test=false",
]


def run_train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    (tmp_path / "ddp_probe.py").write_text(PROBE)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    }
    probe = ["+callbacks.probe._target_=ddp_probe.Probe", f"+callbacks.probe.out={tmp_path}"]
    return subprocess.run(
        [sys.executable, "train.py", *overrides, *FAST_DDP, *probe],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_ddp_ranks_train_on_distinct_batches_and_rank_zero_alone_writes(tmp_path):
    run = tmp_path / "run"
    out = run_train(tmp_path, f"hydra.run.dir={run}", "trainer.max_epochs=2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sync_dist" not in out.stdout + out.stderr  # epoch metrics logged with their reduction
    ranks = [records(tmp_path / f"probe-rank{r}.jsonl") for r in (0, 1)]
    epochs = [[e for e in rank if "epoch" in e] for rank in ranks]
    assert [len(e) for e in epochs] == [2, 2] and epochs[0][0]["world"] == 2
    for e0, e1 in zip(*epochs, strict=True):  # per epoch: rank 0's and rank 1's batches
        first, second = ({i for b in e["batches"] for i in b} for e in (e0, e1))
        assert not first & second  # distinct examples
        assert e0["seen"] == len(e0["batches"]) == len(e1["batches"]) == e1["seen"] > 0
        assert len(first | second) > 0.9 * 3601  # the sample corpus's training pairs
    assert epochs[0][0]["batches"] != epochs[0][1]["batches"]  # a new order every epoch
    tokens = json.loads((run / "metrics.json").read_text())["metrics"]["train/tgt_tokens"]
    assert (
        tokens > 2 * 3601 * 6
    )  # both ranks' target tokens over 2 epochs (7.3 a pair; one rank: half)
    saves = [[e["saved"] for e in rank if "saved" in e] for rank in ranks]
    assert saves[0] and not saves[1]  # every checkpoint written by rank 0 only
    on_disk = {str(p) for p in (run / "checkpoints").iterdir()}
    assert on_disk and on_disk <= set(saves[0])
    assert [p.name for p in run.glob("*.log")] == ["train.log"]  # one log, no rank-1 copy
    assert {p.name for p in tmp_path.iterdir()} == {
        "run",
        "ddp_probe.py",
        *(f"probe-rank{r}.jsonl" for r in (0, 1)),
    }


@pytest.mark.slow
def test_ddp_multirun_launches_each_job_once(tmp_path):
    sweep = tmp_path / "sweep"
    out = run_train(
        tmp_path, "-m", f"hydra.sweep.dir={sweep}", "trainer.max_epochs=1", "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1", "seed=1,2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert [p.name for p in (sweep / job).glob("*.log")] == ["train.log"]
    worlds = [e["world"] for r in (0, 1) for e in records(tmp_path / f"probe-rank{r}.jsonl")]
    assert worlds and set(worlds) == {2}
    epochs = [e for e in records(tmp_path / "probe-rank1.jsonl") if "epoch" in e]
    assert len(epochs) == 2  # one epoch end per job on rank 1


@pytest.mark.slow
def test_ddp_ranks_step_with_one_rate_falling_over_a_time_budget(tmp_path):
    out = run_train(tmp_path, f"hydra.run.dir={tmp_path / 'run'}", "budget.time=00:00:00:08",
                    "callbacks=[default,lr_decay]", "callbacks.lr_decay.sync_every_n_steps=3")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rates = [
        [e["lr"] for e in records(tmp_path / f"probe-rank{r}.jsonl") if "lr" in e] for r in (0, 1)
    ]
    assert rates[0] == rates[1]  # each rank's clock differs; rank 0's figure is broadcast
    assert len(set(rates[0])) > 2 and rates[0] == sorted(rates[0], reverse=True)
