"""Helpers of the serving tests: an ``nmt-serve`` process on a free port, and JSON over HTTP."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from helpers import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*overrides: str) -> tuple[subprocess.Popen, str]:
    """``nmt-serve OVERRIDES`` on a free port; the process and its URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "seq2seq_nmt.cli.serve", f"port={port}", *overrides],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nmt-serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            urllib.request.urlopen(url + "health", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("nmt-serve did not answer within 60 s")


@contextmanager
def server(ckpt: Path, *overrides: str):
    """A running ``nmt-serve ckpt=CKPT OVERRIDES``: yields (process, URL); stopped after."""
    proc, url = start_server(f"ckpt={ckpt}", *overrides)
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()


def request(
    url: str, body: bytes | dict | None = None, headers: dict | None = None, method: str = ""
) -> tuple[int, dict, dict]:
    """Status, JSON body and headers of a request (POST when there is a body)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method or None)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def chromium_driver():
    """Selenium driving Debian's headless ``chromium`` with its ``chromedriver``; None where
    either (or selenium) is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1000,900",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
