"""Console commands (``nmt-train``, ``nmt-translate``; ``nmt-average`` and ``nmt-report`` live in
``seq2seq_nmt.tools``), each composing the packaged configs in ``seq2seq_nmt/conf``."""

# Hydra's search path for the packaged configs; a user's own folder composes on top of it with
# ``--config-dir DIR`` (see docs/training.md).
CONFIG_PATH = "pkg://seq2seq_nmt.conf"
