"""LightningDataModule: corpus -> normalised, filtered, split pairs -> vocabularies -> padded batches."""

import logging
from collections import Counter
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from .preprocess import filter_pairs, report, split_by_source
from .sampler import BucketBatchSampler
from .vocab import PAD, SOS, Vocab

log = logging.getLogger(__name__)


class PairDataset(Dataset):
    """Encoded (source ids, target ids) pairs, with the target sentences as BLEU references."""

    def __init__(self, src: list[np.ndarray], tgt: list[np.ndarray], refs: list[str] | None = None):
        self.src, self.tgt, self.refs = src, tgt, refs

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, str | None]:
        return self.src[i], self.tgt[i], self.refs[i] if self.refs is not None else None


def collate(items: list[tuple[np.ndarray, np.ndarray, str | None]]) -> dict[str, Any]:
    """Pad a batch (batch-first) and build the decoder input ``<sos> y`` and output ``y <eos>``."""
    src = [torch.from_numpy(s) for s, _, _ in items]
    tgt = [torch.from_numpy(t) for _, t, _ in items]
    tgt_out = pad_sequence(tgt, batch_first=True, padding_value=PAD)
    sos = torch.full((len(items), 1), SOS, dtype=tgt_out.dtype)
    tgt_in = torch.cat([sos, tgt_out[:, :-1]], dim=1).masked_fill(tgt_out == PAD, PAD)
    return {
        "src": pad_sequence(src, batch_first=True, padding_value=PAD),
        "src_len": torch.tensor([len(s) for s in src]),
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "refs": [r for _, _, r in items] if items[0][2] is not None else None,
    }


class TranslationDataModule(pl.LightningDataModule):
    """Builds vocabularies on the training split and serves length-bucketed padded batches."""

    def __init__(
        self,
        corpus: Any,
        normalization: str = "tutorial",
        direction: str = "fr-en",
        max_length: int | None = 10,
        prefixes: Any = None,
        val_size: float = 0.05,
        test_size: float = 0.05,
        min_freq: int = 1,
        max_vocab_size: int | None = None,
        batch_size: int = 64,
        max_tokens: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.corpus, self.normalization, self.direction = corpus, normalization, direction
        self.max_length, self.prefixes = max_length, prefixes
        self.val_size, self.test_size, self.seed = val_size, test_size, seed
        self.min_freq, self.max_vocab_size = min_freq, max_vocab_size
        self.batch_size, self.max_tokens, self.num_workers = batch_size, max_tokens, num_workers
        self.src_vocab: Vocab | None = None
        self.tgt_vocab: Vocab | None = None
        self.datasets: dict[str, PairDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        stats: Counter = Counter()
        pairs = filter_pairs(
            self.corpus.pairs(stats),
            self.normalization,
            self.direction,
            self.max_length,
            self.prefixes,
            stats,
        )
        report(stats, self.corpus.describe())
        train, val, test = split_by_source(pairs, self.val_size, self.test_size, self.seed)
        self.src_vocab = Vocab.build((s for s, _ in train), self.min_freq, self.max_vocab_size)
        self.tgt_vocab = Vocab.build((t for _, t in train), self.min_freq, self.max_vocab_size)
        for name, split in (("train", train), ("val", val), ("test", test)):
            self.datasets[name] = self._encode(split, with_refs=name != "train")
        log.info(
            "pairs train/val/test = %d/%d/%d; vocab src/tgt = %d/%d",
            len(train), len(val), len(test), len(self.src_vocab), len(self.tgt_vocab),
        )  # fmt: skip

    def _encode(self, pairs: list[tuple[str, str]], with_refs: bool) -> PairDataset:
        def ids(vocab: Vocab, s: str) -> np.ndarray:
            return np.asarray(vocab.encode(s), dtype=np.int64)

        src = [ids(self.src_vocab, s) for s, _ in pairs]
        tgt = [ids(self.tgt_vocab, t) for _, t in pairs]
        return PairDataset(src, tgt, [t for _, t in pairs] if with_refs else None)

    def data_config(self) -> dict:
        """What translation needs to reproduce this data's preprocessing (stored in checkpoints)."""
        return {
            "normalization": self.normalization,
            "direction": self.direction,
            "max_length": self.max_length,
        }

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        ds = self.datasets[name]
        lengths = [max(len(s), len(t)) for s, t in zip(ds.src, ds.tgt, strict=True)]
        sampler = BucketBatchSampler(lengths, self.batch_size, self.max_tokens, shuffle, self.seed)
        return DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
