"""The checkpoint format: what a seq2seq-nmt checkpoint holds beside Lightning's own entries.

Lightning stores the module's weights under ``state_dict``: the network's as ``net.<name>``
(``WEIGHTS_PREFIX``: ``TranslationModule`` keeps its ``Seq2Seq`` as ``self.<NET_ATTRIBUTE>``).
``TranslationModule.on_save_checkpoint`` adds, under ``checkpoint["nmt"]``, the payload that
rebuilds the network alone, in plain Python types (``torch.load(weights_only=True)`` reads it):

- ``format``: the layout of this payload (``FORMAT``); a reader refuses a format newer than its own
- ``version``: the package version that wrote it
- ``model``: the ``Seq2Seq`` keyword arguments
- ``src_tokenizer``, ``tgt_tokenizer``: ``Tokenizer.to_dict()`` (a SentencePiece model's bytes
  included), read back by ``data.tokenizer.from_dict``
- ``data``: the preprocessing translation repeats (normalisation, src_lang, tgt_lang, max_length)
- ``run``: the identity of the training run (kept across resumes), so that ``average`` can refuse
  to mix runs (absent in older checkpoints)

Kinds (``kind``): a *training* checkpoint (Lightning's loops and optimizer states beside the
weights: resumable), a *weights-only* one (averaged, or saved with ``save_weights_only``: it
translates and averages, it does not resume), and a file that is *not a checkpoint*.

Format 1 held word vocabularies (``src_vocab``, ``tgt_vocab``: ``Vocab.to_dict()``) and a
``direction`` (``fr-en``); format 0 is format 1 before ``format`` existed. Both are upgraded.
"""

import io
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from seq2seq_nmt import __version__
from seq2seq_nmt.data.io import atomic_write
from seq2seq_nmt.data.tokenizer import Tokenizer
from seq2seq_nmt.model import Seq2Seq

CHECKPOINT_KEY = "nmt"  # where a checkpoint keeps the payload
FORMAT = 2  # the payload layout this version writes
READABLE_FORMATS = (0, 1, 2)
NET_ATTRIBUTE = "net"  # TranslationModule's attribute holding the Seq2Seq
WEIGHTS_PREFIX = f"{NET_ATTRIBUTE}."  # the network's weights in a checkpoint's state_dict

# the parts of checkpoints' payloads that must agree to ensemble or to average them
ENSEMBLE_PARTS = ("src_tokenizer", "tgt_tokenizer", "normalization")
AVERAGE_PARTS = ("model", *ENSEMBLE_PARTS)
_PART_NAMES = {
    "model": "model configuration", "src_tokenizer": "source tokenizer",
    "tgt_tokenizer": "target tokenizer", "normalization": "normalisation",
}  # fmt: skip


TRAINING, WEIGHTS = "training", "weights-only"  # the kinds of checkpoint (``kind``)
TRAINING_KEYS = ("optimizer_states", "loops")  # what Lightning adds to a resumable checkpoint
ZIP_START = b"PK\x03\x04"  # how torch's zip archives start (a truncated one too)
PICKLE_START = b"\x80"  # a pickle's protocol opcode: torch's legacy (pre-zip) format starts so


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable, unsafe or not ours (one-line message)."""


def kind(ckpt: Mapping) -> str:
    """``TRAINING`` (resumable: optimizer and loop states) or ``WEIGHTS`` (weights only)."""
    return TRAINING if all(k in ckpt for k in TRAINING_KEYS) else WEIGHTS


def describe(ckpt: Mapping) -> str:
    """What kind of checkpoint ``ckpt`` is, in words for a one-line message."""
    if "averaged_from" in ckpt:
        return f"a weights-only checkpoint (averaged from {len(ckpt['averaged_from'])})"
    return "a training checkpoint" if kind(ckpt) == TRAINING else "a weights-only checkpoint"


def not_a_checkpoint(path: Path) -> str | None:
    """Why the file at ``path`` is not a PyTorch file at all (None: it starts like one, though it
    may be truncated): torch writes a zip archive (or, before 1.6, a pickle)."""
    with path.open("rb") as f:
        start = f.read(len(ZIP_START))
    if start.startswith((ZIP_START, PICKLE_START)):
        return None
    return "an empty file" if not start else "neither a zip archive nor a pickle"


def save_atomically(obj: dict, path: str | Path) -> None:
    """``torch.save`` into a temporary file in ``path``'s folder, flushed to disk, then renamed
    onto ``path`` (``io.atomic_write``: the permissions of any new file there; never a move
    across filesystems). A failed write (a full disk) raises OSError and leaves no ``path``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_write(path) as tmp, tmp.open("wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def first_line(e: BaseException, limit: int = 120) -> str:
    """``Type: first line`` of an exception, cut to ``limit`` characters."""
    line = (str(e).strip().splitlines() or [""])[0]
    text = f"{type(e).__name__}: {line}" if line else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def make_payload(
    model_config: Mapping,
    src_tokenizer: Tokenizer,
    tgt_tokenizer: Tokenizer,
    data_config: Mapping,
    run: str | None = None,
) -> dict:
    """The current format's payload, in plain Python types (``run``: the run's identity)."""
    return {
        "format": FORMAT,
        "version": __version__,
        "model": dict(model_config),
        "src_tokenizer": src_tokenizer.to_dict(),
        "tgt_tokenizer": tgt_tokenizer.to_dict(),
        "data": dict(data_config),
        "run": run,
    }


def upgrade(payload: dict) -> dict:
    """A format 0 or 1 payload in the current format: its vocabularies become ``words``
    tokenizers, its ``direction`` the language codes; its run is unknown (None)."""
    if payload.get("format", 0) == FORMAT:
        return payload
    out = {k: v for k, v in payload.items() if k not in ("src_vocab", "tgt_vocab")}
    for side in ("src", "tgt"):
        out[f"{side}_tokenizer"] = {"kind": "words", **payload[f"{side}_vocab"]}
    data = dict(payload.get("data", {}))
    src, _, tgt = data.pop("direction", "fr-en").partition("-")
    out["data"] = {"src_lang": src, "tgt_lang": tgt, **data}
    return out | {"format": FORMAT, "run": None}


def write_payload(checkpoint: dict, payload: dict) -> None:
    """Put ``payload`` (from ``make_payload``) into a checkpoint being saved."""
    checkpoint[CHECKPOINT_KEY] = payload


def read_payload(ckpt: dict, path: str | Path = "checkpoint") -> dict:
    """The payload of a loaded checkpoint in the current format (an older format is upgraded);
    CheckpointError, one line, when it is not ours or of a format this version cannot read."""
    payload = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a seq2seq-nmt checkpoint (no '{CHECKPOINT_KEY}' entry)")
    fmt = payload.get("format", 0)
    if fmt not in READABLE_FORMATS:
        raise CheckpointError(
            f"{path}: unknown checkpoint format {fmt!r} (written by seq2seq-nmt "
            f"{payload.get('version', '?')}); seq2seq-nmt {__version__} reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))}"
        )
    try:
        return upgrade(payload)
    except (KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({first_line(e)})") from e


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load(weights_only=True)`` with one-line errors; checks it is a seq2seq-nmt
    checkpoint of a readable format, whose payload it upgrades to the current format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if why := not_a_checkpoint(path):
        raise CheckpointError(f"{path}: not a checkpoint ({why})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, not a plain-type checkpoint ({first_line(e)})"
        ) from e
    except Exception as e:  # truncated zip, foreign bytes, ...
        raise CheckpointError(f"{path}: unreadable checkpoint ({first_line(e)})") from e
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a seq2seq-nmt checkpoint (no '{CHECKPOINT_KEY}' entry)")
    ckpt[CHECKPOINT_KEY] = read_payload(ckpt, path)
    return ckpt


def _part(meta: dict, name: str):
    return meta.get("data", {}).get(name) if name == "normalization" else meta.get(name)


def check_compatible(
    paths: Sequence[str | Path], ckpts: Sequence[dict], parts: Sequence[str]
) -> None:
    """CheckpointError naming the first of ``parts`` (of the payloads) that differs from the
    first checkpoint's: see ``ENSEMBLE_PARTS`` and ``AVERAGE_PARTS``."""
    first = ckpts[0][CHECKPOINT_KEY]
    for path, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        for name in parts:
            if _part(ckpt[CHECKPOINT_KEY], name) != _part(first, name):
                raise CheckpointError(
                    f"{path}: its {_PART_NAMES[name]} differs from that of {paths[0]}"
                )


def network_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's weights of a checkpoint's ``state_dict``, named as in ``Seq2Seq``."""
    return {
        k.removeprefix(WEIGHTS_PREFIX): v
        for k, v in state_dict.items()
        if k.startswith(WEIGHTS_PREFIX)
    }


def load_network(path: str | Path, ckpt: dict) -> Seq2Seq:
    """The network of a loaded checkpoint (CheckpointError when its parts do not fit)."""
    try:
        model = Seq2Seq(**ckpt[CHECKPOINT_KEY]["model"])
        model.load_state_dict(network_weights(ckpt["state_dict"]))
    except (TypeError, KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({first_line(e)})") from e
    return model
