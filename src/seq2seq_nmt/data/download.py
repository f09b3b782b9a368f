"""Finding corpus files: an explicit path, a data folder, the cache, or a download into the cache.

Downloads stream into a temporary file beside their destination and are renamed into place only
when complete; archives are read member by member and only the wanted regular files are copied
out, each to ``<cache>/<its base name>``, so no member can land outside the cache.
"""

import logging
import shutil
import tarfile
import urllib.request
import zipfile
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import urlparse

from filelock import FileLock
from tqdm import tqdm

from seq2seq_nmt.data.io import CorpusError, atomic_write, unwritable

log = logging.getLogger(__name__)


def write_atomic(src: IO[bytes], dest: Path) -> None:
    """Copy a stream to ``dest`` through a temporary file in the same folder, then rename."""
    with atomic_write(dest) as tmp, tmp.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


class _Progress:
    """A readable stream that advances a tqdm bar and checks the announced size at its end."""

    def __init__(self, raw: IO[bytes], total: int | None, desc: str):
        self.raw, self.total, self.read_bytes = raw, total, 0
        self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)

    def read(self, n: int = -1) -> bytes:
        chunk = self.raw.read(n)
        self.read_bytes += len(chunk)
        self.bar.update(len(chunk))
        if not chunk and self.total is not None and self.read_bytes != self.total:
            raise OSError(f"download truncated: got {self.read_bytes} of {self.total} bytes")
        return chunk


def download(url: str, dest: Path, timeout: float = 60) -> Path:
    """Fetch ``url`` to ``dest`` with a progress bar; ``dest`` appears only once complete."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        size = resp.headers.get("Content-Length")
        progress = _Progress(resp, int(size) if size else None, f"downloading {dest.name}")
        try:
            write_atomic(progress, dest)  # type: ignore[arg-type]
        finally:
            progress.bar.close()
    return dest


def extract(archive: Path, names: Sequence[str], dest: Path) -> list[Path]:
    """Copy the regular-file members of a zip or tar archive whose base names are ``names`` into
    ``dest`` (first match each; member paths, links and other members are ignored)."""
    todo = set(names)

    def take(name: str, open_member) -> None:
        with open_member() as src:
            write_atomic(src, dest / name)
        todo.discard(name)

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = PurePosixPath(info.filename).name
                if name in todo and not info.is_dir():
                    take(name, lambda info=info: zf.open(info))
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf:
                name = PurePosixPath(member.name).name
                if name in todo and member.isfile():
                    take(name, lambda member=member: tf.extractfile(member))
    else:
        raise CorpusError(f"{archive}: not a zip or tar archive")
    if todo:
        raise CorpusError(f"{archive}: no file named {', '.join(sorted(todo))} in the archive")
    return [dest / n for n in names]


def fetch(url: str, names: Sequence[str], cache_dir: Path) -> list[Path]:
    """Download ``url`` into ``cache_dir`` and leave ``names`` there (from the archive it holds,
    or the file itself when the URL names it); one process does it while the others wait."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_dir / ".download.lock"):
        if all((cache_dir / n).is_file() for n in names):
            return [cache_dir / n for n in names]
        target = cache_dir / PurePosixPath(urlparse(url).path).name
        log.info("downloading %s to %s", url, cache_dir)
        download(url, target)
        if [target.name] == list(names):
            return [target]
        try:
            return extract(target, names, cache_dir)
        finally:
            target.unlink(missing_ok=True)


def locate(
    names: Sequence[str],
    paths: Sequence[str | Path | None] = (),
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    url: str | None = None,
    download: bool = True,
) -> list[Path]:
    """The files ``names``: at ``paths`` when given, else in ``data_dir``, else in ``cache_dir``,
    else downloaded from ``url`` into ``cache_dir``; a CorpusError saying where to put them."""
    given = [Path(p) for p in paths if p]
    if given:
        if len(given) != len(names):
            raise CorpusError(f"give a path for each of {', '.join(names)}, or none")
        for p in given:
            if p.is_dir():
                raise CorpusError(f"corpus path is a directory, not a file: {p}")
            if not p.is_file():
                raise CorpusError(f"corpus file not found: {p}")
        return given
    dirs = [Path(d) for d in (data_dir, cache_dir) if d]
    for d in dirs:
        if all((d / n).is_file() for n in names):
            return [d / n for n in names]
    missing, where = ", ".join(names), " or ".join(map(str, dirs)) or "no folder"
    home = dirs[-1] if dirs else "a data folder"
    if not (url and cache_dir and download):
        raise CorpusError(f"{missing} not found in {where}; put the file(s) in {home}")
    if (why := unwritable(Path(cache_dir))) is not None:
        instead = f", or put {missing} in {data_dir}" if data_dir else ""
        raise CorpusError(
            f"{missing} not found in {where}, and it cannot be downloaded: cannot write to "
            f"{cache_dir} (the download cache, under paths.cache_dir): {why}; fix that{instead}"
        )
    try:
        return fetch(url, names, Path(cache_dir))
    except (OSError, HTTPException, CorpusError) as e:  # URLError and timeouts are OSErrors
        raise CorpusError(
            f"{missing} not found in {where}, and downloading {url} failed ({e}); "
            f"download it where you can and put {missing} (extracted) in {home}"
        ) from e
