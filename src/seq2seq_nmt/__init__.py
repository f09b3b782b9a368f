"""seq2seq-nmt: attention-based sequence-to-sequence translation on Lightning and Hydra."""

__version__ = "0.1.0"

from seq2seq_nmt import resolvers  # noqa: E402

resolvers.register()
