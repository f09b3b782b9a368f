from seq2seq_nmt.model.attention import ATTENTIONS
from seq2seq_nmt.model.encoder import RNNS
from seq2seq_nmt.model.seq2seq import Seq2Seq, SourceTooLongError

__all__ = ["ATTENTIONS", "RNNS", "Seq2Seq", "SourceTooLongError"]
