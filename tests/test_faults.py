"""The fault suite: bad config, corpus files that are not text, storage that cannot be written,
checkpoints that do not land, divergence. Each case is one line on stderr and exit status 2 from
``train.py`` (or the exception behind it), or a documented handled path (docs/reliability.md)."""

import bz2
import errno
import gzip
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.strategies import SingleDeviceStrategy

from helpers import ROOT, imported, make_cfg, not_imports
from seq2seq_nmt.checkpoint import CHECKPOINT_KEY
from seq2seq_nmt.config import ConfigError, validate
from seq2seq_nmt.data import cache as cache_mod
from seq2seq_nmt.data.cache import CacheError, Settings, prepare
from seq2seq_nmt.data.corpus import SAMPLE_PATH, EuroparlCorpus, TutorialCorpus
from seq2seq_nmt.data.download import CorpusError, locate
from seq2seq_nmt.train.callbacks import DivergenceGuard
from seq2seq_nmt.train.checks import check_output_folders, verify_checkpoint
from seq2seq_nmt.train.errors import DivergenceError, ResumeError, StorageError
from seq2seq_nmt.train.records import write_json
from seq2seq_nmt.train.run import train

TINY = ["debug=fast", "model.emb_size=32", "model.hidden_size=32", "trainer.max_epochs=1"]
LIMITS = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=2", "logger=csv"]
SHORT = [*TINY, *LIMITS]
CACHE_SETTINGS = Settings("tutorial", ("fr", "en"), 10, None, 0.1, 0.1, 0, (1, 1), (None, None))


def run_train(run_dir: Path, *overrides: str, python: tuple = ()) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *python, "train.py", f"hydra.run.dir={run_dir}", *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def error_lines(out: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in out.stderr, out.stderr
    return [line for line in out.stderr.splitlines() if line.startswith("error:")]


def strict_json(path: Path) -> dict:
    def refuse(name: str):
        raise ValueError(f"{path}: bare {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def checkpoint_weights_finite(folder: Path) -> bool:
    ckpts = [torch.load(p, map_location="cpu", weights_only=True) for p in folder.glob("*.ckpt")]
    return all(bool(torch.isfinite(t).all()) for c in ckpts for t in c["state_dict"].values())


# --- config: checked before any data is read ---------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.val_size=-0.1", "dataset.val_size=-0.1: a fraction in [0, 1) or a non-negative integer count"),
        ("model.cell=rnn", "model.cell='rnn': one of gru, lstm"),
        ("batch_size=0", "batch_size=0: a positive integer"),
        ("dataset=base", "dataset.corpus=???: must be set"),  # the neutral base has no corpus
        ("+model.foo=1", "model.foo=1: not an option of seq2seq_nmt.model.Seq2Seq (it takes attention, bidirectional, bridge, cell, compile, deep_output, dropout, emb_size, hidden_size, input_feeding, max_length, num_layers, ...)"),
    ],
)  # fmt: skip
def test_bad_config_value_is_one_line_and_exit_2_before_any_data_is_read(
    tmp_path, override, message
):
    out = run_train(tmp_path, *TINY, override, python=("-X", "importtime"))
    assert out.returncode == 2
    assert not_imports(out.stderr) == [f"error: {message}"]
    if not override.startswith("+"):  # a bad value: reported before Lightning loads
        assert "pytorch_lightning" not in imported(out.stderr)
    assert out.stdout == ""  # no preprocessing, no training: nothing logged
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "run.json").exists()
    assert strict_json(tmp_path / "metrics.json")["status"] == "failed"


@pytest.mark.parametrize(
    "override",
    [
        "dataset.val_size=1.5", "dataset.val_size=abc", "dataset.test_size=-3", "model.hidden_size=-1",
        "model.emb_size=0", "model.num_layers=0", "model.dropout=1.5", "teacher_forcing_ratio=2.0",
        "optimizer.lr=-1", "optimizer.lr=0", "trainer.gradient_clip_val=0", "trainer.max_epochs=0",
        "dataset.max_length=1", "dataset.src_lang=de-en", "dataset.normalization=nfc",
        "dataset.prefixes=some", "dataset.prefixes=[a,1]", "model.attention=general",
        "loss.label_smoothing=-0.1", "model.bidirectional=maybe", "++teacher_forcing_mode=half",
        "++model.tie_embeddings=1", "++dataset.sampling=random", "callbacks.divergence_guard.patience=0",
        "dataset.max_tokens=0", "dataset.num_workers=-1", "seed=abc", "ckpt_path=/nowhere.ckpt",
        "tokenizer=sentencepiece tokenizer.model_type=wordpiece", "callbacks=ema callbacks.ema.decay=1",
        "callbacks=ema callbacks.ema.every_n_steps=0", "callbacks=ema callbacks.ema.start_step=-1",
        "+dataset.corpus.encoding=klingon", "dataset.max_sentence_tokens=0",
    ],
)  # fmt: skip
def test_every_constrained_key_refuses_a_bad_value_naming_key_and_value(tmp_path, override):
    key = override.split()[-1].lstrip("+").split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key}=.+: "):
        validate(make_cfg(tmp_path, *override.split()))


@pytest.mark.parametrize(
    "overrides",
    [
        [], ["experiment=tutorial"], ["experiment=best"], ["loss=nll"],
        ["dataset.val_size=200", "dataset.test_size=0", "dataset.max_length=null"],
        ["dataset.prefixes=[je suis,il est]", "trainer.gradient_clip_val=null", "model.cell=lstm"],
        ["trainer.max_epochs=-1", "++model.deep_output=true", "++dataset.sampling=replacement"],
    ],
)  # fmt: skip
def test_good_configs_and_the_presets_pass(tmp_path, overrides):
    validate(make_cfg(tmp_path, *overrides))


# --- empty splits: warnings, not crashes -------------------------------------------------------


def test_empty_test_split_skips_testing_with_a_warning(tmp_path, caplog):
    metrics = train(make_cfg(tmp_path, *SHORT, "dataset.test_size=0"))
    assert "val/bleu" in metrics and not any(k.startswith("test/") for k in metrics)
    assert "the test split is empty" in caplog.text
    assert strict_json(tmp_path / "metrics.json")["status"] == "completed"


def test_empty_val_split_skips_validation_keeps_last_and_still_tests(tmp_path, caplog):
    metrics = train(make_cfg(tmp_path, *SHORT, "dataset.val_size=0"))
    assert "test/bleu" in metrics and not any(k.startswith("val/") for k in metrics)
    assert "the validation split is empty" in caplog.text
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.ckpt"]


def test_empty_val_split_with_a_scheduler_on_val_bleu_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="validation split is empty: the scheduler needs"):
        train(make_cfg(tmp_path, *SHORT, "dataset.val_size=0", "scheduler=plateau"))


# --- divergence -------------------------------------------------------------------------------


def test_divergence_stops_the_run_status_diverged_and_no_nonfinite_checkpoint(tmp_path):
    out = run_train(
        tmp_path, *TINY, "optimizer=sgd", "optimizer.lr=1e38", "trainer.gradient_clip_val=null"
    )
    assert out.returncode == 2
    (line,) = error_lines(out)
    assert line.startswith("error: training diverged: loss ") and "checkpoint" in line
    summary = strict_json(tmp_path / "metrics.json")
    assert summary["status"] == "diverged" and "diverged" in summary["error"]
    assert checkpoint_weights_finite(tmp_path / "checkpoints")  # none, or only finite ones


def test_loss_above_the_bound_for_patience_steps_is_divergence(tmp_path):
    guard = ["callbacks.divergence_guard.max_loss=0.01", "callbacks.divergence_guard.patience=2",
             "callbacks.divergence_guard.every_n_steps=1"]  # fmt: skip
    with pytest.raises(DivergenceError, match="loss above 0.01 for 2 steps up to step 2"):
        train(make_cfg(tmp_path, *SHORT, *guard))
    assert strict_json(tmp_path / "metrics.json")["status"] == "diverged"


class PoisonAt(Callback):
    """Turns a weight non-finite after training step ``step`` (test double for divergence)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))


def test_nonfinite_weights_are_never_saved_the_last_finite_checkpoint_stays(tmp_path):
    overrides = [*SHORT, "callbacks.step_checkpoint.every_n_train_steps=1", "+callbacks.poison._target_=test_faults.PoisonAt", "+callbacks.poison.step=2"]  # fmt: skip
    with pytest.raises(DivergenceError, match="non-finite weights .* at step 2, not saved"):
        train(make_cfg(tmp_path, *overrides))
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 1 and checkpoint_weights_finite(tmp_path / "checkpoints")


def test_guard_refuses_any_checkpoint_with_nonfinite_weights():
    trainer = type("T", (), {"global_step": 7, "checkpoint_callback": None})()
    state = {"state_dict": {"w": torch.tensor([1.0, float("inf")]), "n": torch.tensor([3])}}
    with pytest.raises(DivergenceError, match=r"non-finite weights \(w\) at step 7"):
        DivergenceGuard().on_save_checkpoint(trainer, None, state)


def test_run_files_are_strict_json_nonfinite_floats_become_null(tmp_path):
    write_json(tmp_path / "m.json", {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": 2}})
    assert strict_json(tmp_path / "m.json") == {"a": None, "b": [None, 1.5], "c": {"d": 2}}


# --- storage: writable at start, each checkpoint verified --------------------------------------


def test_checkpoint_folder_that_cannot_be_created_is_one_line_exit_2(tmp_path):
    (tmp_path / "checkpoints").write_text("a file where the folder should be")
    out = run_train(tmp_path, *TINY)
    assert out.returncode == 2
    assert error_lines(out) == [f"error: cannot write to {tmp_path / 'checkpoints'}: it is not a folder"]  # fmt: skip
    assert "loaded" not in out.stdout  # refused before any data was read


def deny_creating_files_in(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``os.open`` refuse, as the kernel does for a user without write permission, to create
    a file in ``folder`` (``O_CREAT`` of a path in it, or an ``O_TMPFILE`` in it): root's writes
    ignore the permission bits, so as root the test injects the error the bits would give."""
    real_open = os.open
    tmpfile = getattr(os, "O_TMPFILE", 0)

    def open_(path, flags, *args, **kwargs):
        target = Path(os.fsdecode(path))
        creates = (tmpfile and flags & tmpfile == tmpfile and target == folder) or (
            flags & os.O_CREAT and target.parent == folder
        )
        if creates:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)


@pytest.fixture
def read_only_folder(tmp_path, monkeypatch) -> Iterator[Path]:
    """A folder without write permission (mode 0o500). As root, whose writes the bits do not
    block, creating a file in it fails with the same PermissionError (``deny_creating_files_in``);
    on teardown the folder must still be empty: nothing was written."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root
            deny_creating_files_in(folder, monkeypatch)
        yield folder
        assert not any(folder.iterdir()), "something was written in the read-only folder"
    finally:
        folder.chmod(0o700)


def test_read_only_checkpoint_folder_is_refused(tmp_path, read_only_folder):
    folder = read_only_folder
    with pytest.raises(StorageError, match=f"cannot write to {folder}: Permission denied"):
        check_output_folders([tmp_path, folder])


def _write_nothing(self, checkpoint, filepath, storage_options=None):
    """What Lightning's atomic save does when it swallows a PermissionError."""


def _write_garbage(self, checkpoint, filepath, storage_options=None):
    Path(filepath).parent.mkdir(parents=True, exist_ok=True)
    Path(filepath).write_bytes(b"not a checkpoint")


def _write_truncated(self, checkpoint, filepath, storage_options=None):
    Path(filepath).parent.mkdir(parents=True, exist_ok=True)
    Path(filepath).write_bytes(b"PK\x03\x04" + b"\0" * 60)  # a zip archive cut short


@pytest.mark.parametrize(
    ("save", "problem"),
    [
        (_write_nothing, "was not written"),
        (_write_garbage, "is not a checkpoint"),
        (_write_truncated, "does not load"),
    ],
)
def test_a_checkpoint_that_did_not_land_stops_the_run(tmp_path, monkeypatch, save, problem):
    monkeypatch.setattr(SingleDeviceStrategy, "save_checkpoint", save)
    with pytest.raises(StorageError, match=f"checkpoint save failed: .*/checkpoints/.* {problem}"):
        train(make_cfg(tmp_path, *SHORT, "test=false"))
    assert strict_json(tmp_path / "metrics.json")["status"] == "failed"


# --- environment: the preprocessed-data cache -------------------------------------------------

CACHE_WHY = "(dataset.cache_dir, preprocessed data)"


@pytest.mark.parametrize(
    ("overrides", "folder", "why"),
    [
        (["dataset.cache_dir={file}"], "{file}", "it is not a folder"),
        (["paths.cache_dir={file}", "dataset.cache_dir=${{paths.cache_dir}}/preprocessed"],
         "{file}/preprocessed", "Not a directory"),
    ],
)  # fmt: skip
def test_cache_path_that_is_a_file_is_one_line_exit_2(tmp_path, overrides, folder, why):
    file = tmp_path / "cache"
    file.write_text("a file where the cache folder should be")
    run_dir = tmp_path / "run"
    out = run_train(run_dir, *TINY, *(o.format(file=file) for o in overrides))
    assert out.returncode == 2
    expected = f"error: cannot write to {folder.format(file=file)} {CACHE_WHY}: {why}"
    assert error_lines(out) == [expected]
    assert "preprocessing" not in out.stdout + out.stderr  # refused before it
    assert strict_json(run_dir / "metrics.json")["status"] == "failed"


def test_download_cache_that_is_a_file_is_one_line_naming_it(tmp_path):
    file, data = tmp_path / "cache", tmp_path / "data"
    file.write_text("a file where the cache folder should be")
    data.mkdir()
    overrides = ["dataset=tutorial", f"paths.cache_dir={file}", f"paths.data_dir={data}"]
    out = run_train(tmp_path / "run", *TINY, *overrides)
    assert out.returncode == 2
    assert error_lines(out) == [
        f"error: eng-fra.txt not found in {data}/tutorial or {file}/tutorial, and it cannot be "
        f"downloaded: cannot write to {file}/tutorial (the download cache, under "
        f"paths.cache_dir): Not a directory; fix that, or put eng-fra.txt in {data}/tutorial"
    ]


def test_read_only_cache_folder_is_refused_naming_it(read_only_folder):
    folder = read_only_folder
    corpus = TutorialCorpus(SAMPLE_PATH)
    with pytest.raises(CacheError, match=f"^cannot write to {folder} .*: Permission denied$"):
        prepare(corpus, CACHE_SETTINGS, folder)


def test_a_failed_cache_write_is_one_line_naming_the_entry(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_mod, "build", disk_full)
    with pytest.raises(
        CacheError, match="^cannot write the preprocessed data to .*: No space left"
    ):
        prepare(TutorialCorpus(SAMPLE_PATH), CACHE_SETTINGS, tmp_path / "cache")
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".lock"]  # nothing half-built


# --- corpus files: compressed read transparently, non-text refused -----------------------------


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_corpus_reads_like_the_plain_one_whatever_its_name(tmp_path, compress):
    path = tmp_path / "eng-fra.txt"  # no telling extension: the magic bytes decide
    path.write_bytes(compress(SAMPLE_PATH.read_bytes()))
    plain, stats = list(TutorialCorpus(SAMPLE_PATH).pairs(Counter())), Counter()
    assert list(TutorialCorpus(path).pairs(stats)) == plain and stats["lines_read"] == len(plain)


def test_compressed_europarl_files_are_counted_and_aligned(tmp_path):
    en, fr = tmp_path / "en.gz", tmp_path / "fr.xz"
    en.write_bytes(gzip.compress(b"hello\nthank you\n"))
    fr.write_bytes(lzma.compress(b"bonjour\nmerci\n"))
    pairs = list(EuroparlCorpus(paths={"en": en, "fr": fr}).pairs(Counter()))
    assert pairs == [("bonjour", "hello"), ("merci", "thank you")]  # (fr, en)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"hello\tbonjour\n\x00\x01\x02ELF", "not a text file (NUL bytes in its first 20 bytes)"),
        (bytes(range(128, 256)) * 4, "not a text file (100% of its first bytes not UTF-8)"),
        (gzip.compress(b"hello\tbonjour\n" * 1000)[:60], "cannot read it (gzip: "),
    ],
)  # fmt: skip
def test_file_that_is_not_text_is_refused_naming_it_and_why(tmp_path, content, why):
    path = tmp_path / "eng-fra.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match="^" + re.escape(f"{path}: {why}")):
        list(TutorialCorpus(path).pairs(Counter()))


def test_directory_given_as_a_corpus_path_says_so(tmp_path):
    with pytest.raises(CorpusError, match=f"corpus path is a directory, not a file: {tmp_path}"):
        locate(["eng-fra.txt"], paths=[tmp_path])


def test_binary_corpus_via_train_is_one_line_exit_2(tmp_path):
    binary = tmp_path / "corpus.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(200))
    run_dir = tmp_path / "run"
    out = run_train(
        run_dir, *TINY, "dataset=tutorial", f"dataset.corpus.path={binary}",
        "dataset.prefixes=null", f"paths.cache_dir={tmp_path / 'cache'}",
    )  # fmt: skip
    assert out.returncode == 2
    assert error_lines(out) == [f"error: {binary}: not a text file (NUL bytes in its first 208 bytes)"]  # fmt: skip


# --- resume: a bad last.ckpt falls back, settings a resume cannot honour are refused -----------

RESUME = ["debug=fast", "model.emb_size=32", "model.hidden_size=32", *LIMITS, "test=false"]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory) -> Path:
    """A run of two short epochs: checkpoints of epoch 0 and 1, and last.ckpt."""
    out = tmp_path_factory.mktemp("two_epochs")
    train(make_cfg(out, *RESUME, "trainer.max_epochs=2"))
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def test_truncated_last_ckpt_falls_back_to_the_newest_readable_one(two_epochs, tmp_path, caplog):
    run = copy_run(two_epochs, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    train(make_cfg(run, *RESUME, "trainer.max_epochs=3", "ckpt_path=last"))
    assert f"{last} does not load" in caplog.text
    resumed = strict_json(run / "run.json")["resumed_from"]
    assert Path(resumed).name.startswith("epoch001") and f"resuming from {resumed}" in caplog.text
    assert verify_checkpoint(last) is None  # a good last.ckpt again


def test_unreadable_checkpoint_given_by_path_is_one_line(two_epochs, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes((two_epochs / "checkpoints" / "last.ckpt").read_bytes()[:1000])
    with pytest.raises(ResumeError, match=f"^ckpt_path={bad}: does not load "):
        train(make_cfg(tmp_path / "run", *RESUME, f"ckpt_path={bad}"))


@pytest.mark.parametrize("payload", [{"format": 99, "version": "9.0"}, None])
def test_resume_from_a_newer_format_or_a_foreign_checkpoint_is_one_line(
    two_epochs, tmp_path, payload
):
    """Resume reads the payload through checkpoint.read_payload: its format check included."""
    bad = tmp_path / "other.ckpt"
    ckpt = torch.load(two_epochs / "checkpoints" / "last.ckpt", weights_only=True)
    if payload is None:
        del ckpt[CHECKPOINT_KEY]
    else:
        ckpt[CHECKPOINT_KEY] |= payload
    torch.save(ckpt, bad)
    why = "unknown checkpoint format 99" if payload else "not a seq2seq-nmt checkpoint"
    with pytest.raises(ResumeError, match=f"^ckpt_path={bad}: {why}") as e:
        train(make_cfg(tmp_path / "run", *RESUME, f"ckpt_path={bad}"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("override", "diff"),
    [("model.hidden_size=48", "model.hidden_size=32 (now 48)"),
     ("dataset.src_lang=en dataset.tgt_lang=fr", "data.src_lang='fr' (now 'en')")],
)  # fmt: skip
def test_resume_with_another_model_or_data_is_refused(two_epochs, tmp_path, override, diff):
    run = copy_run(two_epochs, tmp_path)
    with pytest.raises(ResumeError, match=r"trained with other settings: .*" + re.escape(diff)):
        train(make_cfg(run, *RESUME, "trainer.max_epochs=3", "ckpt_path=last", *override.split()))


def test_resume_with_another_learning_rate_applies_it_with_a_warning(two_epochs, tmp_path, caplog):
    run = copy_run(two_epochs, tmp_path)
    metrics = train(make_cfg(run, *RESUME, "trainer.max_epochs=3", "ckpt_path=last", "optimizer.lr=0.01"))  # fmt: skip
    assert "resuming with optimizer.lr=0.01 (the checkpoint was trained with 0.001)" in caplog.text
    assert metrics["lr-Adam"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.tie_embeddings=true", "model.emb_size=32"], "tie_embeddings needs emb_size == hidden_size, got 32 and 64"),
        (["model.input_feeding=true"], "input_feeding needs an attention queried after the RNN step"),
        (["model.bidirectional=true", "model.hidden_size=33"], "a bidirectional encoder needs an even hidden_size, got 33"),
        (["model=tutorial", "dataset.max_length=null"], "attention=tutorial needs max_length"),
    ],
)  # fmt: skip
def test_model_settings_that_cannot_work_together_are_one_config_error(
    tmp_path, overrides, message
):
    """Checked by model.seq2seq.check_settings, the one place: the config check calls it before
    any data is read, the model when it is built."""
    with pytest.raises(ConfigError, match=f"^model: {message}"):
        validate(make_cfg(tmp_path, "debug=fast", *overrides))
