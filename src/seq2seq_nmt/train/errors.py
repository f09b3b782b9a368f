"""The errors a run stops on with one line and exit status 2."""


class DivergenceError(RuntimeError):
    """Training diverged: a non-finite loss, a loss above the bound for too long, or non-finite
    weights about to be saved (one-line message)."""


class StorageError(RuntimeError):
    """A run or checkpoint folder that cannot be written, or a checkpoint that did not land."""


class ResumeError(ValueError):
    """A checkpoint to resume from that does not load, or was trained with other settings."""
