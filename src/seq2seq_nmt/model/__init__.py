from .seq2seq import Seq2Seq, SourceTooLongError

__all__ = ["Seq2Seq", "SourceTooLongError"]
