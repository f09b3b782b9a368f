"""Files in and out. In: corpus files, gzip, bz2 and xz read transparently (told by their magic
bytes, not their name); a directory or a file that is not text is refused with a one-line
CorpusError. Out: :func:`atomic_write`, the one way the package writes a file or folder that
others may read while it is written (downloads, run records, the preprocessed-data cache)."""

import bz2
import gzip
import lzma
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


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
    except BaseException:
        if folder:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


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
SNIFF_BYTES = 1 << 16  # the block whose bytes decide whether a file is text
MAX_INVALID_SHARE = 0.1  # above this share of bytes that are not UTF-8, a file is not text


def sniff_text(path: Path, block: bytes) -> None:
    """Raise a CorpusError when ``block`` (a file's first bytes) is not text."""
    if b"\0" in block:
        raise CorpusError(f"{path}: not a text file (NUL bytes in its first {len(block)} bytes)")
    invalid = block.decode("utf-8", errors="replace")[:-1].count("\ufffd")  # last: maybe cut
    if block and invalid / len(block) > MAX_INVALID_SHARE:
        share = 100 * invalid / len(block)
        raise CorpusError(f"{path}: not a text file ({share:.0f}% of its first bytes not UTF-8)")


@contextmanager
def open_binary(path: Path) -> Iterator[IO[bytes]]:
    """``path`` open for reading (decompressed), after checking it is a text file; read and
    decompression errors, there or while the caller reads, become one-line CorpusErrors."""
    path = Path(path)
    if path.is_dir():
        raise CorpusError(f"{path}: is a directory, not a corpus file")
    kind = "plain text"
    try:
        with path.open("rb") as raw:
            magic = raw.read(6)
        kind, opener = next((f for m, f in FORMATS.items() if magic.startswith(m)), (kind, open))
        with opener(path, "rb") as f:
            sniff_text(path, f.read(SNIFF_BYTES))
            f.seek(0)
            yield f
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise CorpusError(f"{path}: cannot read it ({kind}: {e})") from None
