"""A quiet console: short log lines, real warnings only (no torch import: ``--help`` stays fast).

``NOISE`` lists the third-party warnings that say nothing about a run, each with why it is
silenced; every other warning reaches the console and the run's log file, marked ``WARNING``.
"""

import logging
import warnings

# (message pattern, category, why it is not the user's concern)
NOISE: tuple[tuple[str, type[Warning], str], ...] = (
    (
        r".*isinstance\(treespec, LeafSpec\)",
        FutureWarning,
        "Lightning 2.6's own pytree helper on torch >= 2.10; nothing a run can change",
    ),
    (
        r"The '\w+' does not have many workers",
        Warning,  # Lightning's PossibleUserWarning, on any machine with 3 or more cores
        "batches are slices of token arrays already in memory, and dataset.num_workers opts in "
        "to loader processes; the advice fires for every default run",
    ),
)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS message``; warnings and errors as ``HH:MM:SS WARNING message``."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, self.datefmt)
        level = f" {record.levelname}" if record.levelno >= logging.WARNING else ""
        text = f"{stamp}{level} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


LIBRARY_LOGGERS = ("pytorch_lightning", "lightning_fabric")  # their info: devices, seed, tips


def quiet() -> None:
    """Silence ``NOISE`` and route Python warnings through logging (console and log file); no
    import: a bad setting is still reported before Lightning loads (then ``quiet_libraries``)."""
    for pattern, category, _ in NOISE:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    logging.captureWarnings(True)


def quiet_libraries() -> None:
    """Silence the libraries' information lines (warnings stay). Lightning sets its loggers to
    INFO when it is first imported, so this imports it first."""
    import pytorch_lightning  # noqa: F401

    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
