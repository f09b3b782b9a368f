"""Preprocessed data (token ids, vocabularies, references), built streaming, cached once per key.

The build reads the corpus once: each kept pair is encoded with provisional word ids, written to
disk in blocks, and only a hash of its source is kept in memory; splits, vocabularies (counted on
the training split) and the final ids then come from block-wise numpy passes over those files.
Memory stays bounded by the vocabularies and a few bytes per pair, whatever the corpus size.

On disk, per split and side: ``<split>.<side>.npy`` (the int32 ids of all its sentences, EOS
included, end to end) and ``<split>.<side>.offsets.npy``; ``<split>.refs.txt`` (val/test target
sentences), ``vocab.json`` and ``meta.json``. A cache entry is a folder named by the key, built
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from .io import CorpusError, atomic_write, unwritable
from .preprocess import clean_pairs
from .split import SPLIT_NAMES as SPLITS
from .split import TEST, TRAIN, VAL, assign_splits, overlap, sentence_key
from .vocab import EOS, SPECIALS, UNK, Vocab

log = logging.getLogger(__name__)

FORMAT = 3  # bump whenever the preprocessing output changes for the same settings
SIDES = ("src", "tgt")
BLOCK = 1 << 18  # pairs per buffered write and per numpy pass


@dataclass(frozen=True)
class Settings:
    """Everything the preprocessing depends on besides the corpus files."""

    normalization: str
    direction: str
    max_length: int | None
    prefixes: tuple[str, ...] | None
    val_size: float
    test_size: float
    seed: int
    min_freq: tuple[int, int]  # (source, target)
    max_size: tuple[int | None, int | None]


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
    """Vocabularies and, per split, (source ids, target ids, references or None)."""

    key: str | None
    src_vocab: Vocab
    tgt_vocab: Vocab
    splits: dict[str, tuple[Ragged, Ragged, list[str] | None]]
    stats: Counter
    oov: dict[str, float | None]  # validation OOV rate per side
    split_report: dict  # groups, pairs removed for external sets, val/test overlap with training


def cache_key(
    corpus: Any, settings: Settings, eval_sets: dict[str, Any] | None = None
) -> str | None:
    """Hash of the corpus identity (files, sizes, times), the external evaluation sets' and the
    settings; None when a corpus has no ``identity()`` (then nothing is cached)."""
    corpora = {"corpus": corpus, **(eval_sets or {})}
    if not all(hasattr(c, "identity") for c in corpora.values()):
        return None
    ids = {name: c.identity() for name, c in corpora.items()}
    blob = json.dumps({"format": FORMAT, **ids, **asdict(settings)})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CacheError(CorpusError):
    """The cache folder cannot take the preprocessed data (a CorpusError, so ``train.py`` reports
    it in one line and exit status 2)."""


def check_writable(folder: Path) -> None:
    """Raise a CacheError naming ``folder`` when it is not a folder or cannot be written."""
    if (why := unwritable(folder)) is not None:
        raise CacheError(f"cannot write to {folder} (dataset.cache_dir, preprocessed data): {why}")


def prepare(
    corpus: Any,
    settings: Settings,
    cache_dir: str | Path | None = None,
    eval_sets: dict[str, Any] | None = None,
) -> Prepared:
    """Load the cached preprocessing of ``corpus`` with ``settings``, building it first if needed.

    ``eval_sets``: external corpora for ``val`` and/or ``test`` (see ``split.assign_splits``).
    A cache folder that cannot take a new entry is a one-line CacheError before preprocessing
    (an entry already there is read even from a read-only folder)."""
    eval_sets = {k: v for k, v in (eval_sets or {}).items() if v is not None}
    key = cache_key(corpus, settings, eval_sets)
    if key is None or cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="seq2seq-nmt-") as tmp:
            _build(corpus, settings, Path(tmp), eval_sets, Path(tmp))
            return load(Path(tmp), key, mmap=False)
    final = Path(cache_dir) / key
    if final.is_dir():
        log.info("reusing preprocessed data %s", final)
    else:
        check_writable(final.parent)
        with _locked(final.parent / f"{key}.lock", final):
            if not final.is_dir():
                with atomic_write(final, folder=True) as tmp:
                    _build(corpus, settings, tmp, eval_sets, final)
                log.info("preprocessed data cached in %s", final)
    return load(final, key)


def _build(
    corpus: Any, settings: Settings, out: Path, eval_sets: dict[str, Any], where: Path
) -> None:
    """``build`` into ``out``; a failed write (a full disk, say) is a one-line CacheError naming
    ``where``, the folder the data is for."""
    try:
        build(corpus, settings, out, eval_sets)
    except OSError as e:
        raise CacheError(f"cannot write the preprocessed data to {where}: {e.strerror or e}") from e


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


class _WordIds(dict):
    """Provisional word ids, numbered in order of first appearance after the specials."""

    def __missing__(self, word: str) -> int:
        self[word] = i = len(self) + len(SPECIALS)
        return i


def _encode(pairs: Iterable[tuple[str, str]], out: Path) -> tuple[dict, dict, dict]:
    """Stream (src, tgt) pairs to ``out/<side>.tmp`` as provisional ids with EOS; return, per
    side, the words by id, each pair's sentence hash and the offsets."""
    ids = {side: _WordIds() for side in SIDES}
    keys = {side: array("Q") for side in SIDES}
    lengths = {side: array("q") for side in SIDES}
    bufs = {side: array("i") for side in SIDES}
    files = {side: (out / f"{side}.tmp").open("wb") for side in SIDES}

    def flush() -> None:
        for side in SIDES:
            bufs[side].tofile(files[side])
            del bufs[side][:]

    try:
        for n, pair in enumerate(pairs, 1):
            for side, sentence in zip(SIDES, pair, strict=True):
                keys[side].append(sentence_key(sentence))
                side_ids = ids[side]
                seq = [side_ids[w] for w in sentence.split()]
                seq.append(EOS)
                bufs[side].extend(seq)
                lengths[side].append(len(seq))
            if n % BLOCK == 0:
                flush()
        flush()
    finally:
        for f in files.values():
            f.close()
    words = {side: [*SPECIALS, *ids[side]] for side in SIDES}
    offsets = {side: np.concatenate([[0], np.cumsum(lengths[side])]) for side in SIDES}
    hashes = {side: np.frombuffer(keys[side], dtype=np.uint64) for side in SIDES}
    return words, hashes, offsets


def _pairs(
    corpus: Any, eval_sets: dict[str, Any], s: Settings, stats: Counter, origin: array
) -> Iterator[tuple[str, str]]:
    """The corpus's cleaned pairs, then each external evaluation set's (cleaned alike, without the
    prefix filter, counted under ``<split>_...``); each pair's origin split id goes to ``origin``."""
    parts = [(TRAIN, corpus, s.prefixes)]
    parts += [(SPLITS.index(name), c, None) for name, c in eval_sets.items()]
    for k, part, prefixes in parts:
        counts = stats if k == TRAIN else Counter()
        for pair in clean_pairs(
            part.pairs(counts), s.normalization, s.direction, s.max_length, prefixes, counts
        ):
            origin.append(k)
            yield pair
        if k != TRAIN:
            stats.update({f"{SPLITS[k]}_{name}": n for name, n in counts.items()})


def _blocks(
    path: Path, offsets: np.ndarray, split: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first pair, token ids, split of each token) for successive blocks of pairs of a .tmp file."""
    lengths = np.diff(offsets)
    with path.open("rb") as f:
        for first in range(0, len(split), BLOCK):
            last = min(first + BLOCK, len(split))
            tokens = np.fromfile(f, dtype=np.int32, count=int(offsets[last] - offsets[first]))
            yield first, tokens, np.repeat(split[first:last], lengths[first:last])


def _npy_writer(path: Path, n: int):
    """An open file holding the header of an int32 .npy of ``n`` items; append the data."""
    f = path.open("wb")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int32)), "fortran_order": False}
    np.lib.format.write_array_header_1_0(f, header | {"shape": (n,)})
    return f


def _write_side(
    tmp: Path, offsets: np.ndarray, split: np.ndarray, vocab: Vocab, words: list[str], out: Path
) -> tuple[float | None, dict[int, list[str]]]:
    """Map provisional ids to ``vocab`` ids and write each split's arrays; return the validation
    OOV rate and, for the target side, the val/test sentences (rebuilt from the ids)."""
    side = tmp.stem
    lut = np.fromiter((vocab.word2index.get(w, UNK) for w in words), np.int32, len(words))
    lengths, files = np.diff(offsets), {}
    for k, name in enumerate(SPLITS):
        sel = lengths[split == k]
        np.save(out / f"{name}.{side}.offsets.npy", np.concatenate([[0], np.cumsum(sel)]))
        files[k] = _npy_writer(out / f"{name}.{side}.npy", int(sel.sum()))
    unk, sentences = 0, {1: [], 2: []}
    try:
        for first, tokens, token_split in _blocks(tmp, offsets, split):
            mapped = lut[tokens]
            for k, f in files.items():
                mapped[token_split == k].tofile(f)
            unk += int(np.count_nonzero(mapped[token_split == VAL] == UNK))
            local = offsets[first : first + BLOCK + 1] - offsets[first]
            block = split[first : first + BLOCK]
            for j in np.flatnonzero(np.isin(block, (VAL, TEST))) if side == "tgt" else ():
                seq = tokens[local[j] : local[j + 1] - 1].tolist()
                sentences[int(split[first + j])].append(" ".join(words[t] for t in seq))
    finally:
        for f in files.values():
            f.close()
    n_val = int(lengths[split == VAL].sum() - np.count_nonzero(split == VAL))  # EOS not counted
    return (unk / n_val if n_val else None), sentences


def build(
    corpus: Any, settings: Settings, out: Path, eval_sets: dict[str, Any] | None = None
) -> None:
    """Read, clean, filter, split, count and encode ``corpus`` (and the external evaluation sets)
    into the folder ``out``."""
    stats, origin, s = Counter(), array("b"), settings
    log.info("preprocessing %s (once for these settings)", corpus.describe())
    pairs = _pairs(corpus, eval_sets or {}, s, stats, origin)
    bar = tqdm(pairs, desc="preprocessing", unit=" pairs", mininterval=2, disable=None)
    words, keys, offsets = _encode(bar, out)
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
    vocabs, oov = {}, {}
    for i, side in enumerate(SIDES):
        tmp = out / f"{side}.tmp"
        counts = np.zeros(len(words[side]), dtype=np.int64)
        for _, tokens, token_split in _blocks(tmp, offsets[side], split):
            counts += np.bincount(tokens[token_split == TRAIN], minlength=len(counts))
        counted = {
            words[side][w]: int(counts[w])
            for w in np.flatnonzero(counts[len(SPECIALS) :]) + len(SPECIALS)
        }
        vocab = Vocab.from_counts(counted, s.min_freq[i], s.max_size[i])
        oov[side], sentences = _write_side(tmp, offsets[side], split, vocab, words[side], out)
        tmp.unlink()
        vocabs[side] = vocab.to_dict()
        if side == "tgt":  # references: the normalised target sentences
            for k, refs in sentences.items():
                text = "".join(r + "\n" for r in refs)
                (out / f"{SPLITS[k]}.refs.txt").write_text(text, encoding="utf-8")
    (out / "vocab.json").write_text(json.dumps(vocabs))
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
    """A built folder as arrays (memory-mapped when ``mmap``) and vocabularies."""
    meta, vocabs = (json.loads((path / f).read_text()) for f in ("meta.json", "vocab.json"))

    def ragged(name: str, side: str) -> Ragged:
        flat = np.load(path / f"{name}.{side}.npy", mmap_mode="r" if mmap else None)
        return Ragged(flat, np.load(path / f"{name}.{side}.offsets.npy"))

    def refs(name: str) -> list[str] | None:
        if name == "train":
            return None
        return (path / f"{name}.refs.txt").read_text(encoding="utf-8").split("\n")[:-1]

    splits = {name: (ragged(name, "src"), ragged(name, "tgt"), refs(name)) for name in SPLITS}
    return Prepared(
        key,
        Vocab.from_dict(vocabs["src"]),
        Vocab.from_dict(vocabs["tgt"]),
        splits,
        Counter(meta["stats"]),
        meta["oov"],
        meta["split"],
    )
