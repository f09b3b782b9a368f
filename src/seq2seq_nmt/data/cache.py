"""Preprocessed data (token ids, vocabularies, references), built streaming, cached once per key.

The build reads the corpus once: each kept pair's cleaned sides (and raw target) are written to
temporary text files and only a hash of each side is kept in memory. The splits come from the
hashes; the tokenizers are trained on the training split's lines; a last pass encodes every
line in blocks. Memory stays bounded by the tokenizers and a few bytes per pair, whatever the
corpus size.

On disk, per split and side: ``<split>.<side>.ids`` (the int32 ids of all its sentences, EOS
included, end to end) and ``<split>.<side>.offsets.npy``; ``<split>.refs.txt`` (val/test
references: the cleaned targets for ``words``, the raw targets for a detokenising tokenizer),
``tokenizers.pt`` (plain types) and ``meta.json``. A cache entry is a folder named by the key, built
in a temporary folder and renamed into place under a file lock (``io.atomic_write``): one job
builds, others wait.
"""

import hashlib
import json
import logging
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout
from tqdm import tqdm

from seq2seq_nmt.data.corpus import Corpus, check_corpus
from seq2seq_nmt.data.io import CorpusError, atomic_write, unwritable
from seq2seq_nmt.data.preprocess import clean_pairs
from seq2seq_nmt.data.split import SPLIT_NAMES as SPLITS
from seq2seq_nmt.data.split import TEST, TRAIN, VAL, assign_splits, overlap, sentence_key
from seq2seq_nmt.data.tokenizer import Tokenizer, TokenizerTrainer, Words, from_dict
from seq2seq_nmt.data.vocab import UNK

log = logging.getLogger(__name__)

FORMAT = 4  # bump whenever the preprocessing output changes for the same settings
SIDES = ("src", "tgt")
TEXTS = (*SIDES, "ref")  # the temporary text files: cleaned source, cleaned target, raw target
BLOCK = 1 << 16  # lines per encoding block


@dataclass(frozen=True)
class Settings:
    """Everything the preprocessing depends on besides the corpus files."""

    normalization: str
    langs: tuple[str, str]  # (source, target) language codes
    max_length: int | None
    prefixes: tuple[str, ...] | None
    val_size: float
    test_size: float
    seed: int
    min_freq: tuple[int, int]  # (source, target), words only
    max_size: tuple[int | None, int | None]
    tokenizer: dict = field(default_factory=lambda: Words().settings())


class Ragged:
    """Variable-length id sequences stored as one flat array plus offsets (memory-mappable)."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat, self.offsets = flat, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} sequences")
        i %= len(self)
        return np.array(self.flat[self.offsets[i] : self.offsets[i + 1]], dtype=np.int64)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class Prepared:
    """Tokenizers and, per split, (source ids, target ids, references or None)."""

    key: str | None
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    splits: dict[str, tuple[Ragged, Ragged, list[str] | None]]
    stats: Counter
    oov: dict[str, float | None]  # validation OOV (UNK) rate per side
    split_report: dict  # groups, pairs removed for external sets, val/test overlap with training


def cache_key(
    corpus: Corpus, settings: Settings, eval_sets: dict[str, Corpus] | None = None
) -> str:
    """Hash of the corpus identity (files, sizes, times), the external evaluation sets' and the
    settings (the tokenizer's included); a one-line CorpusError for a corpus without
    ``identity()`` (``corpus.check_corpus``), never a silently uncached build."""
    corpora = {"corpus": corpus, **(eval_sets or {})}
    for c in corpora.values():
        check_corpus(c)
    ids = {name: c.identity() for name, c in corpora.items()}
    blob = json.dumps({"format": FORMAT, **ids, **asdict(settings)})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CacheError(CorpusError):
    """The cache folder cannot take the preprocessed data (a CorpusError, so ``train.py`` reports
    it in one line and exit status 2)."""


def check_cache_folder(folder: Path) -> None:
    """Raise a CacheError naming ``folder`` when it is not a folder or cannot be written."""
    if (why := unwritable(folder)) is not None:
        raise CacheError(f"cannot write to {folder} (dataset.cache_dir, preprocessed data): {why}")


def prepare(
    corpus: Corpus,
    settings: Settings,
    cache_dir: str | Path | None = None,
    eval_sets: dict[str, Corpus | None] | None = None,
    tokenizer: TokenizerTrainer | None = None,
) -> Prepared:
    """Load the cached preprocessing of ``corpus`` with ``settings``, building it first if needed.

    ``eval_sets``: external corpora for ``val`` and/or ``test`` (see ``split.assign_splits``).
    ``tokenizer``: the trainer (``tokenizer.Words`` by default) whose ``settings()`` are
    ``settings.tokenizer``. A cache folder that cannot take a new entry is a one-line CacheError
    before preprocessing (an entry already there is read even from a read-only folder)."""
    eval_sets = {k: v for k, v in (eval_sets or {}).items() if v is not None}
    tokenizer = tokenizer or Words()
    if tokenizer.settings() != settings.tokenizer:  # the key would name another tokenizer
        raise ValueError(
            f"settings.tokenizer {settings.tokenizer} is not the tokenizer's {tokenizer.settings()}"
        )
    key = cache_key(corpus, settings, eval_sets)
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="seq2seq-nmt-") as tmp:
            _build(corpus, settings, tokenizer, Path(tmp), eval_sets, Path(tmp))
            return load(Path(tmp), None, mmap=False)  # not cached: no key to name
    final = Path(cache_dir) / key
    if final.is_dir():
        log.info("reusing preprocessed data %s", final)
    else:
        check_cache_folder(final.parent)
        with _locked(final.parent / f"{key}.lock", final):
            if not final.is_dir():
                try:
                    with atomic_write(final, folder=True) as tmp:
                        _build(corpus, settings, tokenizer, tmp, eval_sets, final)
                except OSError as e:  # the rename into place failed
                    raise _write_error(final, e) from e
                log.info("preprocessed data cached in %s", final)
    return load(final, key)


def _build(
    corpus: Corpus,
    settings: Settings,
    tokenizer: TokenizerTrainer,
    out: Path,
    eval_sets: dict[str, Corpus],
    where: Path,
) -> None:
    """``build`` into ``out``; a failed write (a full disk, say) is a one-line CacheError naming
    ``where``, the folder the data is for."""
    try:
        build(corpus, settings, out, eval_sets, tokenizer)
    except OSError as e:
        raise _write_error(where, e) from e


def _write_error(where: Path, e: OSError) -> CacheError:
    return CacheError(f"cannot write the preprocessed data to {where}: {e.strerror or e}")


@contextmanager
def _locked(path: Path, what: Path) -> Iterator[None]:
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another job is preparing %s; waiting for it", what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _write_texts(pairs: Iterable[tuple[str, str, str]], out: Path) -> dict[str, np.ndarray]:
    """Stream (source, target, raw target) to ``out/<text>.txt.tmp``, a line each; return each
    side's sentence hashes."""
    keys = {side: array("Q") for side in SIDES}
    files = {name: (out / f"{name}.txt.tmp").open("w", encoding="utf-8") for name in TEXTS}
    try:
        for triple in pairs:
            for name, text in zip(TEXTS, triple, strict=True):
                files[name].write(text + "\n")
            keys["src"].append(sentence_key(triple[0]))
            keys["tgt"].append(sentence_key(triple[1]))
    finally:
        for f in files.values():
            f.close()
    return {side: np.frombuffer(keys[side], dtype=np.uint64) for side in SIDES}


def _lines(path: Path, split: np.ndarray, keep: tuple[int, ...]) -> Iterator[str]:
    """The lines of a ``.txt.tmp`` file whose pair's split is one of ``keep``."""
    with path.open(encoding="utf-8", newline="\n") as f:
        for line, k in zip(f, split.tolist(), strict=True):
            if k in keep:
                yield line[:-1]


def _pairs(
    corpus: Corpus, eval_sets: dict[str, Corpus], s: Settings, stats: Counter, origin: array
) -> Iterator[tuple[str, str, str]]:
    """The corpus's cleaned pairs, then each external evaluation set's (cleaned alike, without the
    prefix filter, counted under ``<split>_...``); each pair's origin split id goes to ``origin``."""
    parts = [(TRAIN, corpus, s.prefixes)]
    parts += [(SPLITS.index(name), c, None) for name, c in eval_sets.items()]
    for k, part, prefixes in parts:
        counts = stats if k == TRAIN else Counter()
        for pair in clean_pairs(
            part.pairs(counts), s.normalization, s.langs, s.max_length, prefixes, counts
        ):
            origin.append(k)
            yield pair
        if k != TRAIN:
            stats.update({f"{SPLITS[k]}_{name}": n for name, n in counts.items()})


def _blocks(path: Path) -> Iterator[list[str]]:
    """Successive blocks of ``BLOCK`` lines of a ``.txt.tmp`` file."""
    with path.open(encoding="utf-8", newline="\n") as f:
        block = []
        for line in f:
            block.append(line[:-1])
            if len(block) == BLOCK:
                yield block
                block = []
        if block:
            yield block


def _write_side(tmp: Path, split: np.ndarray, tokenizer: Tokenizer, out: Path) -> float | None:
    """Encode every line of ``tmp`` with ``tokenizer`` into each split's ids and offsets; return
    the validation UNK rate (EOS not counted)."""
    side, lengths = tmp.name.split(".")[0], {k: [np.zeros(1, np.int64)] for k in range(len(SPLITS))}
    files = {k: (out / f"{name}.{side}.ids").open("wb") for k, name in enumerate(SPLITS)}
    unk = tokens = first = 0
    try:
        for block in _blocks(tmp):
            encoded = tokenizer.encode_batch(block)
            block_split = split[first : first + len(block)]
            first += len(block)
            sizes = np.fromiter(map(len, encoded), np.int64, len(encoded))
            flat = np.fromiter((i for seq in encoded for i in seq), np.int32, int(sizes.sum()))
            token_split = np.repeat(block_split, sizes)
            for k, f in files.items():
                flat[token_split == k].tofile(f)
                lengths[k].append(sizes[block_split == k])
            unk += int(np.count_nonzero(flat[token_split == VAL] == UNK))
            tokens += int(sizes[block_split == VAL].sum() - np.count_nonzero(block_split == VAL))
    finally:
        for f in files.values():
            f.close()
    for k, name in enumerate(SPLITS):
        np.save(out / f"{name}.{side}.offsets.npy", np.cumsum(np.concatenate(lengths[k])))
    return unk / tokens if tokens else None


def build(
    corpus: Corpus,
    settings: Settings,
    out: Path,
    eval_sets: dict[str, Corpus] | None = None,
    tokenizer: TokenizerTrainer | None = None,
) -> None:
    """Read, clean, filter and split ``corpus`` (and the external evaluation sets), train the
    tokenizers on the training split and encode every split into the folder ``out``."""
    stats, origin, s = Counter(), array("b"), settings
    tokenizer = tokenizer or Words()
    log.info("preprocessing %s (once for these settings)", corpus.describe())
    pairs = _pairs(corpus, eval_sets or {}, s, stats, origin)
    bar = tqdm(pairs, desc="preprocessing", unit=" pairs", mininterval=2, disable=None)
    keys = _write_texts(bar, out)
    origin_ids = np.frombuffer(origin, dtype=np.int8)
    if not np.any(origin_ids == TRAIN):
        raise CorpusError(
            f"{corpus.describe()}: no pairs left after cleaning and filtering ({dict(stats)})"
        )
    try:
        split, report = assign_splits(
            keys["src"], keys["tgt"], origin_ids, s.val_size, s.test_size, s.seed
        )
    except ValueError as e:
        raise CorpusError(f"{corpus.describe()}: {e}") from None
    if not np.any(split == TRAIN):
        raise CorpusError(f"{corpus.describe()}: no training pairs left after removing overlaps")
    report["overlap"] = overlap(keys["src"], keys["tgt"], split)
    texts = {name: out / f"{name}.txt.tmp" for name in TEXTS}
    toks = tokenizer.train(
        *(lambda side=side: _lines(texts[side], split, (TRAIN,)) for side in SIDES),
        s.min_freq, s.max_size,
    )  # fmt: skip
    oov = {
        side: _write_side(texts[side], split, tok, out)
        for side, tok in zip(SIDES, toks, strict=True)
    }
    refs = texts["ref" if toks[1].detokenizes else "tgt"]
    for k in (VAL, TEST):
        text = "".join(r + "\n" for r in _lines(refs, split, (k,)))
        (out / f"{SPLITS[k]}.refs.txt").write_text(text, encoding="utf-8")
    for path in texts.values():
        path.unlink()
    torch.save(
        {side: tok.to_dict() for side, tok in zip(SIDES, toks, strict=True)}, out / "tokenizers.pt"
    )
    sizes = {name: int(np.count_nonzero(split == k)) for k, name in enumerate(SPLITS)}
    meta = {
        "format": FORMAT,
        "corpus": corpus.describe(),
        "settings": asdict(s),
        "stats": dict(stats),
    }
    meta |= {"sizes": sizes, "oov": oov, "split": report}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


def load(path: Path, key: str | None, mmap: bool = True) -> Prepared:
    """A built folder as arrays (memory-mapped when ``mmap``) and tokenizers."""
    meta = json.loads((path / "meta.json").read_text())
    toks = torch.load(path / "tokenizers.pt", weights_only=True)

    def ragged(name: str, side: str) -> Ragged:
        ids, offsets = path / f"{name}.{side}.ids", np.load(path / f"{name}.{side}.offsets.npy")
        if not offsets[-1]:
            return Ragged(np.zeros(0, np.int32), offsets)
        flat = np.memmap(ids, np.int32, "r") if mmap else np.fromfile(ids, np.int32)
        return Ragged(flat, offsets)

    def refs(name: str) -> list[str] | None:
        if name == "train":
            return None
        return (path / f"{name}.refs.txt").read_text(encoding="utf-8").split("\n")[:-1]

    splits = {name: (ragged(name, "src"), ragged(name, "tgt"), refs(name)) for name in SPLITS}
    return Prepared(
        key,
        from_dict(toks["src"]),
        from_dict(toks["tgt"]),
        splits,
        Counter(meta["stats"]),
        meta["oov"],
        meta["split"],
    )
