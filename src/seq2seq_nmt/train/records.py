"""What a run directory records beside Hydra's ``.hydra/`` (the composed config and overrides):
``run.json`` (provenance: package version, git commit, data cache key) and ``metrics.json``
(outcome: status, best validation BLEU, test BLEU, steps, wall time), read by ``report``.

``metrics.json`` is written padded with spaces to ``RESERVE`` bytes (JSON allows trailing
whitespace), so that its final status can overwrite it in place when the disk is full."""

import errno
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from seq2seq_nmt import __version__
from seq2seq_nmt.data.io import atomic_write
from seq2seq_nmt.rank import rank_zero_only
from seq2seq_nmt.train.errors import StorageError

RUN_FILE, METRICS_FILE = "run.json", "metrics.json"
TEST_HYPS, TEST_REFS = "test.hyp.txt", "test.ref.txt"  # the test split's translations, references
# status values in metrics.json; a run killed outright stays "running" (report: "unfinished")
RUNNING, COMPLETED, INTERRUPTED, FAILED = "running", "completed", "interrupted", "failed"
DIVERGED = "diverged"  # stopped by the divergence guard (seq2seq_nmt.train.callbacks)
RESERVE = 8192  # bytes metrics.json keeps allocated for its final status
FULL = (errno.ENOSPC, errno.EDQUOT)  # the errors of a full disk or quota


def finite(data: Any) -> Any:
    """``data`` with NaN and infinite floats replaced by None (strict JSON has neither)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def write_json(path: Path, data: dict, reserve: int = 0) -> None:
    """Write strict JSON (non-finite floats as null) atomically (temporary file, then rename), so
    a killed run leaves no half file; padded with spaces to ``reserve`` bytes. On a full disk, a
    text that fits the file already there overwrites it in place (its blocks are allocated).
    A write that fails is a StorageError naming the file."""
    text = json.dumps(finite(data), indent=2, default=str, allow_nan=False) + "\n"
    text = text.ljust(reserve - 1) + "\n" if len(text) < reserve else text
    try:
        with atomic_write(path) as tmp:
            tmp.write_text(text)
    except OSError as e:
        if e.errno not in FULL or not overwrite_in_place(path, text.rstrip() + "\n"):
            raise StorageError(f"cannot write {path}: {e.strerror or e}") from e


def overwrite_in_place(path: Path, text: str) -> bool:
    """Overwrite ``path``'s bytes with ``text`` padded to its size, without truncating it
    (no new blocks); False when ``text`` is longer than the file or the write fails."""
    data = text.encode()
    try:
        size = path.stat().st_size
        if len(data) > size:
            return False
        with path.open("r+b") as f:
            f.write(data[:-1] + b" " * (size - len(data)) + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        return False
    return True


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def git_state(cwd: Path) -> dict[str, Any]:
    """Commit and dirtiness of the checkout at ``cwd`` (None when it is not a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def cache_key(datamodule: Any) -> str | None:
    """The datamodule's preprocessed-data cache key, where it has one."""
    key = getattr(datamodule, "cache_key", None)
    return key() if callable(key) else key


@rank_zero_only
def record_provenance(
    run_dir: Path, datamodule: Any, root_dir: Path, ckpt_path: str | None
) -> None:
    """Write ``run.json``: what produced this run (code, environment, data, resumed checkpoint)."""
    import pytorch_lightning as pl  # here: nmt-report reads records without importing Lightning
    import torch

    write_json(
        run_dir / RUN_FILE,
        {
            "package_version": __version__,
            "git": git_state(root_dir),
            "data_cache_key": cache_key(datamodule),
            "resumed_from": ckpt_path,
            "command": sys.argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": socket.gethostname(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "lightning": pl.__version__,
        },
    )


@rank_zero_only
def record_outcome(run_dir: Path, status: str, started: float, **fields: Any) -> None:
    """Write ``metrics.json``: status, wall time so far and any results (``fields``), padded to
    ``RESERVE`` bytes; on a full disk, the status and error alone if the results do not fit."""
    summary = {"status": status, "wall_time_s": round(time.monotonic() - started, 1), **fields}
    try:
        write_json(run_dir / METRICS_FILE, summary, RESERVE)
    except StorageError:
        short = {k: v for k, v in summary.items() if k in ("status", "wall_time_s", "signal")}
        error = str(fields.get("error", ""))[: RESERVE // 2]
        write_json(run_dir / METRICS_FILE, short | ({"error": error} if error else {}), RESERVE)
