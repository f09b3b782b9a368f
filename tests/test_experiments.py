"""Experiments: launchers and the Optuna search compose, presets hold their settings, a sweep
runs and is reported (failed jobs included), runs are reproducible and record what made them."""

import csv
import json
import re
import subprocess
import sys

import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import get_class
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from helpers import CONF, ROOT, make_cfg
from hydra_plugins.nmt_optuna_sweeper.optuna_sweeper import OptunaSweeper, tell
from seq2seq_nmt import __version__
from seq2seq_nmt.tools.report import main as report_main
from seq2seq_nmt.train.errors import ResumeError
from seq2seq_nmt.train.run import train

TINY = ["debug=fast", "model.emb_size=32", "model.hidden_size=32", "trainer.limit_val_batches=2"]


def hydra_cfg(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[*overrides], return_hydra_config=True)


@pytest.mark.parametrize(
    ("launcher", "cls"), [("local", "JoblibLauncher"), ("slurm", "SlurmLauncher")]
)  # fmt: skip
def test_launchers_compose_and_their_plugins_import(launcher, cls):
    cfg = hydra_cfg(f"hydra/launcher={launcher}")
    assert get_class(cfg.hydra.launcher._target_).__name__ == cls


def test_optuna_search_composes_over_the_four_hyperparameters():
    cfg = hydra_cfg("hparams_search=bleu_optuna")
    sweeper = cfg.hydra.sweeper
    cls = get_class(sweeper._target_)  # this package's plugin (hydra/sweeper: nmt_optuna)
    assert (cls.__module__, cls.__name__) == (OptunaSweeper.__module__, "OptunaSweeper")
    assert sweeper.direction == "maximize" and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert set(sweeper.params) == {
        "optimizer.lr", "model.hidden_size", "model.dropout", "teacher_forcing_ratio"
    }  # fmt: skip


# The tutorial's trainIters(..., 75000): one pair a step, drawn with replacement, teacher forcing
# drawn per pair, the loss summed over the target tokens, no clipping.
ONE_PAIR_A_STEP = {"batch_size": 1, "dataset.sampling": "replacement", "trainer.max_steps": 75000,
                   "teacher_forcing_mode": "sequence", "loss.reduction": "sum",
                   "trainer.gradient_clip_val": None}  # fmt: skip


def test_optuna_study_in_sqlite_resumes_where_the_last_search_stopped(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    def search(name: str) -> None:
        cmd = [
            sys.executable, "train.py", "hparams_search=bleu_optuna", f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=s", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / name}",
            *TINY, "trainer.limit_train_batches=3", "trainer.max_epochs=1", "test=false", "logger=csv",
        ]  # fmt: skip
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr

    search("first")
    search("second")
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert sorted(p.name for p in (tmp_path / "second").iterdir() if p.is_dir()) == ["2", "3"]
    assert OmegaConf.load(tmp_path / "second" / "optimization_results.yaml").n_trials == 4


def test_failed_and_valueless_trials_are_told_failed():
    study = optuna.create_study(direction="maximize")
    jobs = [
        JobReturn(status=JobStatus.FAILED, _return_value=ValueError("bad value")),
        JobReturn(status=JobStatus.COMPLETED, _return_value=None),
        JobReturn(status=JobStatus.COMPLETED, _return_value=float("nan")),
        JobReturn(status=JobStatus.COMPLETED, _return_value=12.5),
    ]
    failures = [e for job in jobs for e in tell(study, study.ask(), job)]
    assert [str(e) for e in failures] == ["bad value"]
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "FAIL", "COMPLETE"]
    assert study.best_value == 12.5


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("tutorial", {"dataset.max_length": 10, "dataset.prefixes": "tutorial", "optimizer.lr": 0.01,
                      "optimizer._target_": "torch.optim.SGD", "loss._target_": "seq2seq_nmt.train.losses.NLLLoss",
                      "teacher_forcing_ratio": 0.5, "model.hidden_size": 256, "model.attention": "tutorial",
                      **ONE_PAIR_A_STEP}),
        ("article", {"dataset.max_length": 12, "dataset.prefixes": "article", "optimizer._target_":
                     "torch.optim.Adagrad", "optimizer.lr": 0.01, "loss._target_": "torch.nn.CrossEntropyLoss",
                     "teacher_forcing_ratio": 0.5, "model.hidden_size": 256, "model.attention": "tutorial",
                     "dataset.corpus._target_": "seq2seq_nmt.data.corpus.ConcatCorpus", **ONE_PAIR_A_STEP}),
        ("best", {"dataset.max_length": 12, "dataset.prefixes": "article", "model.attention": "bahdanau",
                  "model.bidirectional": True, "model.bridge": True, "loss.label_smoothing": 0.1,
                  "callbacks.ema.decay": 0.998, "callbacks.ema.start_step": 500, "batch_size": 128,
                  "optimizer.lr": 0.0014, "trainer.precision": "bf16-mixed", "optimizer.fused": True}),
        ("tatoeba_de_en", {"dataset.src_lang": "de", "dataset.tgt_lang": "en", "dataset.prefixes": None,
                           "dataset.corpus._target_": "seq2seq_nmt.data.corpus.TatoebaCorpus",
                           "dataset.corpus.langs": ["de", "en"], "tokenizer.vocab_size": 2000,
                           "tokenizer._target_": "seq2seq_nmt.data.tokenizer.SentencePiece",
                           "tokenizer.normalization": "unicode", "teacher_forcing_ratio": 1.0,
                           "model.bidirectional": True, "batch_size": 128,
                           "trainer.precision": "bf16-mixed"}),
    ],
)  # fmt: skip
def test_presets_hold_the_settings_they_reproduce(tmp_path, preset, expected):
    cfg = make_cfg(tmp_path, f"experiment={preset}")
    got = {key: OmegaConf.select(cfg, key) for key in expected}
    got = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_list(v) else v
        for k, v in got.items()
    }
    assert got == expected


def test_same_seed_gives_identical_weights_and_metrics_another_seed_does_not(tmp_path):
    def run(name: str, seed: int):
        out = tmp_path / name
        overrides = [*TINY, f"seed={seed}", "trainer.deterministic=true", "trainer.limit_train_batches=10",
                     "trainer.max_epochs=2", "test=false", "logger=csv"]  # fmt: skip
        metrics = train(make_cfg(out, *overrides))
        ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        return metrics, ckpt["state_dict"]

    (m1, w1), (m2, w2), (_, w3) = run("a", 7), run("b", 7), run("c", 8)
    assert m1 == m2 and "val/bleu" in m1
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)


def test_run_directory_records_provenance_and_outcome(trained_run):
    run = json.loads((trained_run / "run.json").read_text())
    assert run["package_version"] == __version__
    assert run["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", run["git"]["commit"])
    assert "data_cache_key" in run
    outcome = json.loads((trained_run / "metrics.json").read_text())
    assert outcome["status"] == "completed" and outcome["steps"] > 0 and outcome["wall_time_s"] > 0
    assert {"val/bleu", "test/bleu"} <= set(outcome["metrics"])


def test_tensorboard_gets_heatmaps_each_validation_and_hparams_with_final_metrics(trained_run):
    events = EventAccumulator(
        str(trained_run / "tensorboard"), size_guidance={"images": 0}
    ).Reload()
    heatmaps = events.Images("val/attention/0")
    assert len(heatmaps) == len(events.Scalars("val/bleu")) >= 2  # one per validation
    assert [e.step for e in heatmaps] == sorted({e.step for e in heatmaps})
    assert heatmaps[0].width > 100 and heatmaps[0].height > 100
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = HParamsPluginData.FromString(content).session_start_info.hparams
    assert {"teacher_forcing_ratio", "optimizer/lr", "model/hidden_size"} <= set(hparams)
    best = json.loads((trained_run / "metrics.json").read_text())["metrics"]["val/bleu"]
    assert events.Scalars("hp/val_bleu")[-1].value == pytest.approx(best)


def test_ckpt_path_that_does_not_exist_is_one_clear_error(tmp_path):
    # train() itself (train.py's config check refuses it earlier): a ResumeError, one line there
    with pytest.raises(
        FileNotFoundError, match="^ckpt_path=/nowhere.ckpt: checkpoint not found$"
    ) as e:
        train(make_cfg(tmp_path, *TINY, "ckpt_path=/nowhere.ckpt"))
    assert isinstance(e.value, ResumeError)
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_sweep_runs_every_job_and_the_report_marks_failed_and_unfinished(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "train.py", "-m", *TINY, "trainer.limit_train_batches=3", "test=false",
        "trainer.max_epochs=1", "logger=csv", f"hydra.sweep.dir={sweep}", "optimizer=sgd,adagrad",
        "teacher_forcing_ratio=0.5,2.0",  # 2.0 is refused: two jobs fail
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0  # Hydra reports the failed jobs after running them all
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3"]
    # the report wrote itself although jobs failed (the sweeper raises before its end callback)
    assert "job 1 failed: teacher_forcing_ratio=2.0: a number in [0, 1]" in out.stdout
    assert (sweep / "report.csv").is_file() and (sweep / "bleu.png").is_file()
    for job in ("0", "2"):
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    # a job killed outright (status still "running") and one that never wrote a summary
    (sweep / "4" / ".hydra").mkdir(parents=True)
    (sweep / "4" / "metrics.json").write_text('{"status": "running", "wall_time_s": 1.0}')
    (sweep / "5").mkdir()

    report_main([str(sweep)])
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    status = {r["job"]: r["status"] for r in rows}
    assert status == {"0": "completed", "1": "failed", "2": "completed", "3": "failed",
                      "4": "unfinished", "5": "no summary"}  # fmt: skip
    by_job = {r["job"]: r for r in rows}
    assert by_job["0"]["optimizer"] == "sgd" and by_job["3"]["teacher_forcing_ratio"] == "2.0"
    assert int(by_job["2"]["steps"]) == 3 and by_job["2"]["val_bleu"] != ""
    assert (sweep / "bleu.png").stat().st_size > 1000 and (sweep / "curves.png").is_file()


def test_report_on_a_directory_that_is_no_sweep_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no job directories"):
        report_main([str(tmp_path)])
