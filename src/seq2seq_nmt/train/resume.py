"""What a resume may start from: a checkpoint that loads, trained with the same model, data and
vocabularies."""

import logging
from pathlib import Path
from typing import Any

import torch

from seq2seq_nmt.checkpoint import TRAINING, CheckpointError, describe, kind, read_payload
from seq2seq_nmt.train.checks import verify_checkpoint
from seq2seq_nmt.train.errors import ResumeError

log = logging.getLogger(__name__)


def newest_readable(folder: Path, bad: Path) -> Path | None:
    """The newest checkpoint in ``folder``, other than ``bad``, that loads."""
    others = [p for p in folder.glob("*.ckpt") if p != bad]
    others.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return next((p for p in others if verify_checkpoint(p) is None), None)


def checked_resume(ckpt_path: str | None, module: Any, last: bool) -> str | None:
    """The checkpoint to resume from, checked: it loads (for ``ckpt_path=last``, else the newest
    readable checkpoint beside it, with a warning naming the bad file; none: train from scratch)
    and was trained with ``module``'s model, data and vocabularies (else a ResumeError)."""
    if ckpt_path is None:
        return None
    path = Path(ckpt_path)
    problem = verify_checkpoint(path)
    if problem and not last:
        raise ResumeError(f"ckpt_path={path}: {problem}")
    if problem:
        found = newest_readable(path.parent, path)
        where = found or "scratch (no readable checkpoint beside it)"
        log.warning("ckpt_path=last: %s %s; resuming from %s", path, problem, where)
        if found is None:
            return None
        path = found
    check_same_settings(path, module)
    return str(path)


def check_same_settings(path: Path, module: Any) -> None:
    """Raise a ResumeError when the checkpoint at ``path`` is not a training checkpoint, or was
    trained with another model shape, data preprocessing or vocabulary than ``module`` (settings
    it does not record are not compared): a resume cannot honour those."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    try:
        saved = read_payload(ckpt, path)
    except CheckpointError as e:
        raise ResumeError(f"ckpt_path={e}") from e
    if kind(ckpt) != TRAINING:
        raise ResumeError(
            f"ckpt_path={path}: {describe(ckpt)}, it translates but does not resume; resuming "
            "needs a training checkpoint (a run's last.ckpt or epoch*.ckpt: weights, optimizer "
            "and loop states)"
        )
    now = {"model": module.net_config, "data": module.data_config}
    diffs = [
        f"{part}.{key}={saved[part][key]!r} (now {value!r})"
        for part, values in now.items()
        for key, value in values.items()
        if key in saved.get(part, {})
        and saved[part][key] != value
        and not key.endswith("_vocab_size")  # the vocabularies are compared below
    ]
    for side in ("src_tokenizer", "tgt_tokenizer"):
        if saved[side] != getattr(module, side).to_dict():
            diffs.append(f"{side} (other data or tokenizer settings)")
    if diffs:
        raise ResumeError(
            f"ckpt_path={path}: trained with other settings: {', '.join(diffs)}; "
            "resume with the settings it was trained with, or train afresh"
        )
