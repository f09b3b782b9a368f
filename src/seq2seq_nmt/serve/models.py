"""The served models: checkpoints loaded once at start, by name, each with what ``GET /models``
tells about it (languages, tokenizers, the metrics its checkpoint recorded)."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from seq2seq_nmt.checkpoint import CHECKPOINT_KEY, CheckpointError, load_checkpoint
from seq2seq_nmt.translate.translator import Translator


@dataclass
class Model:
    """A served model: its translator and its public description."""

    name: str
    translator: Translator
    info: dict


def checkpoint_paths(ckpt: str | None, models: Mapping[str, str] | None) -> dict[str, str | None]:
    """Model names to checkpoint paths (``ckpt``'s name comes from its languages: None here);
    ValueError, one line, unless exactly one of ``ckpt`` and ``models`` is given."""
    if bool(ckpt) == bool(models):
        raise ValueError("give a checkpoint, ckpt=PATH, or several by name: models={fr-en: a.ckpt}")
    if ckpt:
        return {None: str(ckpt)}
    bad = [n for n, p in models.items() if not str(n).strip() or not isinstance(p, str)]
    if bad:
        raise ValueError(f"models: {bad[0]!r} must be a name mapped to a checkpoint path")
    return {str(n): p for n, p in models.items()}


def recorded_metrics(ckpt: dict) -> dict:
    """Epoch, step and the monitored score (of ``ModelCheckpoint``) the checkpoint recorded."""
    out = {"epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step")}
    for name, state in ckpt.get("callbacks", {}).items():
        if name.startswith("ModelCheckpoint") and isinstance(state, dict) and state.get("monitor"):
            for key in ("current_score", "best_model_score"):
                if state.get(key) is not None:
                    out[f"{state['monitor']} ({key.removesuffix('_model_score')})"] = round(
                        float(state[key]), 4
                    )
    return out


def describe(name: str, ckpt: dict) -> dict:
    """What ``GET /models`` says of a model (no file path: clients never see the server's files)."""
    payload = ckpt[CHECKPOINT_KEY]
    data = payload["data"]
    return {
        "name": name,
        "src_lang": data.get("src_lang"),
        "tgt_lang": data.get("tgt_lang"),
        "tokenizer": {s: payload[f"{s}_tokenizer"].get("kind") for s in ("src", "tgt")},
        "normalization": data.get("normalization"),
        "metrics": recorded_metrics(ckpt),
    }


def load_model(name: str | None, path: str, device: str, precision: str) -> Model:
    """One checkpoint (``weights_only``) as a ``Model``; CheckpointError or ValueError, one line."""
    ckpt = load_checkpoint(path)
    data = ckpt[CHECKPOINT_KEY]["data"]
    name = name or f"{data.get('src_lang')}-{data.get('tgt_lang')}"
    translator = Translator.from_loaded([Path(path)], [ckpt], device, precision)
    return Model(name, translator, describe(name, ckpt))


def load_models(cfg) -> dict[str, Model]:
    """The models of a serve config (``ckpt`` or ``models``), by name; the first is the default."""
    models = cfg.get("models") or None
    out = {}
    for name, path in checkpoint_paths(cfg.get("ckpt"), models).items():
        model = load_model(name, path, str(cfg.device), cfg.precision)
        if model.name in out:
            raise CheckpointError(f"two models named {model.name!r}")
        out[model.name] = model
    return out
