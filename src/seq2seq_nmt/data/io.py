"""Files in and out. In: corpus files, gzip, bz2 and xz read transparently (told by their magic
bytes, not their name); a directory or a file that is not text is refused with a one-line
CorpusError. Encodings are decided per file (:func:`open_binary`): a byte-order mark (UTF-8,
UTF-16, UTF-32) is handled at open; a file in a consistent legacy encoding (Latin-1, cp1251,
...) is refused naming the likely one, unless an ``encoding`` is given to read it; a UTF-8 file
with a few damaged lines is read, those lines repaired and counted (:func:`text_lines`).
Out: :func:`atomic_write`, the one way the package writes a file or folder that others may read
while it is written (checkpoints, downloads, run records, the preprocessed-data cache, averaged
checkpoints, translations)."""

import bz2
import codecs
import gzip
import logging
import lzma
import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class CorpusError(Exception):
    """A corpus that cannot be found, fetched or read consistently (one-line message)."""


@contextmanager
def atomic_write(dest: str | Path, *, folder: bool = False) -> Iterator[Path]:
    """A temporary path beside ``dest`` (a file, or an empty folder when ``folder``) that the
    ``with`` block fills; renamed onto ``dest`` when the block ends, removed when it raises, so a
    reader (or a run killed half way) never sees a half-written ``dest``.

    The temporary name is ``.<name>.<pid>.<random>.part`` in ``dest``'s folder (same filesystem: the
    rename is atomic). A file replaces an existing ``dest``; a folder needs ``dest`` absent.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    if folder:
        tmp.mkdir()
    else:
        tmp.touch(exist_ok=False)  # the permissions a plain write would give (umask applies)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException as e:
        if folder:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # a failed write or close: name dest
            raise OSError(e.errno, e.strerror, str(dest)) from e
        raise


@contextmanager
def atomic_text(dest: str | Path) -> Iterator[IO[str]]:
    """A UTF-8 text file written through :func:`atomic_write`: ``dest`` appears, whole, only
    when the block ends without error (a full disk leaves no ``dest``)."""
    with atomic_write(dest) as tmp, tmp.open("w", encoding="utf-8") as f:
        yield f


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot take new files (``it is not a folder``, ``Permission denied``, ...),
    or None when it can; a missing folder is created."""
    if folder.exists() and not folder.is_dir():
        return "it is not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return None


# magic bytes -> (format name, opener)
FORMATS: dict[bytes, tuple[str, Callable[..., IO[bytes]]]] = {
    b"\x1f\x8b": ("gzip", gzip.open),
    b"BZh": ("bz2", bz2.open),
    b"\xfd7zXZ\x00": ("xz", lzma.open),
}
SNIFF_BYTES = 1 << 16  # the block whose bytes decide whether a file is text, and its encoding
MAX_INVALID_SHARE = 0.1  # above this share of bytes that are not UTF-8, a file is not text
# a legacy encoding: at least LEGACY_MIN_LINES lines of the block, and more than LEGACY_SHARE of
# those with non-ASCII bytes, are not UTF-8 (a UTF-8 file with a few damaged lines is repaired)
LEGACY_MIN_LINES, LEGACY_SHARE = 3, 0.5
BOMS = {  # byte-order marks, longest first, and the codec that reads (and drops) them
    b"\xff\xfe\x00\x00": "utf-32", b"\x00\x00\xfe\xff": "utf-32", b"\xef\xbb\xbf": "utf-8-sig",
    b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16",
}  # fmt: skip
UTF8 = ("utf-8", "utf-8-sig")  # read as they are (a UTF-8 byte-order mark skipped)


# the legacy encodings a guess chooses from (charset_normalizer otherwise guesses rare Asian
# double-byte encodings for short Western text)
LEGACY_ENCODINGS = (
    "cp1252", "latin_1", "iso8859_15", "cp1250", "cp1251", "koi8_r", "cp1253", "cp1254", "cp1255",
    "cp1256", "cp1257", "cp874", "cp932", "euc_jp", "gb18030", "big5", "euc_kr",
)  # fmt: skip


def likely_encodings(block: bytes) -> list[str]:
    """The legacy encodings ``block`` most likely is in (charset_normalizer's guesses among
    ``LEGACY_ENCODINGS``; cp1252, Western Europe's, first when it is one of them)."""
    from charset_normalizer import from_bytes

    guesses = [m.encoding for m in from_bytes(block, cp_isolation=list(LEGACY_ENCODINGS))]
    western = [g for g in guesses if g in ("cp1252", "latin_1")]
    return list(dict.fromkeys(["cp1252"] + guesses if western else guesses))


def sniff_text(path: Path, block: bytes, option: str = "dataset.corpus.encoding") -> None:
    """Raise a CorpusError when ``block`` (a file's first bytes) is not text (NUL bytes, or over
    ``MAX_INVALID_SHARE`` of its bytes not UTF-8), or is text in a consistent legacy encoding
    (the error names the likely one and ``option``, the setting that reads it)."""
    if b"\0" in block and (utf16 := _utf16_without_bom(block)):
        raise CorpusError(
            f"{path}: not UTF-8: {utf16} without a byte-order mark (a NUL byte beside every "
            f"ASCII character); read it with {option}={utf16}, or convert it: "
            f"iconv -f {utf16} -t utf-8"
        )
    if b"\0" in block:
        raise CorpusError(f"{path}: not a text file (NUL bytes in its first {len(block)} bytes)")
    lines = [line for line in block.split(b"\n")[:-1] or [block] if not line.isascii()]
    bad, total = sum(1 for line in lines if not _decodes(line, "utf-8")), block.count(b"\n") or 1
    legacy = bad >= LEGACY_MIN_LINES and bad > LEGACY_SHARE * len(lines)
    if legacy and (guesses := likely_encodings(block)):  # no guess: binary bytes in lines
        guess, others = guesses[0], guesses[1:3]
        also = f" (or {', '.join(others)})" if others else ""
        raise CorpusError(
            f"{path}: not UTF-8: {bad} of its first {total} lines are in a legacy encoding, "
            f"likely {guess}{also}; read it with {option}={guess}, or convert it: "
            f"iconv -f {guess} -t utf-8"
        )
    invalid = block.decode("utf-8", errors="replace")[:-1].count("\ufffd")  # last: maybe cut
    if block and invalid / len(block) > MAX_INVALID_SHARE:
        share = 100 * invalid / len(block)
        raise CorpusError(f"{path}: not a text file ({share:.0f}% of its first bytes not UTF-8)")


def _utf16_without_bom(block: bytes) -> str | None:
    """``utf-16-le`` or ``utf-16-be`` when ``block`` decodes as such, most of its odd (even)
    bytes are NUL and almost none of the others, as in mostly-ASCII UTF-16 text; else None."""
    pairs, odd, even = len(block) // 2, block[1::2], block[0::2]
    for codec, high, low in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        mostly_ascii = high.count(0) > 0.5 * pairs and low.count(0) < 0.05 * pairs
        if pairs and mostly_ascii and _decodes(block[: 2 * pairs], codec):
            return codec
    return None


def _decodes(raw: bytes, codec: str) -> bool:
    try:
        raw.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def text_lines(
    path: Path, stats: Counter, encoding: str | None = None, option: str = "dataset.corpus.encoding"
) -> Iterator[str]:
    """The lines of ``path`` (``open_binary``), decoded, without their line ends; a line with
    invalid UTF-8 bytes is repaired (U+FFFD) and counted (``invalid_utf8_repaired``), and a
    WARNING names the file and the count once it is read."""
    repaired = 0
    with open_binary(path, encoding, option) as f:
        for raw in f:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                repaired += 1
                line = raw.decode("utf-8", errors="replace")
            yield line.rstrip("\r\n")
    if repaired:
        stats["invalid_utf8_repaired"] += repaired
        log.warning("%s: %d lines with invalid UTF-8 bytes, repaired (U+FFFD)", path, repaired)


@contextmanager
def open_binary(
    path: Path, encoding: str | None = None, option: str = "dataset.corpus.encoding"
) -> Iterator[IO[bytes]]:
    """``path`` open for reading (decompressed) as UTF-8 bytes, after checking it is a text file:
    a byte-order mark is dropped (UTF-16 and UTF-32 are converted); ``encoding`` (a legacy one,
    ``latin-1``) converts the file from it, else a file in a legacy encoding is refused naming
    ``option``. Read and decompression errors, there or while the caller reads, become one-line
    CorpusErrors."""
    path = Path(path)
    if path.is_dir():
        raise CorpusError(f"{path}: is a directory, not a corpus file")
    kind = "plain text"
    try:
        with path.open("rb") as raw:
            magic = raw.read(6)
        kind, opener = next((f for m, f in FORMATS.items() if magic.startswith(m)), (kind, open))
        with opener(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
            bom = next((b for b in BOMS if head.startswith(b)), b"")
            codec = _codec(path, encoding or BOMS.get(bom, "utf-8"))
            skip = len(bom) if codec in UTF8 and BOMS.get(bom) == "utf-8-sig" else 0
            if codec in UTF8:
                sniff_text(path, head[skip:], option)
            f.seek(skip)
            yield f if codec in UTF8 else codecs.EncodedFile(f, "utf-8", codec, errors="replace")
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise CorpusError(f"{path}: cannot read it ({kind}: {e})") from None


def _codec(path: Path, encoding: str) -> str:
    """``encoding``'s codec name (``utf-8``, ``utf-8-sig``, ``iso8859-1``, ...) or a CorpusError."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise CorpusError(f"{path}: unknown encoding {encoding!r}") from None
