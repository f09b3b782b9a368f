"""Stores kept by other programs that a run opens: an Optuna study's storage, an MLflow
tracking store. One that cannot be opened (not a database, a folder that is missing, an
unknown scheme) is a one-line StoreError naming the setting and the store, raised before any
training starts; ``train.py`` and the Optuna sweeper print it and exit with status 2."""

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class StoreError(RuntimeError):
    """A third-party store that cannot be opened (one-line message)."""


def _first_line(e: BaseException) -> str:
    line = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


def opened(setting: str, store: str, open_store: Callable[[], T]) -> T:
    """``open_store()``'s result; any error it raises is a StoreError naming ``setting=store``."""
    try:
        return open_store()
    except Exception as e:  # each library has its own errors (SQLAlchemy, MLflow, ...)
        raise StoreError(f"{setting}={store}: cannot open it ({_first_line(e)})") from e
