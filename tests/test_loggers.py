"""Loggers: the CSV log survives a resume; MLflow (a local store) and W&B (offline) get the
metrics and the parameters; a tracker that is not installed is one line before any data is read."""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import ROOT, make_cfg
from seq2seq_nmt.config import ConfigError
from seq2seq_nmt.train.loggers import CSVLogger, check_available
from seq2seq_nmt.train.run import train

TINY = ["debug=fast", "model.emb_size=32", "model.hidden_size=32", "trainer.max_epochs=1"]
LIMITS = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=2", "test=false"]


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_resumed_run_appends_to_metrics_csv_instead_of_deleting_it(tmp_path):
    train(make_cfg(tmp_path, *TINY, *LIMITS, "logger=csv"))
    first = csv_rows(tmp_path)
    assert {r["epoch"] for r in first if r["epoch"]} == {"0"}
    train(
        make_cfg(tmp_path, *TINY, *LIMITS, "logger=csv", "trainer.max_epochs=2", "ckpt_path=last")
    )
    rows = csv_rows(tmp_path)
    assert rows[: len(first)] == first  # the first run's rows, untouched
    assert {r["epoch"] for r in rows if r["epoch"]} == {"0", "1"}
    assert {r["epoch"] for r in rows if r.get("val/bleu")} == {"0", "1"}  # a validation each
    assert [int(r["step"]) for r in rows] == sorted(int(r["step"]) for r in rows)


def test_csv_logger_config_is_the_appending_one(tmp_path):
    (logger,) = [instantiate(c) for c in make_cfg(tmp_path, "logger=csv").logger.values()]
    assert isinstance(logger, CSVLogger)


def test_tensorboard_and_mlflow_together_log_metrics_and_params_to_a_local_store(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    # MLflow first: samples and heatmaps still reach TensorBoard, wherever it is in the list
    overrides = [*TINY, *LIMITS, "trainer.log_every_n_steps=1", "logger=[mlflow,tensorboard]"]
    train(make_cfg(run_dir, *overrides, f"logger.mlflow.tracking_uri={uri}"))
    tags = EventAccumulator(str(run_dir / "tensorboard")).Reload().Tags()
    assert "val/samples/text_summary" in tags["tensors"] and "val/attention/0" in tags["images"]
    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("seq2seq-nmt").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["run_dir"] == str(run_dir)
    assert {"train/loss", "val/loss", "val/bleu", "hp/val_bleu"} <= set(run.data.metrics)
    params = run.data.params
    assert params["model/hidden_size"] == "32" and params["optimizer/lr"] == "0.001"
    assert params["dataset/_target_"].endswith("TranslationDataModule")
    assert not any(k.startswith(("paths/", "logger/", "callbacks/")) for k in params)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 1 and all(m.step <= 3 for m in history)


def test_mlflow_and_wandb_configs_default_to_local_offline_stores(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = make_cfg(tmp_path, "logger=[mlflow,wandb]")
    assert cfg.logger.mlflow.tracking_uri == f"sqlite:///{ROOT}/outputs/mlflow.db"
    assert cfg.logger.mlflow.tags.run_dir == str(tmp_path)
    assert cfg.logger.wandb.offline is True and cfg.logger.wandb.save_dir == str(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert make_cfg(tmp_path, "logger=mlflow").logger.mlflow.tracking_uri == "http://127.0.0.1:5000"


@pytest.mark.parametrize("tracker", ["mlflow", "wandb"])
def test_a_tracker_that_is_not_installed_is_named_with_its_extra(tmp_path, monkeypatch, tracker):
    monkeypatch.setitem(sys.modules, tracker, None)  # what find_spec sees for a missing package
    cfg = make_cfg(tmp_path, f"logger=[tensorboard,{tracker}]")
    message = f"logger={tracker} needs the {tracker} package: pip install -e '.[tracking]'"
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        check_available(cfg.logger)


def test_a_missing_tracker_via_train_is_one_line_exit_2_before_any_data_is_read(tmp_path):
    hide = "import runpy, sys; sys.modules['wandb'] = None; sys.argv[0] = 'train.py'; "
    run = hide + "runpy.run_path('train.py', run_name='__main__')"
    cmd = [sys.executable, "-c", run, f"hydra.run.dir={tmp_path}", *TINY, "logger=wandb"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: logger=wandb needs the wandb package: pip install -e '.[tracking]' "
        "(or pip install wandb)"
    ]
    assert "loaded" not in out.stdout  # refused before the data was prepared


@pytest.mark.slow
def test_wandb_offline_run_lands_in_the_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(make_cfg(tmp_path, *TINY, *LIMITS, "logger=[tensorboard,wandb]"))
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(run.glob("run-*.wandb"))
