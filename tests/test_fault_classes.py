"""Fault classes, each handled in one place and tested with several of its members: text
encodings (``data.io.open_binary``), process signals (``train.signals``), a full disk at every
write (``data.io.atomic_write``), checkpoint kinds (``checkpoint.kind``), bounds on sentence
length (``data.bounds``), third-party stores (``stores.opened``), absent hardware and unknown
keys (``hardware``, ``targets``, run by ``config.validate``). See docs/reliability.md."""

import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from pytorch_lightning import Callback

from helpers import CONF, ROOT, make_cfg
from seq2seq_nmt import checkpoint as checkpoint_mod
from seq2seq_nmt.checkpoint import CheckpointError, load_checkpoint
from seq2seq_nmt.config import ConfigError, validate
from seq2seq_nmt.data import cache as cache_mod
from seq2seq_nmt.data import io as io_mod
from seq2seq_nmt.data.cache import CacheError, Settings, prepare
from seq2seq_nmt.data.corpus import SAMPLE_PATH, ParallelCorpus, TutorialCorpus
from seq2seq_nmt.data.datamodule import TranslationDataModule
from seq2seq_nmt.data.io import CorpusError
from seq2seq_nmt.data.tokenizer import SentencePiece, Words
from seq2seq_nmt.hardware import (
    ACCELERATORS,
    LAUNCHERS,
    HardwareError,
    LauncherCheck,
    check_launcher,
)
from seq2seq_nmt.stores import StoreError
from seq2seq_nmt.tools.average import main as average_main
from seq2seq_nmt.train import records as records_mod
from seq2seq_nmt.train import run as run_mod
from seq2seq_nmt.train.errors import ResumeError, StorageError
from seq2seq_nmt.train.resume import checked_resume
from seq2seq_nmt.train.run import train
from seq2seq_nmt.train.signals import Interrupted, watching
from seq2seq_nmt.translate.command import read_file
from seq2seq_nmt.translate.command import run as translate_run

SHORT = [
    "debug=fast", "model.emb_size=32", "model.hidden_size=32", "trainer.max_epochs=1",
    "trainer.limit_train_batches=6", "trainer.limit_val_batches=2", "logger=csv", "test=false",
]  # fmt: skip
CACHE_SETTINGS = Settings("tutorial", ("fr", "en"), 10, None, 0.1, 0.1, 0, (1, 1), (None, None))
PAIRS = [(f"He is tall {i}.", f"Il est très grand, élève {i}.") for i in range(60)]


def tatoeba_text(pairs=PAIRS) -> str:
    return "".join(f"{en}\t{fr}\n" for en, fr in pairs)


def run_train(run_dir: Path, *overrides: str, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train.py", f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# --- 1. text encodings: decided per file, at open ----------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "pairs", "guess"),
    [
        ("latin-1", PAIRS, "cp1252"),
        ("cp1251", [(f"He is tall {i}.", f"Он очень высокий {i}.") for i in range(60)], "cp1251"),
    ],
)
def test_a_legacy_encoded_file_is_refused_naming_the_encoding_and_reads_with_it(
    tmp_path, encoding, pairs, guess
):
    path = tmp_path / "eng-xx.txt"
    path.write_bytes(tatoeba_text(pairs).encode(encoding))
    with pytest.raises(CorpusError, match=rf"^{path}: not UTF-8: 60 of its first 60 lines .*"
                       rf"likely {guess}.*dataset\.corpus\.encoding={guess}"):  # fmt: skip
        list(TutorialCorpus(path).pairs(Counter()))
    stats = Counter()
    got = list(TutorialCorpus(path, encoding=encoding).pairs(stats))
    assert got == [(fr, en) for en, fr in pairs] and "invalid_utf8_repaired" not in stats
    with pytest.raises(CorpusError, match=f"encoding={guess}"):  # translate.py input=, alike
        read_file(path, "input")
    assert read_file(path, "input", encoding)[0] == tatoeba_text(pairs).splitlines()[0]


def test_translate_refuses_a_latin1_input_and_translates_it_with_encoding(
    tmp_path, trained_ckpt, capsys
):
    lines = "je suis très fatigué .\nil est à la maison .\nnous sommes prêts .\n"
    (tmp_path / "utf8.txt").write_text(lines, encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes(lines.encode("latin-1"))

    def translate(name: str, *overrides: str) -> str:
        capsys.readouterr()
        cfg = make_cfg(tmp_path, f"ckpt={trained_ckpt}", f"input={tmp_path / name}", *overrides,
                       config="translate")  # fmt: skip
        translate_run(cfg)
        return capsys.readouterr().out

    with pytest.raises(SystemExit) as caught:
        translate("latin1.txt")
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'latin1.txt'}: not UTF-8: 3 of its first 3 lines")
    assert "read it with encoding=cp1252" in err
    assert translate("latin1.txt", "encoding=latin-1") == translate("utf8.txt")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_named_and_reads_with_it(tmp_path, codec):
    path = tmp_path / "eng-fra.txt"
    path.write_bytes(tatoeba_text().encode(codec))
    with pytest.raises(CorpusError, match=rf"^{path}: not UTF-8: {codec} without a byte-order "
                       rf"mark .*dataset\.corpus\.encoding={codec}"):  # fmt: skip
        list(TutorialCorpus(path).pairs(Counter()))
    pairs = list(TutorialCorpus(path, encoding=codec).pairs(Counter()))
    assert pairs == [(fr, en) for en, fr in PAIRS]


@pytest.mark.parametrize("bom", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_byte_order_mark_is_dropped_at_open(tmp_path, bom):
    path = tmp_path / "eng-fra.txt"
    path.write_bytes(tatoeba_text().encode(bom))
    assert list(TutorialCorpus(path).pairs(Counter())) == [(fr, en) for en, fr in PAIRS]
    assert read_file(path, "input")[0] == f"{PAIRS[0][0]}\t{PAIRS[0][1]}"  # no '\ufeff'


@pytest.mark.parametrize("damaged", [1, 2])
def test_a_utf8_file_with_a_few_damaged_lines_is_repaired_with_a_warning(tmp_path, caplog, damaged):
    path = tmp_path / "eng-fra.txt"
    bad = "Go.\tVa à l'école.\n".encode("latin-1")
    path.write_bytes(tatoeba_text().encode() + bad * damaged)
    stats = Counter()
    with caplog.at_level(logging.WARNING):
        pairs = list(TutorialCorpus(path).pairs(stats))
    assert len(pairs) == 60 + damaged and stats["invalid_utf8_repaired"] == damaged
    assert pairs[-1] == ("Va \ufffd l'\ufffdcole.", "Go.")
    assert f"{path}: {damaged} lines with invalid UTF-8 bytes, repaired" in caplog.text


# --- 2. signals: last.ckpt, interrupted with the signal, exit 128 + N, exact resume -------------


class SendAt(Callback):
    """Sends this process the signal named ``signum`` before the training batch of ``step``."""

    def __init__(self, step: int, signum: str):
        self.step, self.signum = step, getattr(signal, signum)

    def on_train_batch_start(self, trainer, *_):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def send_at(step: int, signum: str) -> list[str]:
    """The overrides that add a ``SendAt`` callback (this module: tests/ is on the path)."""
    return [f"+callbacks.send._target_={__name__}.SendAt", f"+callbacks.send.step={step}",
            f"+callbacks.send.signum={signum}"]  # fmt: skip


def last_ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_sigterm_saves_last_ckpt_exits_143_and_resumes_exactly(tmp_path):
    straight, signalled = tmp_path / "straight", tmp_path / "signalled"
    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        )
    }
    assert run_train(straight, *SHORT).returncode == 0
    out = run_train(signalled, *SHORT, *send_at(3, "SIGTERM"), env=env)
    assert out.returncode == 128 + signal.SIGTERM, out.stderr[-2000:]
    assert metrics(signalled) | {"wall_time_s": 0} == {
        "status": "interrupted", "wall_time_s": 0, "error": "interrupted by SIGTERM",
        "signal": "SIGTERM",
    }  # fmt: skip
    assert last_ckpt(signalled)["global_step"] == 4  # the batch under way when it came
    assert run_train(signalled, *SHORT, "ckpt_path=last").returncode == 0
    a, b = last_ckpt(straight), last_ckpt(signalled)
    assert a["global_step"] == b["global_step"] == 6
    for name, weight in a["state_dict"].items():
        assert torch.equal(weight, b["state_dict"][name]), name


@pytest.mark.slow
def test_sigterm_under_ddp_stops_every_rank_at_one_batch_without_a_deadlock(tmp_path):
    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        )
    }
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    out = run_train(tmp_path, *SHORT, *ddp, *send_at(3, "SIGTERM"), env=env)  # on both ranks
    assert out.returncode == 128 + signal.SIGTERM, out.stderr[-2000:]
    assert metrics(tmp_path)["signal"] == "SIGTERM"
    assert last_ckpt(tmp_path)["global_step"] == 4


def test_sigusr1_saves_last_ckpt_and_exits_138(tmp_path):
    with pytest.raises(Interrupted) as caught:
        train(make_cfg(tmp_path, *SHORT, *send_at(2, "SIGUSR1")))
    assert caught.value.code == 128 + signal.SIGUSR1
    assert metrics(tmp_path)["signal"] == "SIGUSR1"
    assert last_ckpt(tmp_path)["global_step"] == 3


def test_a_signal_while_the_data_is_prepared_stops_at_once_recorded(tmp_path, monkeypatch):
    def build(cfg):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("not reached: the handler raises")

    monkeypatch.setattr(run_mod, "build", build)
    with pytest.raises(Interrupted) as caught:
        train(make_cfg(tmp_path, *SHORT))
    assert caught.value.code == 143
    assert metrics(tmp_path)["status"] == "interrupted" and metrics(tmp_path)["signal"] == "SIGTERM"
    with watching(), pytest.raises(Interrupted) as caught:
        os.kill(os.getpid(), signal.SIGUSR1)
    assert caught.value.code == 138


# --- 3. a full disk at every write -------------------------------------------------------------


class FullDisk:
    """A folder that ``fill()`` fills: on a small tmpfs (``tmpfs``: where this process can mount
    one, as root with the capability; skipped elsewhere), or whose atomic writes ``fill()`` makes
    fail with ENOSPC (``injected``: everywhere)."""

    def __init__(self, folder: Path, kind: str, monkeypatch):
        self.folder, self.monkeypatch, self.mounted = folder, monkeypatch, False
        folder.mkdir()
        if kind == "tmpfs":
            mount = ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)]
            if os.geteuid() != 0 or shutil.which("mount") is None:
                pytest.skip("mounting a tmpfs needs root")
            if subprocess.run(mount, capture_output=True).returncode != 0:
                pytest.skip("this process cannot mount a tmpfs (the injected case runs)")
            self.mounted = True

    def fill(self) -> None:
        if self.mounted:
            with (self.folder / "filler").open("wb") as f, pytest.raises(OSError):
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            return
        original = io_mod.atomic_write

        @contextmanager
        def full(dest, *, folder=False):
            with original(dest, folder=folder) as tmp:
                yield tmp
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        for module in (io_mod, checkpoint_mod, records_mod, cache_mod):
            self.monkeypatch.setattr(module, "atomic_write", full)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=True)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.folder.rglob("*.part"))


@pytest.fixture(params=["tmpfs", "injected"])
def disk(tmp_path, monkeypatch, request):
    d = FullDisk(tmp_path / "disk", request.param, monkeypatch)
    yield d
    d.close()


@pytest.mark.parametrize("logs_on_the_disk", [False, True])
def test_a_full_disk_at_a_checkpoint_save_leaves_no_file_and_records_failed(
    disk, monkeypatch, logs_on_the_disk
):
    log_parameters = run_mod.log_parameters

    def then_fill(*args):
        log_parameters(*args)
        disk.fill()  # after run.json and the loggers' first files, before the first checkpoint

    monkeypatch.setattr(run_mod, "log_parameters", then_fill)
    run_dir, logs = disk.folder / "run", f"logger.csv.save_dir={disk.folder.parent}"
    # the CSV logger's own writes on the full disk (tmpfs) fail first, in Lightning: one line too;
    # else the learning curve (curve.csv, written before the checkpoint at each validation)
    why = r"^(checkpoint save failed: .*\.ckpt|cannot write .*): No space left on device$"
    own = why.replace("|cannot write .*", f"|cannot write {run_dir}/curve\\.csv")
    with pytest.raises(StorageError, match=why if logs_on_the_disk else own):
        train(make_cfg(run_dir, *SHORT, *([] if logs_on_the_disk else [logs])))
    assert not list((run_dir / "checkpoints").glob("*.ckpt")) and disk.leftovers() == []
    outcome = metrics(run_dir)
    assert outcome["status"] == "failed" and "No space left on device" in outcome["error"]


def test_a_full_disk_at_the_run_records_is_one_line_and_never_leaves_running(disk, monkeypatch):
    run_dir = disk.folder / "run"
    build = run_mod.build
    monkeypatch.setattr(run_mod, "build", lambda cfg: disk.fill() or build(cfg))
    with pytest.raises(StorageError, match=rf"^cannot write {run_dir}/run.json: No space left"):
        train(make_cfg(run_dir, *SHORT))  # the failure is recorded in place on the full disk
    assert metrics(run_dir)["status"] == "failed" and "run.json" in metrics(run_dir)["error"]
    fresh = disk.folder / "fresh"
    with pytest.raises(StorageError, match=rf"^cannot write {fresh}/metrics.json: No space"):
        train(make_cfg(fresh, *SHORT))  # a new run's first record, no room at all: one line
    assert not (fresh / "metrics.json").exists() and disk.leftovers() == []


def test_a_full_disk_at_the_cache_is_one_line_and_leaves_no_entry(disk):
    disk.fill()
    with pytest.raises(CacheError, match="^cannot write the preprocessed data to .*: No space"):
        prepare(TutorialCorpus(SAMPLE_PATH), CACHE_SETTINGS, disk.folder / "cache")
    assert [p.suffix for p in (disk.folder / "cache").iterdir()] == [".lock"]


def test_a_full_disk_at_the_averaged_checkpoint_and_the_translations(disk, trained_ckpt, capsys):
    disk.fill()
    output = disk.folder / "avg.ckpt"
    with pytest.raises(SystemExit) as caught:
        average_main([str(trained_ckpt), "--output", str(output)])
    assert caught.value.code == 2 and not output.exists()
    assert capsys.readouterr().err == f"error: cannot write {output}: No space left on device\n"
    output = disk.folder / "out.txt"
    cfg = make_cfg(disk.folder, f"ckpt={trained_ckpt}", "text=je suis grand .", f"output={output}",
                   config="translate")  # fmt: skip
    with pytest.raises(SystemExit) as caught:
        translate_run(cfg)
    assert caught.value.code == 2 and not output.exists() and disk.leftovers() == []
    assert capsys.readouterr().err == f"error: cannot write {output}: No space left on device\n"


# --- 4. checkpoint kinds: training, weights-only, not a checkpoint ------------------------------


def weights_only(trained_ckpt: Path, folder: Path) -> dict[str, Path]:
    """An averaged checkpoint, and one saved the way save_weights_only does (no loop states)."""
    averaged = folder / "avg.ckpt"
    average_main([str(trained_ckpt), "--output", str(averaged)])
    ckpt = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    for key in ("optimizer_states", "loops", "lr_schedulers", "callbacks"):
        ckpt.pop(key, None)
    torch.save(ckpt, folder / "weights.ckpt")
    return {"averaged": averaged, "weights": folder / "weights.ckpt"}


@pytest.mark.parametrize(("name", "said"), [
    ("averaged", "a weights-only checkpoint (averaged from 1)"),
    ("weights", "a weights-only checkpoint"),
])  # fmt: skip
def test_resume_from_a_weights_only_checkpoint_says_what_it_got_and_needs(
    tmp_path, trained_ckpt, name, said
):
    path = weights_only(trained_ckpt, tmp_path)[name]
    assert checkpoint_mod.kind(load_checkpoint(path)) == checkpoint_mod.WEIGHTS
    with pytest.raises(ResumeError, match=rf"^ckpt_path={path}: {re.escape(said)}, it translates "
                       r"but does not resume; resuming needs a training checkpoint"):  # fmt: skip
        checked_resume(str(path), None, last=False)
    assert checkpoint_mod.kind(load_checkpoint(trained_ckpt)) == checkpoint_mod.TRAINING


@pytest.mark.parametrize(("content", "why"), [
    (b"not a checkpoint\n", "neither a zip archive nor a pickle"),
    (b"", "an empty file"),
])  # fmt: skip
def test_a_file_that_is_not_a_checkpoint_is_said_so_by_every_command(tmp_path, content, why):
    path = tmp_path / "x.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"^{path}: not a checkpoint \({why}\)$"):
        load_checkpoint(path)  # translate.py, the ensemble and average
    with pytest.raises(ResumeError, match=rf"^ckpt_path={path}: is not a checkpoint \({why}\)$"):
        checked_resume(str(path), None, last=False)


def test_average_refuses_two_runs_and_names_what_it_leaves_out(tmp_path, trained_ckpt, capsys):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    ckpt = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    torch.save(ckpt, folder / "a.ckpt")
    torch.save(ckpt, folder / "last.ckpt")  # the same step of the same run: left out, named
    torch.save(ckpt | {"nmt": ckpt["nmt"] | {"run": "another"}}, folder / "b.ckpt")
    with pytest.raises(SystemExit) as caught:
        average_main([str(folder), "--output", str(tmp_path / "avg.ckpt")])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and f"left out {folder / 'last.ckpt'}: step" in err
    assert "come from different training runs" in err and not (tmp_path / "avg.ckpt").exists()
    (folder / "b.ckpt").unlink()
    average_main([str(folder), "--output", str(tmp_path / "avg.ckpt")])
    mode = (tmp_path / "avg.ckpt").stat().st_mode & 0o777
    assert mode == trained_ckpt.stat().st_mode & 0o777  # the permissions of a checkpoint


# --- 5. bounds: a sentence length ceiling in tokens, whatever max_length ------------------------


@pytest.mark.parametrize(("tokenizer", "long_pair"), [
    ("words", ("mot " * 3000, "word " * 3000)),  # 3,000 words
    ("sentencepiece", ("jesuisgrand" * 800, "iamtall" * 1200)),  # one "word", many pieces
])  # fmt: skip
def test_pairs_longer_than_the_ceiling_are_dropped_in_every_split_with_a_warning(
    tmp_path, caplog, tokenizer, long_pair
):
    pairs = [(f"je suis grand {i} .", f"i am tall {i} .") for i in range(400)] + [long_pair] * 40
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("".join(s + "\n" for s, _ in pairs))
    tgt.write_text("".join(t + "\n" for _, t in pairs))
    tok = Words() if tokenizer == "words" else SentencePiece(vocab_size=60, byte_fallback=False)
    dm = TranslationDataModule(
        ParallelCorpus(src, tgt), max_length=None, tokenizer=tok, normalization="unicode",
        val_size=0.2, test_size=0.2, max_sentence_tokens=256,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert all(max(ds.lengths(), default=0) <= 256 for ds in dm.datasets.values())
    assert sum(len(ds) for ds in dm.datasets.values()) == 400
    assert "longer than dataset.max_sentence_tokens=256 tokens" in caplog.text
    assert all(len(src) <= 256 for name in dm.datasets for src, _, _ in dm.datasets[name])


def test_the_ceiling_is_a_checked_setting(tmp_path):
    for bad in ("0", "null", "abc"):
        with pytest.raises(ConfigError, match="^dataset.max_sentence_tokens="):
            validate(make_cfg(tmp_path, f"dataset.max_sentence_tokens={bad}"))


# --- 6. third-party stores: one line naming the store, exit 2, before any training ---------------


@pytest.mark.parametrize(
    "storage", ["sqlite:///{tmp}/optuna.db", "sqlite:///{tmp}/missing/optuna.db", "nosuchdb://x"]
)
def test_an_optuna_storage_that_does_not_open_is_one_line_exit_2(tmp_path, capsys, storage):
    optuna = pytest.importorskip("optuna")
    from hydra_plugins.nmt_optuna_sweeper.optuna_sweeper import OptunaSweeper

    (tmp_path / "optuna.db").write_text("not a database\n")
    storage = storage.format(tmp=tmp_path)
    sweeper = OptunaSweeper("maximize", "s", storage, 1, 1, {"seed": 0}, None)
    with pytest.raises(SystemExit) as caught:
        sweeper.open_study(optuna)  # before the sweep asks for any trial
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: hydra.sweeper.storage={storage}: cannot open it (")
    assert "Traceback" not in err and err.count("\n") == 1
    if storage.endswith("/optuna.db") and "missing" not in storage:
        assert "file is not a database" in err


def test_an_mlflow_store_that_is_not_a_database_is_one_line_before_the_data(tmp_path):
    pytest.importorskip("mlflow")
    from seq2seq_nmt.train.loggers import check_available

    store = tmp_path / "mlflow.db"
    store.write_text("not a database\n")
    cfg = make_cfg(tmp_path, "logger=mlflow", f"logger.mlflow.tracking_uri=sqlite:///{store}")
    with pytest.raises(StoreError, match=rf"^logger.mlflow.tracking_uri=sqlite:///{store}: "
                       r"cannot open it \(DatabaseError: .*file is not a database\)$"):  # fmt: skip
        check_available(cfg.logger)


# --- 7. absent hardware and unknown keys: the config check, before any data is read --------------


@pytest.mark.parametrize("overrides", [
    ["trainer=gpu"], ["trainer=ddp", "trainer.accelerator=gpu"], ["trainer.accelerator=cuda"],
])  # fmt: skip
def test_gpus_asked_for_on_a_machine_without_one_are_refused(tmp_path, monkeypatch, overrides):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match=r"^trainer.accelerator=(gpu|cuda): no CUDA GPU on this "
                       r"machine; use trainer=cpu$"):  # fmt: skip
        validate(make_cfg(tmp_path, *overrides))


@pytest.mark.parametrize("accelerator", sorted(ACCELERATORS))
def test_every_accelerator_without_its_devices_is_refused(tmp_path, monkeypatch, accelerator):
    monkeypatch.setattr(ACCELERATORS[accelerator], "count", lambda: 0)
    with pytest.raises(ConfigError, match=rf"^trainer.accelerator={accelerator}: no "):
        validate(make_cfg(tmp_path, f"trainer.accelerator={accelerator}"))


def test_more_gpus_than_the_machine_has_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"^trainer.devices=2: this machine has 1 CUDA GPU"):
        validate(make_cfg(tmp_path, "trainer=gpu", "trainer.devices=2"))


@pytest.mark.parametrize("target", sorted(LAUNCHERS))
def test_every_launcher_without_its_system_is_refused(tmp_path, monkeypatch, target):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, srun, ...
    with pytest.raises(HardwareError, match="not found on PATH"):
        check_launcher(OmegaConf.create({"launcher": {"_target_": target}}))


def test_the_slurm_launcher_without_slurm_is_one_line_exit_2_before_any_job(
    tmp_path, monkeypatch, capsys
):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    monkeypatch.setenv("PATH", str(tmp_path))
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm"], return_hydra_config=True)
    with pytest.raises(SystemExit) as caught:
        LauncherCheck().on_multirun_start(cfg)  # Hydra calls it before launching any job
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "error: hydra/launcher=slurm: no SLURM here (sbatch, srun not found on PATH)\n"
    )


@pytest.mark.parametrize(("override", "target"), [
    ("+model.foo=1", "seq2seq_nmt.model.Seq2Seq"),
    ("+trainer.max_epoch=3", "pytorch_lightning.Trainer"),
    ("+dataset.corpus.encodings=latin-1", "seq2seq_nmt.data.corpus.SampleCorpus"),
    ("+optimizer.momentum=0.9", "torch.optim.Adam"),
    ("+callbacks.step_seed.sead=1", "seq2seq_nmt.train.callbacks.StepSeed"),
])  # fmt: skip
def test_a_key_its_target_does_not_take_is_refused_naming_it(tmp_path, override, target):
    key = override.lstrip("+").split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}=.+: not an option of {target} \("):
        validate(make_cfg(tmp_path, override))


def test_metrics_json_keeps_its_space_reserved_and_stays_strict_json(tmp_path):
    records_mod.record_outcome(tmp_path, "running", 0.0)
    text = (tmp_path / "metrics.json").read_text()
    assert len(text) == records_mod.RESERVE and json.loads(text)["status"] == "running"
