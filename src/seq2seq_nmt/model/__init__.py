from .attention import ATTENTIONS
from .encoder import RNNS
from .seq2seq import Seq2Seq, SourceTooLongError

__all__ = ["ATTENTIONS", "RNNS", "Seq2Seq", "SourceTooLongError"]
