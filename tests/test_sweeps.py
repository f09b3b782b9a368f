"""Sweeps a researcher can trust and read: equal work per job (budgets), Trainer arguments without
``+``, one validation at a time limit, seeds aggregated with their spread, a report that draws
itself at the end of a multirun, and a quiet console."""

import csv
import json
import logging
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import yaml
from lightning_fabric.utilities.warnings import PossibleUserWarning

from helpers import ROOT, imported, make_cfg
from seq2seq_nmt.config import ConfigError, validate
from seq2seq_nmt.console import quiet
from seq2seq_nmt.tools.average import main as average_main
from seq2seq_nmt.tools.report import report
from seq2seq_nmt.train.budget import UNITS, WorkMeter, trainer_limits
from seq2seq_nmt.train.progress import ValidationLog
from seq2seq_nmt.train.run import make_trainer, train

TINY = ["debug=fast", "model.emb_size=32", "model.hidden_size=32", "trainer.limit_val_batches=2"]
LIMITS = {"max_epochs", "max_steps", "max_time"}


def curve(run_dir: Path) -> list[dict]:
    with (run_dir / "curve.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("unit", UNITS)
def test_each_budget_unit_is_the_one_limit_on_training(tmp_path, unit):
    value = {"tokens": 5000, "steps": 7, "epochs": 2, "time": "00:00:05:00"}[unit]
    limits = trainer_limits({unit: value})
    assert set(limits) == LIMITS
    assert sum(v not in (-1, None) for v in limits.values()) == (unit != "tokens")
    trainer = make_trainer(make_cfg(tmp_path, *TINY, f"budget.{unit}={value}"))
    assert trainer.max_epochs == (2 if unit == "epochs" else -1)
    assert trainer_limits({}) == {}


def test_two_budgets_and_a_bad_time_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="^budget.tokens and budget.steps are both set"):
        validate(make_cfg(tmp_path, "budget.tokens=2e6", "budget.steps=10"))
    with pytest.raises(ConfigError, match="^budget.time='90s': DD:HH:MM:SS"):
        validate(make_cfg(tmp_path, "budget.time=90s"))


def test_trainer_arguments_are_set_without_plus(tmp_path):
    cfg = make_cfg(tmp_path, "trainer.val_check_interval=5", "trainer.limit_train_batches=3",
                   "trainer.num_sanity_val_steps=0", "trainer.accumulate_grad_batches=2")  # fmt: skip
    trainer = make_trainer(cfg)
    assert (trainer.val_check_interval, trainer.limit_train_batches) == (5, 3)
    assert (trainer.num_sanity_val_steps, trainer.accumulate_grad_batches) == (0, 2)


def test_token_budget_stops_at_the_budget_and_records_the_work(tmp_path):
    metrics = train(make_cfg(tmp_path, *TINY, "budget.tokens=8000", "trainer.val_check_interval=5",
                             "test=false", "logger=csv"))  # fmt: skip
    tokens = metrics["train/tgt_tokens"]
    assert 8000 <= tokens < 8000 + 64 * 12  # stopped within one batch (64 pairs, < 12 tokens each)
    outcome = json.loads((tmp_path / "metrics.json").read_text())
    rows = curve(tmp_path)
    assert [int(r["step"]) for r in rows][:2] == [5, 10]
    assert int(rows[-1]["step"]) == outcome["steps"]  # the stop validated the final weights
    assert int(rows[-1]["tokens"]) == tokens and float(rows[-1]["tokens_per_s"]) > 0
    assert outcome["metrics"]["val/bleu"] == max(float(r["val_bleu"]) for r in rows)
    # validations inside one epoch keep a checkpoint each (the top 2): nmt-average --last 2 works
    assert len(list((tmp_path / "checkpoints").glob("epoch000-step*-bleu*.ckpt"))) == 2
    average_main([str(tmp_path), "--last", "2", "-o", str(tmp_path / "avg.ckpt")])
    assert (tmp_path / "avg.ckpt").is_file()


def test_testing_a_checkpoint_keeps_the_runs_count_and_curve(tmp_path):
    meter, curve_log = WorkMeter(), ValidationLog(tmp_path)
    meter.tokens, meter.train_time, curve_log.rows = 500, 9.0, [{"step": 10}, {"step": 20}]
    for callback in (meter, curve_log):  # trainer.test(ckpt_path=best) restores callback states
        callback.setup(None, None, stage="test")
    meter.load_state_dict({"tokens": 300, "train_time": 5.0})
    curve_log.load_state_dict({"rows": [{"step": 10}]})
    assert (meter.tokens, meter.elapsed(), len(curve_log.rows)) == (500, 9.0, 2)
    for callback in (meter, curve_log):  # a resume restores them
        callback.setup(None, None, stage="fit")
    meter.load_state_dict({"tokens": 300, "train_time": 5.0})
    curve_log.load_state_dict({"rows": [{"step": 10}]})
    assert (meter.tokens, meter.elapsed(), len(curve_log.rows)) == (300, 5.0, 1)


class SlowFirstValidation(pl.Callback):
    """Makes the first validation of training outlast the time limit."""

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking and trainer.global_step == 2:
            time.sleep(1.5)


def test_a_time_limit_after_a_scheduled_validation_adds_no_second_one(tmp_path):
    train(make_cfg(tmp_path, *TINY, "budget.time=00:00:00:01", "trainer.val_check_interval=2",
                   "test=false", "logger=csv", "+callbacks.slow._target_=test_sweeps.SlowFirstValidation"))  # fmt: skip
    outcome = json.loads((tmp_path / "metrics.json").read_text())
    assert [int(r["step"]) for r in curve(tmp_path)] == [outcome["steps"]] == [2]


def fake_job(sweep: Path, n: int, overrides: list[str], config: dict, outcome: dict,
             bleus: list[float]) -> None:  # fmt: skip
    """A job directory as a sweep leaves it: .hydra/, metrics.json, curve.csv."""
    job = sweep / str(n)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / "metrics.json").write_text(json.dumps(outcome))
    rows = [
        f"{100 * (i + 1)},0,{1000 * (i + 1)},{10.0 * (i + 1)},{b},2.0,100.0"
        for i, b in enumerate(bleus)
    ]
    header = "step,epoch,tokens,train_time_s,val_bleu,val_loss,tokens_per_s\n"
    (job / "curve.csv").write_text(header + "\n".join(rows) + "\n")


def make_sweep(sweep: Path, steps: dict[int, int] | None = None, budget: str = "tokens") -> None:
    """2 attentions (model=default/luong) x 3 seeds; luong scores 5 BLEU more, tightly."""
    job = 0
    for model, attention, base in (("default", "bahdanau", 20.0), ("luong", "luong_general", 25.0)):
        for seed, noise in ((1, -0.2), (2, 0.0), (3, 0.2)):
            config = {"seed": seed, "model": {"attention": attention, "hidden_size": 32},
                      "budget": {"tokens": 3000 if budget == "tokens" else None,
                                 "time": "00:00:01:30" if budget == "time" else None}}  # fmt: skip
            metrics = {"val/bleu": base + noise, "test/bleu": base + noise - 1,
                       "train/tgt_tokens": 3000}  # fmt: skip
            outcome = {"status": "completed", "steps": (steps or {}).get(job, 300),
                       "wall_time_s": 40.0, "train_time_s": 30.0, "metrics": metrics}  # fmt: skip
            overrides = [f"model={model}", f"seed={seed}", r"trainer.max_time=00\:00\:01\:30"]
            fake_job(sweep, job, overrides, config, outcome, [base / 2 + noise, base + noise])
            job += 1


def test_report_aggregates_seeds_labels_by_meaning_and_marks_differences(tmp_path):
    make_sweep(tmp_path)
    text = report(tmp_path)
    rows = list(csv.DictReader((tmp_path / "settings.csv").open()))
    assert [r["attention"] for r in rows] == [
        "bahdanau",
        "luong_general",
    ]  # model=luong, by meaning
    assert rows[0]["seeds"] == "1 2 3" and rows[0]["val_bleu_per_seed"] == "19.8 20.0 20.2"
    assert float(rows[0]["val_bleu_mean"]) == pytest.approx(20.0)
    assert float(rows[1]["test_bleu_std"]) == pytest.approx(0.2)
    assert "20.00 ± 0.20 [19.80 20.00 20.20]" in text  # the table: mean ± std [per seed]
    assert "test BLEU differences beyond the seeds' spread" in text
    assert re.search(r"attention=luong_general\s+>\s+attention=bahdanau\s+\(\+5\.00\)", text)
    jobs = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [j["seed"] for j in jobs] == ["1", "2", "3"] * 2 and "max_time" not in jobs[0]
    for figure in ("curves.png", "bleu.png"):
        assert (tmp_path / figure).stat().st_size > 10_000
    assert "unequal work" not in text


def test_report_rates_differences_on_the_test_sentences_with_a_paired_bootstrap(tmp_path):
    make_sweep(tmp_path)
    refs = [f"sentence number {i} is here" for i in range(300)]
    for job in range(6):  # jobs 0-2 (bahdanau) get 40% of the sentences right, 3-5 all but 3%
        right = 0.4 if job < 3 else 0.97
        hyps = [r if (i * 7 + job) % 100 < right * 100 else "no" for i, r in enumerate(refs)]
        (tmp_path / str(job) / "test.hyp.txt").write_text("\n".join(hyps) + "\n")
        (tmp_path / str(job) / "test.ref.txt").write_text("\n".join(refs) + "\n")
    text = report(tmp_path)
    assert "sacrebleu paired bootstrap, 1000 resamples, every seed's outputs" in text
    assert re.search(
        r"attention=luong_general\s+>\s+attention=bahdanau\s+\([\d.]+ vs [\d.]+, p = 0\.00\d\)",
        text,
    )
    (tmp_path / "5" / "test.ref.txt").write_text("other references\n")  # tested on other sentences
    assert "paired bootstrap" not in report(tmp_path)


def test_report_shows_overrides_unescaped(tmp_path):
    make_sweep(tmp_path)
    (tmp_path / "5" / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["model=luong", "seed=3", r"trainer.max_time=00\:00\:02\:00"])
    )
    report(tmp_path)
    jobs = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert jobs[5]["max_time"] == "00:00:02:00" and jobs[0]["max_time"] == "00:00:01:30"


def test_report_flags_jobs_that_did_unequal_work(tmp_path):
    make_sweep(tmp_path, steps={1: 175, 4: 89}, budget="time")
    text = report(tmp_path)
    assert "unequal work: job 1 (attention=bahdanau) trained 175 steps" in text
    assert "unequal work: job 4" in text and "job 0" not in text.split("unequal work")[1]
    flags = [r["flags"] for r in csv.DictReader((tmp_path / "settings.csv").open())]
    assert flags == ["unequal work", "unequal work"]


def test_report_of_an_optuna_search_draws_optunas_importance(tmp_path):
    for n, (lr, dropout, bleu) in enumerate([(1e-3, 0.1, 10.0), (3e-3, 0.3, 14.0), (5e-4, 0.2, 8.0),
                                             (2e-3, 0.4, 12.0)]):  # fmt: skip
        metrics = {"val/bleu": bleu, "train/tgt_tokens": 3000}
        fake_job(tmp_path, n, [f"optimizer.lr={lr}", f"model.dropout={dropout}"], {"seed": 1},
                 {"status": "completed", "steps": 30, "metrics": metrics}, [bleu])  # fmt: skip
    (tmp_path / "optimization_results.yaml").write_text(
        "best_params: {optimizer.lr: 0.003}\nbest_value: 14.0\n"
    )
    text = report(tmp_path)
    assert "optuna best: optimizer.lr=0.003 -> 14.0" in text
    assert re.search(r"importance \(PED-ANOVA, val BLEU\): (lr|dropout) \d\.\d\d", text)
    assert (tmp_path / "importance.png").stat().st_size > 5_000


NOISE = re.compile(r"warn|Tip:|GPU available|LeafSpec|\x1b|\r", re.IGNORECASE)


def test_a_run_logged_to_a_file_prints_no_warnings_no_escapes_and_one_line_per_validation(tmp_path):
    log = tmp_path / "console.log"
    cmd = [
        sys.executable, "train.py", "trainer=cpu", "model.emb_size=32", "model.hidden_size=32",
        "trainer.limit_train_batches=6", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
        "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "callbacks.progress_bar.every_n_steps=4",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    with log.open("w") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=300, check=True)
    text = log.read_text()
    assert not [line for line in text.splitlines() if NOISE.search(line)], text
    assert "\r" not in text and "\x1b" not in text
    assert re.search(r"^\d\d:\d\d:\d\d config checked: trainer=cpu", text, re.M)
    assert (
        len(
            re.findall(
                r"epoch \d step \d+: val BLEU [\d.]+, val loss [\d.]+, [\d,]+ tgt tokens/s", text
            )
        )
        == 2
    )
    assert "epoch 0 step 4: train loss" in text  # the plain progress line
    assert re.search(r"result: best val BLEU [\d.]+, test BLEU [\d.]+, 12 steps", text)
    hparams = yaml.safe_load((tmp_path / "run" / "tensorboard" / "hparams.yaml").read_text())
    assert hparams["model"]["hidden_size"] == 32 and hparams["trainer"]["max_epochs"] == 2


def test_quiet_silences_the_listed_noise_and_logs_real_warnings(caplog):
    lightning = ("The 'train_dataloader' does not have many workers which may be a bottleneck. "
                 "Consider increasing the value of the `num_workers` argument")  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # not pytest's filters: only quiet() may silence
            quiet()
            warnings.warn(lightning, PossibleUserWarning, stacklevel=1)
            warnings.warn("a real problem", RuntimeWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
    assert "a real problem" in caplog.text and "many workers" not in caplog.text


def test_help_answers_without_importing_torch():
    out = subprocess.run([sys.executable, "-X", "importtime", "train.py", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and "budget.tokens" not in out.stderr
    assert "== Config ==" in out.stdout or "Powered by Hydra" in out.stdout
    modules = imported(out.stderr)
    assert "hydra" in modules and not {"torch", "pytorch_lightning"} & modules


@pytest.mark.slow
def test_a_sweep_with_seeds_writes_its_report_by_itself(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "train.py", "-m", *TINY, "model=default,luong", "seed=1,2", "budget.tokens=3000",
        "trainer.val_check_interval=10", "logger=csv", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "4 jobs, 2 settings x up to 2 seeds" in out.stdout
    rows = list(csv.DictReader((sweep / "settings.csv").open()))
    assert [(r["attention"], r["seeds"]) for r in rows] == [
        ("bahdanau", "1 2"),
        ("luong_general", "1 2"),
    ]
    assert all(len(r["test_bleu_per_seed"].split()) == 2 and r["test_bleu_std"] for r in rows)
    assert re.search(r"bahdanau\s+1,2\s+[\d.]+ ± [\d.]+ \[[\d.]+ [\d.]+\]", out.stdout)
    jobs = list(csv.DictReader((sweep / "report.csv").open()))
    assert all(3000 <= float(j["tokens"]) < 3000 + 64 * 12 for j in jobs)
    assert {j["unequal_work"] for j in jobs} == {"False"}
    assert (sweep / "curves.png").is_file() and (sweep / "bleu.png").is_file()
    hyps, refs = (
        (sweep / "0" / name).read_text().splitlines() for name in ("test.hyp.txt", "test.ref.txt")
    )
    assert len(hyps) == len(refs) == 200  # the sample corpus's test split, for the paired bootstrap
    again = subprocess.run([sys.executable, "-X", "importtime", "-m", "seq2seq_nmt.tools.report",
                            str(sweep)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "4 jobs, 2 settings x up to 2 seeds" in again.stdout  # nmt-report on its own
    assert not {"torch", "pytorch_lightning"} & imported(again.stderr)  # reading runs needs neither
