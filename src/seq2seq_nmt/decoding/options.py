"""Decoding options, checked in one place: every front end (``translate``, validation, the
benches, a server) builds a ``DecodingOptions`` and gets a one-line ValueError for a bad one."""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from seq2seq_nmt.decoding.strategies import STRATEGIES

# strategy-specific settings, with the value that leaves them off, refused for other strategies
SAMPLING_DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": None}
SEED_RANGE = (0, 2**63 - 1)


def _int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """ValueError unless ``value`` is an int (not a bool) in [low, high]."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")


def check_batch_size(batch_size: Any) -> None:
    """ValueError (one line) unless ``batch_size`` (sentences decoded at once) is an int >= 1."""
    _int("batch_size", batch_size, 1)


def _float(name: str, value: Any, allowed: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float; ValueError unless it is a finite number (not a bool) where ``ok``."""
    real = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not (real and ok(float(value))):
        raise ValueError(f"{name} must be a number {allowed}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode: a strategy from ``STRATEGIES`` and its settings, validated on creation.

    ``strategy`` None: greedy when ``beam_size`` is 1, beam otherwise. ``nbest``: hypotheses per
    sentence (beam: at most ``beam_size``; sample: that many independent samples). Sampling
    (``temperature``, ``top_k`` 0 = off, nucleus ``top_p`` 1 = off, ``seed`` None = unseeded)
    is for ``strategy="sample"`` only."""

    strategy: str | None = None
    beam_size: int = 1
    nbest: int = 1
    length_penalty: float = 1.0
    max_output_ratio: float = 1.5
    max_output_offset: int = 5
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        strategy = self.strategy
        if strategy is None:
            strategy = "greedy" if self.beam_size == 1 else "beam"
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r}: one of {', '.join(STRATEGIES)}")
        object.__setattr__(self, "strategy", strategy)
        _int("beam_size", self.beam_size, 1)
        if self.beam_size > 1 and strategy != "beam":
            raise ValueError(f"beam_size={self.beam_size} needs strategy=beam, not {strategy}")
        _int("nbest", self.nbest, 1)
        if strategy != "sample" and self.nbest > self.beam_size:
            raise ValueError(
                f"nbest must be an integer in [1, beam_size={self.beam_size}] with "
                f"strategy={strategy}, got {self.nbest}"
            )
        self._set("length_penalty", ">= 0", lambda v: v >= 0)
        self._set("max_output_ratio", ">= 0", lambda v: v >= 0)
        _int("max_output_offset", self.max_output_offset, 1)
        self._set("temperature", "> 0", lambda v: v > 0)
        _int("top_k", self.top_k, 0)
        self._set("top_p", "in (0, 1]", lambda v: 0 < v <= 1)
        if self.seed is not None:
            _int("seed", self.seed, *SEED_RANGE)
        if strategy != "sample":
            for name, off in SAMPLING_DEFAULTS.items():
                if getattr(self, name) != off:
                    raise ValueError(f"{name}={getattr(self, name)!r} needs strategy=sample")

    def _set(self, name: str, allowed: str, ok: Callable[[float], bool]) -> None:
        """Check the number field ``name`` against ``ok`` and store it as a float."""
        object.__setattr__(self, name, _float(name, getattr(self, name), allowed, ok))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "DecodingOptions":
        """Options from a mapping of field names (a config, a request body); ValueError, one
        line, for an unknown key or a bad value."""
        names = [f.name for f in fields(cls)]
        unknown = [str(k) for k in mapping if k not in names]
        if unknown:
            raise ValueError(f"unknown decoding option {unknown[0]!r}: one of {', '.join(names)}")
        return cls(**dict(mapping))
