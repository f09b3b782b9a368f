"""Parallel corpora by ``_target_``: each yields raw (source, target) pairs for the languages
``langs`` = (source, target) it is asked for, and counts what it had to skip or repair. What a
corpus must provide is the ``Corpus`` protocol.

Files may be gzip, bz2 or xz compressed; one that is not text is refused (see ``io``)."""

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

from seq2seq_nmt.data.download import CorpusError, locate
from seq2seq_nmt.data.io import open_binary
from seq2seq_nmt.data.preprocess import ENGLISH

SAMPLE_PATH = Path(__file__).parents[1] / "assets" / "eng-fra.txt"
# ISO 639-3 codes of the Tatoeba/manythings.org file names (``deu-eng.txt``), by ISO 639-1 code
TATOEBA_CODES: dict[str, str] = {
    "ar": "ara", "cs": "ces", "de": "deu", "el": "ell", "es": "spa", "fi": "fin", "fr": "fra",
    "he": "heb", "hu": "hun", "it": "ita", "ja": "jpn", "ko": "kor", "nl": "nld", "pl": "pol",
    "pt": "por", "ru": "rus", "sv": "swe", "tr": "tur", "uk": "ukr", "zh": "cmn",
}  # fmt: skip


class Corpus(Protocol):
    """What the data module and the preprocessing cache read from a corpus."""

    langs: tuple[str, str]  # (source, target) language codes of the pairs it yields

    def pairs(self, stats: Counter) -> Iterator[tuple[str, str]]:
        """Raw (source, target) pairs, each skipped or repaired line counted in ``stats``."""
        ...

    def describe(self) -> str:
        """What it reads, for the log."""
        ...

    def identity(self) -> list:
        """Plain values that change whenever its pairs do (paths, sizes, times): the cache key."""
        ...


def check_corpus(corpus: object) -> None:
    """A one-line CorpusError when ``corpus`` lacks a member of ``Corpus`` (an ``identity()``,
    say: without it its preprocessing could not be cached)."""
    members = [*Corpus.__annotations__, *(m for m in vars(Corpus) if not m.startswith("_"))]
    if missing := [m for m in members if not hasattr(corpus, m)]:
        raise CorpusError(
            f"{type(corpus).__name__} is not a corpus: it has no {', '.join(missing)} "
            "(see the Corpus protocol in seq2seq_nmt.data.corpus)"
        )


def decode_line(raw: bytes, stats: Counter) -> str:
    """UTF-8 decode; invalid bytes are replaced (and counted), never fatal."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        stats["invalid_utf8_repaired"] += 1
        return raw.decode("utf-8", errors="replace")


def count_lines(path: Path) -> int:
    """Lines in a (possibly compressed) file, a last line without newline included."""
    n, last = 0, b"\n"
    with open_binary(path) as f:
        while block := f.read(1 << 22):
            n, last = n + block.count(b"\n"), block[-1:]
    return n + (last != b"\n")


def check_langs(langs: Sequence[str], has: Sequence[str], what: str) -> tuple[str, str]:
    """``langs`` as a (source, target) tuple; a CorpusError unless they are the languages ``has``."""
    langs = tuple(langs)
    if len(langs) != 2 or langs[0] == langs[1] or set(langs) != set(has):
        raise CorpusError(
            f"{what} holds {' and '.join(has)}, but dataset.src_lang/tgt_lang are {'-'.join(langs)}"
        )
    return langs  # type: ignore[return-value]


def aligned_lines(paths: Sequence[Path], stats: Counter) -> Iterator[tuple[str, ...]]:
    """Line i of each file, together; a CorpusError (before any line) when their lengths differ."""
    counts = [count_lines(p) for p in paths]
    if len(set(counts)) > 1:
        sizes = ", ".join(f"{p} has {n} lines" for p, n in zip(paths, counts, strict=True))
        raise CorpusError(f"misaligned parallel files: {sizes}")
    with ExitStack() as stack:
        files = [stack.enter_context(open_binary(p)) for p in paths]
        for raws in zip(*files, strict=True):
            stats["lines_read"] += 1
            yield tuple(decode_line(r, stats).rstrip("\r\n") for r in raws)


def tab_columns(path: Path, stats: Counter, width: int) -> Iterator[list[str]]:
    """The tab-separated columns of each line of ``path`` with at least ``width`` of them (blank
    lines and narrower ones are counted and skipped)."""
    with open_binary(path) as f:
        for raw in f:
            line = decode_line(raw, stats).rstrip("\r\n")
            if not line.strip():
                stats["blank_lines"] += 1
                continue
            cols = line.split("\t")
            if len(cols) < width:
                stats["lines_without_tab" if len(cols) == 1 else "lines_too_few_columns"] += 1
                continue
            stats["lines_read"] += 1
            yield cols


class FileCorpus:
    """A corpus read from the files ``names``: given ``paths``, else found in ``data_dir``, else in
    ``cache_dir``, else downloaded from ``url`` into ``cache_dir`` (see ``download.locate``)."""

    names: tuple[str, ...] = ()
    langs: tuple[str, str] = ("fr", "en")

    def __init__(
        self,
        paths: Sequence[str | Path | None] = (),
        data_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        url: str | None = None,
        download: bool = True,
    ):
        self.where = dict(
            paths=paths, data_dir=data_dir, cache_dir=cache_dir, url=url, download=download
        )
        self._files: list[Path] | None = None

    def files(self) -> list[Path]:
        """The located files (found or downloaded on first call)."""
        if self._files is None:
            self._files = locate(self.names, **self.where)
        return self._files

    def describe(self) -> str:
        return " + ".join(map(str, self.files()))

    def identity(self) -> list:
        """Path, size and modification time of each file (and the languages read from them):
        what the preprocessing cache keys on."""
        files = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in self.files()]
        return [*files, list(self.langs)]


class TatoebaCorpus(FileCorpus):
    """Tatoeba's tab-separated format, ``English<TAB>Other[<TAB>attribution]`` a line: the
    tutorial's ``eng-fra.txt`` and the per-language files of the manythings.org export.

    ``lang``: the file's other language (null: the one of ``langs`` that is not English). The
    file is ``path``, else ``file`` (default ``<ISO 639-3>-eng.txt``, e.g. ``deu-eng.txt``) in the
    data folder, the cache or downloaded from ``url``."""

    def __init__(
        self,
        path: str | Path | None = None,
        langs: Sequence[str] = ("fr", "en"),
        lang: str | None = None,
        file: str | None = None,
        **where: Any,
    ):
        if lang is None:
            if ENGLISH not in langs:
                raise CorpusError(
                    f"a Tatoeba file pairs English with another language; dataset.src_lang/"
                    f"tgt_lang ask for {'-'.join(langs)}"
                )
            lang = next((x for x in langs if x != ENGLISH), ENGLISH)
        self.langs = check_langs(langs, (lang, ENGLISH), "the Tatoeba corpus")
        self.names = (file or f"{TATOEBA_CODES.get(lang, lang)}-eng.txt",)
        self._english_first = self.langs[0] == ENGLISH
        super().__init__([path], **where)

    def pairs(self, stats: Counter) -> Iterator[tuple[str, str]]:
        (path,) = self.files()
        for en, other, *_ in tab_columns(path, stats, 2):
            yield (en, other) if self._english_first else (other, en)


class EuroparlCorpus(FileCorpus):
    """Europarl v7, any pair (``fr-en``, ``de-en``, ...): the two sentence-aligned files
    ``europarl-v7.<pair>.<lang>`` (line i of one translating line i of the other), given by
    ``paths`` (a path per language) or found / downloaded as the others are."""

    def __init__(
        self,
        pair: str = "fr-en",
        langs: Sequence[str] = ("fr", "en"),
        paths: Mapping[str, str | Path | None] | None = None,
        **where: Any,
    ):
        has = tuple(pair.split("-"))
        self.pair, self.langs = pair, check_langs(langs, has, f"Europarl {pair}")
        self.names = tuple(f"europarl-v7.{pair}.{lang}" for lang in self.langs)
        paths = dict(paths or {})
        if unknown := set(paths) - set(has):
            raise CorpusError(f"Europarl {pair}: paths for {sorted(unknown)}; give them for {has}")
        super().__init__([paths.get(lang) for lang in self.langs], **where)

    def pairs(self, stats: Counter) -> Iterator[tuple[str, str]]:
        yield from aligned_lines(self.files(), stats)  # type: ignore[misc]


class ParallelCorpus(FileCorpus):
    """Any parallel text: two aligned files ``src_path`` and ``tgt_path`` (line i of one
    translating line i of the other), or one tab-separated file ``path`` whose columns
    ``src_column`` and ``tgt_column`` (from 0) hold the sides; plain or compressed."""

    def __init__(
        self,
        src_path: str | Path | None = None,
        tgt_path: str | Path | None = None,
        path: str | Path | None = None,
        src_column: int = 0,
        tgt_column: int = 1,
        langs: Sequence[str] = ("fr", "en"),
    ):
        if bool(path) == bool(src_path or tgt_path) or bool(src_path) != bool(tgt_path):
            raise CorpusError(
                "dataset=parallel needs dataset.corpus.src_path and tgt_path (two aligned files) "
                "or dataset.corpus.path (one tab-separated file), not both"
            )
        paths = [path] if path else [src_path, tgt_path]
        self.names = tuple(Path(p).name for p in paths)
        self.langs, self.columns = tuple(langs), (src_column, tgt_column)  # type: ignore[assignment]
        super().__init__(paths)

    def pairs(self, stats: Counter) -> Iterator[tuple[str, str]]:
        files = self.files()
        if len(files) == 2:
            yield from aligned_lines(files, stats)  # type: ignore[misc]
            return
        src, tgt = self.columns
        for cols in tab_columns(files[0], stats, max(self.columns) + 1):
            yield cols[src], cols[tgt]

    def identity(self) -> list:
        return [*super().identity(), list(self.columns)]


class ConcatCorpus:
    """Several corpora read one after the other (the article's tutorial + Europarl training set)."""

    def __init__(self, corpora: Mapping[str, Corpus] | Sequence[Corpus]):
        self.corpora = list(corpora.values() if isinstance(corpora, Mapping) else corpora)
        for corpus in self.corpora:
            check_corpus(corpus)
        langs = {tuple(c.langs) for c in self.corpora}
        if len(langs) != 1:
            raise CorpusError(f"corpora of different languages concatenated: {sorted(langs)}")
        self.langs = langs.pop()

    def describe(self) -> str:
        return " + ".join(c.describe() for c in self.corpora)

    def identity(self) -> list:
        return [c.identity() for c in self.corpora]

    def pairs(self, stats: Counter) -> Iterator[tuple[str, str]]:
        for corpus in self.corpora:
            yield from corpus.pairs(stats)


class TutorialCorpus(TatoebaCorpus):
    """The PyTorch tutorial's English-French ``eng-fra.txt`` (a Tatoeba file)."""

    def __init__(
        self, path: str | Path | None = None, langs: Sequence[str] = ("fr", "en"), **where: Any
    ):
        super().__init__(path, langs, lang="fr", file="eng-fra.txt", **where)


class SampleCorpus(TutorialCorpus):
    """The small English-French corpus bundled with the package (generated by ``sample_grammar``)."""

    def __init__(self, langs: Sequence[str] = ("fr", "en")):
        super().__init__(SAMPLE_PATH, langs)


def field(row: Mapping[str, Any], key: str) -> Any:
    """``row[a][b]...`` for the dotted ``key`` ``a.b...`` (``translation.fr``)."""
    value: Any = row
    for part in key.split("."):
        value = value[part]
    return value


class HuggingFaceCorpus:
    """A Hugging Face ``datasets`` dataset (the optional extra ``huggingface``:
    ``pip install -e '.[huggingface]'``): ``name`` on the hub (``config``, ``split``,
    ``revision``), streamed, or a folder written by ``save_to_disk``; ``src_key``/``tgt_key`` name
    the fields, dotted for nested ones (``translation.fr``). Rows pass through the same cleaning
    and cache as any corpus."""

    def __init__(
        self,
        name: str,
        src_key: str,
        tgt_key: str,
        config: str | None = None,
        split: str = "train",
        revision: str | None = None,
        langs: Sequence[str] = ("fr", "en"),
    ):
        self.name, self.config, self.split, self.revision = name, config, split, revision
        self.keys, self.langs = (src_key, tgt_key), tuple(langs)

    def _local(self) -> Path | None:
        path = Path(self.name)
        return path if path.is_dir() else None

    def describe(self) -> str:
        return f"huggingface {self.name} ({self.config or 'default'}, {self.split})"

    def identity(self) -> list:
        """The local folder's files (path, size, time), or the hub name, config and revision."""
        source: list = [self.name, self.config, self.revision]
        if (local := self._local()) is not None:
            files = sorted(p for p in local.rglob("*") if p.is_file())
            source = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
        return [source, self.split, list(self.keys), list(self.langs)]

    def _rows(self) -> Any:
        try:
            import datasets
        except ImportError:
            raise CorpusError(
                "dataset=huggingface needs the datasets package: "
                "pip install -e '.[huggingface]' (or pip install datasets)"
            ) from None
        try:
            if (local := self._local()) is not None:
                data = datasets.load_from_disk(str(local))
                return data[self.split] if isinstance(data, datasets.DatasetDict) else data
            return datasets.load_dataset(
                self.name, self.config, split=self.split, revision=self.revision, streaming=True
            )
        except (OSError, ValueError, KeyError, FileNotFoundError) as e:
            raise CorpusError(f"{self.describe()}: cannot load ({type(e).__name__}: {e})") from e

    def pairs(self, stats: Counter) -> Iterator[tuple[str, str]]:
        src_key, tgt_key = self.keys
        for row in self._rows():
            try:
                src, tgt = field(row, src_key), field(row, tgt_key)
            except (KeyError, TypeError):
                raise CorpusError(
                    f"{self.describe()}: no field {src_key!r} or {tgt_key!r} in rows "
                    f"(fields: {sorted(row)})"
                ) from None
            stats["lines_read"] += 1
            yield str(src), str(tgt)
