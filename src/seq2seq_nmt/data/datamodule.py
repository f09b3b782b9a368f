"""LightningDataModule: corpus -> normalised, filtered, split pairs -> tokenizers -> padded batches."""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from seq2seq_nmt.data.batch import collate
from seq2seq_nmt.data.bounds import DEFAULT_MAX_SENTENCE_TOKENS, kept
from seq2seq_nmt.data.cache import Ragged, Settings, prepare
from seq2seq_nmt.data.corpus import Corpus, check_corpus
from seq2seq_nmt.data.io import CorpusError
from seq2seq_nmt.data.preprocess import per_side, report, resolve_prefixes
from seq2seq_nmt.data.sampler import BucketBatchSampler
from seq2seq_nmt.data.tokenizer import Tokenizer, TokenizerTrainer, Words

log = logging.getLogger(__name__)


def log_split(report: dict) -> None:
    """Log how the splits were made and how much of val/test occurs in training (0.00% unless
    an external set overlaps itself)."""
    if "groups" in report:
        log.info(
            "split by sentence groups: %d groups, the largest %d pairs",
            report["groups"], report["largest_group"],
        )  # fmt: skip
    for name in ("val", "test"):
        if (removed := report.get(f"train_pairs_removed_for_{name}")) is not None:
            log.info(
                "%s: external set; %d training pairs sharing a sentence removed", name, removed
            )
        if (o := report["overlap"].get(name)) is not None:
            log.info(
                "%s sentences also in training: sources %.2f%%, targets %.2f%%",
                name, o["src_in_train_pct"], o["tgt_in_train_pct"],
            )  # fmt: skip


class PairDataset(Dataset):
    """Encoded (source ids, target ids) pairs, with the target sentences as BLEU references;
    ``index``: the pairs kept (None: all)."""

    def __init__(
        self,
        src: list[np.ndarray],
        tgt: list[np.ndarray],
        refs: list[str] | None = None,
        index: np.ndarray | None = None,
    ):
        self.src, self.tgt, self.refs = src, tgt, refs
        self.index = np.arange(len(src)) if index is None else index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, str | None]:
        j = int(self.index[i])
        return self.src[j], self.tgt[j], self.refs[j] if self.refs is not None else None

    def lengths(self) -> np.ndarray:
        """Each pair's longer side, for length bucketing."""
        return np.maximum(_lengths(self.src), _lengths(self.tgt))[self.index]


def _lengths(seqs: Any) -> np.ndarray:
    return seqs.lengths() if isinstance(seqs, Ragged) else np.array([len(s) for s in seqs])


class ResumableLoader(DataLoader):
    """A DataLoader over a ``BucketBatchSampler`` whose place in the epoch goes into checkpoints.

    Lightning saves ``state_dict`` with the loops and calls ``load_state_dict`` on resume. The
    position counts the batches this loader has handed out, not those its workers prefetched.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._epoch, self._yielded = 0, 0

    def __iter__(self):
        sampler = self.batch_sampler  # read when iteration starts, after Lightning's set_epoch
        self._epoch, self._yielded = sampler.epoch, sampler.resume_at
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self._epoch, "consumed": self._yielded}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)


class TranslationDataModule(pl.LightningDataModule):
    """Trains the tokenizers on the training split and serves length-bucketed padded batches."""

    def __init__(
        self,
        corpus: Corpus,
        normalization: str = "tutorial",
        src_lang: str = "fr",
        tgt_lang: str = "en",
        max_length: int | None = 10,
        prefixes: Any = None,
        val_size: float = 0.05,
        test_size: float = 0.05,
        min_freq: Any = 1,
        max_vocab_size: Any = None,
        batch_size: int = 64,
        max_tokens: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        val_corpus: Corpus | None = None,
        test_corpus: Corpus | None = None,
        sampling: str = "bucket",
        tokenizer: TokenizerTrainer | None = None,
        pair: str | None = None,
        max_sentence_tokens: int = DEFAULT_MAX_SENTENCE_TOKENS,
    ):
        """``src_lang``/``tgt_lang``: the language codes of the direction (the corpus reads them).
        ``min_freq``/``max_vocab_size``: one value, or per side ``{src: .., tgt: ..}`` (or per
        language ``{fr: .., en: ..}``), for ``tokenizer=words``. ``tokenizer``: a trainer from
        ``conf/tokenizer/`` (default ``tokenizer.Words``); one with its own ``normalization``
        (sentencepiece) cleans with that instead of ``normalization``. ``pair``: the language
        pair of a corpus that has several (``dataset=europarl``), composed into the corpus;
        checked here to hold both languages. ``cache_dir``: where preprocessed data is cached (None:
        rebuilt on every setup). ``val_corpus``/``test_corpus``: external evaluation sets used
        instead of a slice of ``corpus``. ``sampling``: ``bucket`` (each training pair once an
        epoch) or ``replacement`` (pairs drawn with replacement, as the tutorial's loop does).
        ``max_sentence_tokens``: pairs with a longer side are dropped from every split (``bounds``).
        Settings are checked once, with every config key, in ``seq2seq_nmt.config``."""
        super().__init__()
        self.tokenizer: TokenizerTrainer = tokenizer or Words()
        self.normalization = self.tokenizer.normalization or normalization
        self.corpus, self.langs = corpus, (src_lang, tgt_lang)
        check_corpus(corpus)
        if tuple(corpus.langs) != self.langs:
            raise CorpusError(
                f"the corpus reads {'-'.join(corpus.langs)}, but dataset.src_lang/tgt_lang are "
                f"{src_lang}-{tgt_lang}"
            )
        if pair is not None and set(pair.split("-")) != set(self.langs):
            raise CorpusError(
                f"dataset.pair={pair} does not hold dataset.src_lang/tgt_lang {src_lang}-{tgt_lang}"
            )
        self.max_length, self.prefixes = max_length, prefixes
        self.val_size, self.test_size, self.seed = val_size, test_size, seed
        self.min_freq, self.max_vocab_size = min_freq, max_vocab_size
        self.batch_size, self.max_tokens, self.num_workers = batch_size, max_tokens, num_workers
        self.cache_dir, self.eval_sets = cache_dir, {"val": val_corpus, "test": test_corpus}
        self.sampling, self.max_sentence_tokens = sampling, max_sentence_tokens
        self.split_report: dict = {}  # set by setup(): groups, removed pairs, overlap
        self.cache_key: str | None = None  # set by setup(): the preprocessed data's key
        self.src_tokenizer: Tokenizer | None = None
        self.tgt_tokenizer: Tokenizer | None = None
        self.datasets: dict[str, PairDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        data = prepare(self.corpus, self.settings(), self.cache_dir, self.eval_sets, self.tokenizer)
        self.cache_key = data.key
        self.src_tokenizer, self.tgt_tokenizer = data.src_tokenizer, data.tgt_tokenizer
        self.split_report = data.split_report
        self.datasets = {
            name: PairDataset(
                *split, kept(_lengths(split[0]), _lengths(split[1]), self.max_sentence_tokens, name)
            )
            for name, split in data.splits.items()
        }
        report(data.stats, self.corpus.describe())
        sizes = "/".join(str(len(ds)) for ds in self.datasets.values())
        oov = "/".join("n/a" if r is None else f"{100 * r:.2f}%" for r in data.oov.values())
        log.info(
            "%s, %s tokenizer, cleaning %r: pairs train/val/test = %s; vocab src/tgt = %d/%d; "
            "validation OOV src/tgt = %s",
            self.direction, self.tokenizer.kind, self.normalization, sizes,
            len(self.src_tokenizer), len(self.tgt_tokenizer), oov,
        )  # fmt: skip
        log.info("BLEU references: %s", self.references())
        log_split(data.split_report)

    @property
    def direction(self) -> str:
        """``<src_lang>-<tgt_lang>``."""
        return "-".join(self.langs)

    def references(self) -> str:
        """What the val/test references are, in words for the log."""
        if self.tgt_tokenizer is not None and self.tgt_tokenizer.detokenizes:
            return "the raw target sentences (whitespace collapsed), against detokenised output"
        return f"the target sentences cleaned with {self.normalization!r}, as the training targets"

    def settings(self) -> Settings:
        """The preprocessing settings (with the corpus files, they make the cache key)."""
        min_freq = per_side(self.min_freq, self.langs, default=1)
        max_size = per_side(self.max_vocab_size, self.langs)
        return Settings(
            self.normalization, self.langs, self.max_length, resolve_prefixes(self.prefixes),
            self.val_size, self.test_size, self.seed, min_freq, max_size,
            self.tokenizer.settings(),
        )  # fmt: skip

    def data_config(self) -> dict:
        """What translation needs to reproduce this data's preprocessing (stored in checkpoints)."""
        return {
            "normalization": self.normalization,
            "src_lang": self.langs[0],
            "tgt_lang": self.langs[1],
            "max_length": self.max_length,
        }

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        ds = self.datasets[name]
        sampler = BucketBatchSampler(
            ds.lengths(), self.batch_size, self.max_tokens, shuffle, self.seed,
            replacement=shuffle and self.sampling == "replacement",
        )  # fmt: skip
        return (ResumableLoader if shuffle else DataLoader)(
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
