"""What a run directory records beside Hydra's ``.hydra/`` (the composed config and overrides):
``run.json`` (provenance: package version, git commit, data cache key) and ``metrics.json``
(outcome: status, best validation BLEU, test BLEU, steps, wall time), read by ``report``."""

import json
import math
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from seq2seq_nmt import __version__
from seq2seq_nmt.data.io import atomic_write
from seq2seq_nmt.rank import rank_zero_only

RUN_FILE, METRICS_FILE = "run.json", "metrics.json"
# status values in metrics.json; a run killed outright stays "running" (report: "unfinished")
RUNNING, COMPLETED, INTERRUPTED, FAILED = "running", "completed", "interrupted", "failed"
DIVERGED = "diverged"  # stopped by the divergence guard (seq2seq_nmt.train.callbacks)


def finite(data: Any) -> Any:
    """``data`` with NaN and infinite floats replaced by None (strict JSON has neither)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def write_json(path: Path, data: dict) -> None:
    """Write strict JSON (non-finite floats as null) atomically (temporary file, then rename), so
    a killed run leaves no half file."""
    text = json.dumps(finite(data), indent=2, default=str, allow_nan=False) + "\n"
    with atomic_write(path) as tmp:
        tmp.write_text(text)


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
    """Write ``metrics.json``: status, wall time so far and any results (``fields``)."""
    summary = {"status": status, "wall_time_s": round(time.monotonic() - started, 1), **fields}
    write_json(run_dir / METRICS_FILE, summary)
