"""Checks of the composed config, run before any data is read: one line per bad value.

``CONSTRAINTS`` maps a key path to a check and what it allows; a new option is one line there.
A key absent from the composed config is skipped (an option of another config group, say).
"""

import codecs
import inspect
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

from seq2seq_nmt.data.normalize import NORMALIZERS
from seq2seq_nmt.data.preprocess import PREFIX_LISTS, english_side
from seq2seq_nmt.data.sampler import SAMPLING
from seq2seq_nmt.hardware import HardwareError, check_devices
from seq2seq_nmt.metrics import BLEU_TOKENIZERS
from seq2seq_nmt.model import ATTENTIONS, RNNS
from seq2seq_nmt.model.seq2seq import TEACHER_FORCING_MODES, check_settings
from seq2seq_nmt.targets import UnknownKeyError, check_keys

UNITS = ("tokens", "steps", "epochs", "time")  # the keys of the `budget` config
_ABSENT = object()


class ConfigError(ValueError):
    """A config value outside what its key allows (one-line message naming key and value)."""


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def positive_int(v: Any) -> bool:
    return _count(v) and v > 0


def positive(v: Any) -> bool:
    return _number(v) and v > 0


def ratio(v: Any) -> bool:
    return _number(v) and 0 <= v <= 1


def split_size(v: Any) -> bool:
    """A fraction in [0, 1) or a non-negative count (1.5 is neither: refused, not truncated)."""
    return (_count(v) and v >= 0) or (isinstance(v, float) and 0 <= v < 1)


def boolean(v: Any) -> bool:
    return isinstance(v, bool)


def one_of(names: Sequence[str]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in names


def or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def prefixes(v: Any) -> bool:
    """A named prefix list, null, or a list of strings."""
    if isinstance(v, ListConfig | list):
        return all(isinstance(p, str) for p in v)
    return v is None or (isinstance(v, str) and v in PREFIX_LISTS)


def duration(v: Any) -> bool:
    """A wall time as Lightning's ``max_time`` takes it on the command line: ``DD:HH:MM:SS``."""
    return isinstance(v, str) and bool(re.fullmatch(r"\d+:\d\d:\d\d:\d\d", v))


def lang_code(v: Any) -> bool:
    """A language code: letters, digits, ``_`` (``de``, ``pt_BR``, ``zh_Hant``), no ``-``."""
    return isinstance(v, str) and bool(v) and v.replace("_", "").isalnum()


def text_encoding(v: Any) -> bool:
    """A name Python's codecs know (``latin-1``, ``cp1251``, ...)."""
    try:
        codecs.lookup(v)
    except (LookupError, TypeError):
        return False
    return True


def _names(names: Sequence[str]) -> str:
    return "one of " + ", ".join(names)


CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "batch_size": (positive_int, "a positive integer"),
    "teacher_forcing_ratio": (ratio, "a number in [0, 1]"),
    "keep_host_memory": (boolean, "true or false"),
    "teacher_forcing_mode": (one_of(TEACHER_FORCING_MODES), _names(TEACHER_FORCING_MODES)),
    "model.emb_size": (positive_int, "a positive integer"),
    "model.hidden_size": (positive_int, "a positive integer"),
    "model.num_layers": (positive_int, "a positive integer"),
    "model.dropout": (ratio, "a number in [0, 1]"),
    "model.cell": (one_of(RNNS), _names(RNNS)),
    "model.attention": (one_of(ATTENTIONS), _names(ATTENTIONS)),
    "model.bidirectional": (boolean, "true or false"),
    "model.deep_output": (boolean, "true or false"),
    "model.bridge": (boolean, "true or false"),
    "model.input_feeding": (boolean, "true or false"),
    "model.tie_embeddings": (boolean, "true or false"),
    "model.compile": (boolean, "true or false"),
    "dataset.src_lang": (lang_code, "a language code (de, en, pt_BR, ...)"),
    "dataset.tgt_lang": (lang_code, "a language code (de, en, pt_BR, ...)"),
    "tokenizer.vocab_size": (lambda v: _count(v) and v > 4, "an integer > 4"),
    "tokenizer.model_type": (one_of(("bpe", "unigram")), "bpe or unigram"),
    "tokenizer.joint": (boolean, "true or false"),
    "tokenizer.character_coverage": (lambda v: ratio(v) and v > 0, "a number in (0, 1]"),
    "tokenizer.byte_fallback": (boolean, "true or false"),
    "tokenizer.max_sentences": (positive_int, "a positive integer"),
    "tokenizer.normalization": (one_of(tuple(NORMALIZERS)), _names(tuple(NORMALIZERS))),
    "metrics.tokenize": (one_of(BLEU_TOKENIZERS), _names(BLEU_TOKENIZERS)),
    "dataset.normalization": (one_of(tuple(NORMALIZERS)), _names(tuple(NORMALIZERS))),
    "dataset.prefixes": (prefixes, f"{_names(tuple(PREFIX_LISTS))}, null or a list of strings"),
    "dataset.max_length": (or_null(lambda v: _count(v) and v > 1), "an integer > 1 or null"),
    "dataset.val_size": (split_size, "a fraction in [0, 1) or a non-negative integer count"),
    "dataset.test_size": (split_size, "a fraction in [0, 1) or a non-negative integer count"),
    "dataset.sampling": (one_of(SAMPLING), _names(SAMPLING)),
    "dataset.max_tokens": (or_null(positive_int), "a positive integer or null"),
    "dataset.max_sentence_tokens": (positive_int, "a positive integer"),
    "dataset.corpus.encoding": (or_null(text_encoding), "a text encoding (latin-1, ...) or null"),
    "dataset.num_workers": (lambda v: _count(v) and v >= 0, "a non-negative integer"),
    "seed": (_count, "an integer"),
    "ckpt_path": (
        lambda v: v is None or v == "last" or (isinstance(v, str) and Path(v).is_file()),
        "null, last, or an existing checkpoint file",
    ),
    "optimizer.lr": (positive, "a number > 0"),
    "loss.label_smoothing": (ratio, "a number in [0, 1]"),
    "trainer.max_epochs": (
        or_null(lambda v: positive_int(v) or v == -1),
        "a positive integer, -1 (no limit) or null",
    ),
    "budget.tokens": (or_null(lambda v: positive(v) and v >= 1), "a number >= 1 or null"),
    "budget.steps": (or_null(positive_int), "a positive integer or null"),
    "budget.epochs": (or_null(positive_int), "a positive integer or null"),
    "budget.time": (or_null(duration), "DD:HH:MM:SS (00:00:10:00) or null"),
    "trainer.gradient_clip_val": (or_null(positive), "a number > 0 or null"),
    "callbacks.divergence_guard.max_loss": (or_null(_number), "a number or null"),
    "callbacks.divergence_guard.patience": (positive_int, "a positive integer"),
    "callbacks.divergence_guard.every_n_steps": (positive_int, "a positive integer"),
    "callbacks.ema.decay": (lambda v: ratio(v) and v < 1, "a number in [0, 1)"),
    "callbacks.ema.every_n_steps": (positive_int, "a positive integer"),
    "callbacks.ema.start_step": (lambda v: _count(v) and v >= 0, "a non-negative integer"),
    "callbacks.lr_decay.final": (ratio, "a number in [0, 1]"),
    "callbacks.lr_decay.start": (lambda v: ratio(v) and v < 1, "a number in [0, 1)"),
    "callbacks.lr_decay.sync_every_n_steps": (positive_int, "a positive integer"),
}


def _shown(v: Any) -> Any:
    return OmegaConf.to_container(v) if isinstance(v, DictConfig | ListConfig) else v


def validate(cfg: DictConfig) -> None:
    """Raise a ConfigError for a mandatory value left unset (``???``, e.g. ``dataset=base``'s
    corpus), the first value of ``CONSTRAINTS`` that its key does not allow, a combination
    refused, a key its ``_target_`` does not take (``targets``) or absent devices
    (``hardware``)."""
    if missing := sorted(OmegaConf.missing_keys(cfg)):
        raise ConfigError(f"{missing[0]}=???: must be set")
    for key, (check, allowed) in CONSTRAINTS.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not check(value):
            raise ConfigError(f"{key}={_shown(value)!r}: {allowed}")
    check_combinations(cfg)
    try:
        check_keys(cfg)  # keys a _target_ does not take (+model.foo=1)
        check_devices(cfg)  # trainer=gpu without a GPU
    except (UnknownKeyError, HardwareError) as e:
        raise ConfigError(str(e)) from None


def check_decay(cfg: DictConfig, has_budget: bool) -> None:
    """``callbacks.lr_decay`` falls over a limit on training, and is the one schedule."""
    if OmegaConf.select(cfg, "scheduler"):
        raise ConfigError("callbacks.lr_decay and a scheduler are both set: use scheduler=none")
    trainer = OmegaConf.select(cfg, "trainer") or {}
    limited = (
        has_budget
        or trainer.get("max_time") is not None
        or any((trainer.get(key) or -1) > 0 for key in ("max_steps", "max_epochs"))
    )
    if not limited:
        raise ConfigError(
            "callbacks.lr_decay falls over the run's limit, and none is set: set budget.* "
            "or trainer.max_time, trainer.max_steps or trainer.max_epochs"
        )


def check_combinations(cfg: DictConfig) -> None:
    """Settings that are each allowed but not together."""
    src, tgt = (OmegaConf.select(cfg, f"dataset.{k}") for k in ("src_lang", "tgt_lang"))
    if src is not None and src == tgt:
        raise ConfigError(f"dataset.src_lang and dataset.tgt_lang are both {src!r}")
    if src is not None and OmegaConf.select(cfg, "dataset.prefixes") not in (None, "none"):
        try:
            english_side((src, tgt))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    budget = [f"budget.{u}" for u in UNITS if OmegaConf.select(cfg, f"budget.{u}") is not None]
    if len(budget) > 1:
        raise ConfigError(f"{' and '.join(budget)} are both set: a run has one budget")
    if OmegaConf.select(cfg, "callbacks.lr_decay") is not None:
        check_decay(cfg, has_budget=bool(budget))
    if (model := OmegaConf.select(cfg, "model")) is not None and "_target_" in model:
        keys = inspect.signature(check_settings).parameters
        try:
            check_settings(**{k: model[k] for k in keys if k in model})
        except ValueError as e:
            raise ConfigError(f"model: {e}") from None
    target = OmegaConf.select(cfg, "tokenizer._target_")
    subwords = target is not None and get_class(target).subwords
    if subwords and OmegaConf.select(cfg, "model.attention") == "tutorial":
        raise ConfigError(
            "model.attention=tutorial attends over max_length word positions; "
            "use it with tokenizer=words"
        )
