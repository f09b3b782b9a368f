"""Finding corpus files: explicit path, data folder, cache, then a download from a local server."""

import functools
import io
import socket
import tarfile
import threading
import zipfile
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seq2seq_nmt.data.corpus import EuroparlCorpus, TutorialCorpus
from seq2seq_nmt.data.download import CorpusError, locate

TAB = "Go.\tVa !\nI am cold.\tJ'ai froid.\n"
EN, FR = "Resumption of the session\nHello\n", "Reprise de la session\nBonjour\n"


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder; counts GETs; ``/short/...`` announces more bytes than it sends."""

    def do_GET(self):
        self.server.gets += 1
        if self.path.startswith("/short/"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"truncated")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/www``: (folder, base URL, server)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    httpd.gets = 0
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_port}", httpd
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.zip"  # nothing listens there any more


def make_zip(path, members: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)


def add(tf: tarfile.TarFile, name: str, text: str = "", link: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tf.addfile(info)
    else:
        data = text.encode()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def test_zip_is_downloaded_into_the_cache_once(server, tmp_path):
    root, base, httpd = server
    make_zip(root / "data.zip", {"data/eng-fra.txt": TAB, "data/other.txt": "x"})
    cache = tmp_path / "cache"
    where = dict(data_dir=tmp_path / "absent", cache_dir=cache, url=f"{base}/data.zip")
    pairs = list(TutorialCorpus(**where).pairs(Counter()))
    assert pairs == [("Va !", "Go."), ("J'ai froid.", "I am cold.")]  # (fr, en)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == ["eng-fra.txt"]
    assert not list(cache.glob("*.part")) and not list(cache.glob(".*.part"))
    assert list(TutorialCorpus(**where).pairs(Counter())) == pairs  # from the cache now
    assert httpd.gets == 1


def test_concurrent_downloads_fetch_once(server, tmp_path):
    root, base, httpd = server
    make_zip(root / "data.zip", {"data/eng-fra.txt": TAB})
    results: list = []

    def job():
        results.append(locate(["eng-fra.txt"], cache_dir=tmp_path / "c", url=f"{base}/data.zip"))

    threads = [threading.Thread(target=job) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and httpd.gets == 1
    assert (tmp_path / "c" / "eng-fra.txt").read_text() == TAB


def test_explicit_path_then_data_dir_come_before_cache_and_download(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    cache.mkdir()
    (data / "eng-fra.txt").write_text("A.\tB.\n")
    (cache / "eng-fra.txt").write_text("C.\tD.\n")
    (tmp_path / "mine.txt").write_text("E.\tF.\n")
    where = dict(data_dir=data, cache_dir=cache, url=closed_port_url())
    assert list(TutorialCorpus(**where).pairs(Counter())) == [("B.", "A.")]
    assert list(TutorialCorpus(tmp_path / "mine.txt", **where).pairs(Counter())) == [("F.", "E.")]
    (data / "eng-fra.txt").unlink()
    assert list(TutorialCorpus(**where).pairs(Counter())) == [("D.", "C.")]
    with pytest.raises(CorpusError, match="corpus file not found: .*nope.txt"):
        TutorialCorpus(tmp_path / "nope.txt", **where).files()


def test_offline_without_the_file_is_one_clear_error(tmp_path):
    cache = tmp_path / "cache"
    url = closed_port_url()
    with pytest.raises(CorpusError) as e:
        TutorialCorpus(data_dir=tmp_path / "data", cache_dir=cache, url=url).files()
    msg = str(e.value)
    assert "eng-fra.txt" in msg and str(cache) in msg and url in msg and "\n" not in msg
    with pytest.raises(
        CorpusError, match=f"eng-fra.txt not found in .*; put the file.* in {cache}"
    ):
        TutorialCorpus(cache_dir=cache, url=url, download=False).files()


def test_truncated_download_leaves_no_file(server, tmp_path):
    _, base, _ = server
    cache = tmp_path / "cache"
    with pytest.raises(CorpusError, match="truncated"):
        locate(["eng-fra.txt"], cache_dir=cache, url=f"{base}/short/eng-fra.txt")
    assert [p.name for p in cache.iterdir()] == [".download.lock"]


def test_tgz_members_are_extracted_safely(server, tmp_path):
    root, base, _ = server
    with tarfile.open(root / "fr-en.tgz", "w:gz") as tf:
        add(tf, "evil/europarl-v7.fr-en.en", link="/etc/passwd")  # a link with a wanted name
        add(tf, "../escape.txt", "outside")
        add(tf, "/abs.txt", "absolute")
        add(tf, "training/europarl-v7.fr-en.en", EN)
        add(tf, "training/europarl-v7.fr-en.fr", FR)
    cache = tmp_path / "deep" / "cache"
    corpus = EuroparlCorpus(cache_dir=cache, url=f"{base}/fr-en.tgz")
    stats: Counter = Counter()
    assert list(corpus.pairs(stats))[1] == ("Bonjour", "Hello")
    assert stats["lines_read"] == 2
    assert sorted(p.name for p in cache.iterdir()) == [
        ".download.lock", "europarl-v7.fr-en.en", "europarl-v7.fr-en.fr",
    ]  # fmt: skip
    assert (
        not (tmp_path / "deep" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    )


def test_archive_without_the_file_is_reported(server, tmp_path):
    root, base, _ = server
    make_zip(root / "data.zip", {"data/fra-eng.txt": TAB})
    with pytest.raises(CorpusError, match="no file named eng-fra.txt"):
        TutorialCorpus(cache_dir=tmp_path / "cache", url=f"{base}/data.zip").files()
    assert not (tmp_path / "cache" / "data.zip").exists()


def test_europarl_pair_derives_file_names_and_url_and_downloads(server, tmp_path):
    from hydra.utils import instantiate

    from helpers import make_cfg

    root, base, httpd = server
    with tarfile.open(root / "de-en.tgz", "w:gz") as tf:
        add(tf, "training/europarl-v7.de-en.de", "Wiederaufnahme der Sitzung\nHallo\n")
        add(tf, "training/europarl-v7.de-en.en", EN)
    cfg = make_cfg(tmp_path, "dataset=europarl", "dataset.pair=de-en", f"paths.cache_dir={tmp_path}",
                   f"paths.data_dir={tmp_path / 'absent'}")  # fmt: skip
    assert cfg.dataset.corpus.url == "https://www.statmt.org/europarl/v7/de-en.tgz"
    corpus = instantiate(cfg.dataset.corpus, url=f"{base}/de-en.tgz")  # the same name, served here
    assert list(corpus.pairs(Counter())) == [
        ("Wiederaufnahme der Sitzung", "Resumption of the session"), ("Hallo", "Hello"),
    ]  # fmt: skip
    assert httpd.gets == 1 and (tmp_path / "europarl" / "europarl-v7.de-en.de").is_file()
