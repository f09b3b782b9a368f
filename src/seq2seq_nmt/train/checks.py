"""Checks made before and after writes: run and checkpoint folders that can be written, a
checkpoint file that landed and loads."""

from pathlib import Path

import torch
from omegaconf import DictConfig

from seq2seq_nmt.checkpoint import not_a_checkpoint
from seq2seq_nmt.data.io import unwritable
from seq2seq_nmt.train.errors import StorageError


def verify_checkpoint(path: Path) -> str | None:
    """What is wrong with the checkpoint file at ``path`` (None: present and loads)."""
    if not path.is_file():
        return "was not written"
    if why := not_a_checkpoint(path):
        return f"is not a checkpoint ({why})"
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # any unpickling or zip error means the file is unusable
        why = str(e).splitlines()[0].split(". ")[0] if str(e) else ""
        return f"does not load ({type(e).__name__}: {why})"
    return None


def output_folders(cfg: DictConfig) -> list[Path]:
    """The run directory and every callback's ``dirpath`` (the checkpoint folders)."""
    callbacks = [c for c in (cfg.get("callbacks") or {}).values() if c]
    dirs = [c.get("dirpath") for c in callbacks if isinstance(c, DictConfig)]
    return [Path(cfg.paths.output_dir), *(Path(d) for d in dirs if d)]


def check_output_folders(folders: list[Path]) -> None:
    """Create each folder and a file in it, or raise a one-line StorageError naming it."""
    for folder in folders:
        if (why := unwritable(folder)) is not None:
            raise StorageError(f"cannot write to {folder}: {why}")
