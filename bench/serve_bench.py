"""Load test of ``nmt-serve`` on 127.0.0.1: 1, 8, 32 and 128 concurrent clients, each sending
single sentences of the benchmark data's test split for ``--seconds``, with batching on and off
(``batching.max_batch_size=1``): sentences/s, p50/p95/p99 latency, errors, the server's peak
RSS, mean batch size and CPU time per sentence; ``nmt-translate input=FILE`` on the same
sentences as the ceiling; the server's RSS after 1,000 and after ``--rss-requests`` requests.

    python bench/serve_bench.py --ckpt PATH                  # a checkpoint trained on BENCH_DATA
    python bench/serve_bench.py --ckpt PATH --seconds 5 --clients 1 32 --json results.json
    python bench/serve_bench.py --ckpt PATH --screenshot docs/serving-page.png   # the page only

The clients are asyncio connections (HTTP/1.1 keep-alive, one request at a time each) in this
process, which shares the machine's cores with the server: on 2 cores they take part of the CPU
the server would otherwise have. Linux only (the server's RSS comes from /proc).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from benchlib import BENCH_DATA, ROOT, compose, describe_machine

sys.path.insert(0, str(ROOT / "tests"))  # the tests' server and browser helpers
from serving import chromium_driver, start_server  # noqa: E402
from translate_bench import test_split, train  # noqa: E402


class Client:
    """One keep-alive HTTP/1.1 connection posting single sentences to /translate."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def translate(self, text: str) -> int:
        """POST one sentence; the response's status (the body is read and dropped)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        body = json.dumps({"text": text}).encode()
        self.writer.write(
            b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def load(port: int, clients: int, sentences: list[str], seconds: float) -> dict:
    """``clients`` concurrent clients for ``seconds``: sentences/s, latency percentiles, errors."""
    latencies, errors, next_index = [], 0, 0
    stop = time.perf_counter() + seconds

    async def run_client() -> None:
        nonlocal errors, next_index
        client = Client(port)
        while time.perf_counter() < stop:
            text = sentences[next_index % len(sentences)]
            next_index += 1
            start = time.perf_counter()
            try:
                ok = await client.translate(text) == 200
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
                ok = False
                client.close()
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1
        client.close()

    start = time.perf_counter()
    await asyncio.gather(*(run_client() for _ in range(clients)))
    wall = time.perf_counter() - start
    ms = np.percentile(latencies, [50, 95, 99]) * 1000 if latencies else [float("nan")] * 3
    return {
        "clients": clients, "sentences_per_s": len(latencies) / wall, "requests": len(latencies),
        "p50_ms": ms[0], "p95_ms": ms[1], "p99_ms": ms[2], "errors": errors,
    }  # fmt: skip


def proc_status(pid: int, key: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak RSS) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def health(port: int) -> dict:
    """The server's ``GET /health``: its decodes and sentences so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as response:
        return json.load(response)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (steadier than wall time on a shared machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> None:
    """Start a new peak-RSS measurement of ``pid`` (Linux's clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


SERVER_OVERRIDES: list[str] = []  # --server: nmt-serve settings of every server started


def served(ckpt: Path, *overrides: str) -> tuple[subprocess.Popen, int]:
    proc, url = start_server(f"ckpt={ckpt}", *SERVER_OVERRIDES, *overrides)
    return proc, int(url.rstrip("/").rsplit(":", 1)[1])


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(60)


def load_rows(ckpt: Path, sentences: list[str], args) -> list[dict]:
    """A row per client count, with batching on, then off."""
    rows = []
    for batching, overrides in (("on", []), ("off", ["batching.max_batch_size=1"])):
        proc, port = served(ckpt, *overrides)
        asyncio.run(load(port, 4, sentences, 1.0))  # warm-up
        for clients in args.clients:
            reset_peak(proc.pid)
            before, cpu = health(port), cpu_seconds(proc.pid)
            row = {"batching": batching} | asyncio.run(load(port, clients, sentences, args.seconds))
            after, cpu = health(port), cpu_seconds(proc.pid) - cpu
            row["peak_rss_mib"] = proc_status(proc.pid, "VmHWM")
            row["cpu_ms_per_sentence"] = 1000 * cpu / max(row["requests"], 1)
            row["mean_batch"] = (after["sentences"] - before["sentences"]) / max(
                after["batches"] - before["batches"], 1
            )
            rows.append(row)
            print(
                f"batching {batching:>3} | {clients:>3} clients | {row['sentences_per_s']:7.1f} "
                f"sent/s | p50 {row['p50_ms']:6.1f} ms | p95 {row['p95_ms']:6.1f} ms | p99 "
                f"{row['p99_ms']:6.1f} ms | errors {row['errors']} | peak RSS "
                f"{row['peak_rss_mib']:.0f} MiB | mean batch {row['mean_batch']:.1f} | server CPU "
                f"{row['cpu_ms_per_sentence']:.2f} ms/sentence",
                flush=True,
            )
        stop(proc)
    return rows


async def send(port: int, clients: int, sentences: list[str], total: int) -> int:
    """``total`` requests from ``clients`` concurrent clients; the number that failed."""
    left, failed = total, 0

    async def run_client() -> None:
        nonlocal left, failed
        client = Client(port)
        while left > 0:
            left -= 1
            if await client.translate(sentences[left % len(sentences)]) != 200:
                failed += 1
        client.close()

    await asyncio.gather(*(run_client() for _ in range(clients)))
    return failed


def rss_growth(ckpt: Path, sentences: list[str], total: int) -> dict:
    """The server's RSS after 1,000 requests and after ``total`` (32 clients, batching on)."""
    proc, port = served(ckpt)
    failed = asyncio.run(send(port, 32, sentences, 1000))
    after_1k = proc_status(proc.pid, "VmRSS")
    failed += asyncio.run(send(port, 32, sentences, total - 1000))
    after = proc_status(proc.pid, "VmRSS")
    stop(proc)
    print(f"RSS after 1,000 requests {after_1k:.0f} MiB, after {total:,} {after:.0f} MiB "
          f"({(after / after_1k - 1) * 100:+.1f}%), {failed} failed")  # fmt: skip
    return {"requests": total, "rss_1000_mib": after_1k, "rss_mib": after, "failed": failed}


def translate_file(ckpt: Path, src: Path) -> float:
    """Seconds ``nmt-translate ckpt=CKPT input=SRC`` (greedy) takes, start-up included."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "seq2seq_nmt.cli.translate", f"ckpt={ckpt}", f"input={src}"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def ceiling(ckpt: Path, src: Path, n: int, runs: int = 3) -> dict:
    """``nmt-translate input=FILE``'s sentences/s, start-up included, and without its start-up
    (the time it takes on an empty file): medians of ``runs`` runs each, after one warm-up run
    (the first start reads the libraries from disk)."""
    empty = src.with_name("empty.txt")
    empty.write_text("")
    translate_file(ckpt, empty)
    startup = float(np.median([translate_file(ckpt, empty) for _ in range(runs)]))
    wall = float(np.median([translate_file(ckpt, src) for _ in range(runs)]))
    print(f"nmt-translate input=FILE: {n} sentences in {wall:.2f} s, {n / wall:.1f} sent/s; "
          f"start-up {startup:.2f} s, {n / (wall - startup):.1f} sent/s without it "
          f"(medians of {runs} runs)")  # fmt: skip
    return {"sentences": n, "seconds": wall, "sentences_per_s": n / wall,
            "startup_s": startup, "decode_sentences_per_s": n / (wall - startup)}  # fmt: skip


def screenshot(ckpt: Path, path: Path, sentence: str) -> None:
    """The page in headless chromium after translating ``sentence``, saved as a PNG."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    proc, url = start_server(f"ckpt={ckpt}")
    driver = chromium_driver()
    if driver is None:
        raise SystemExit("error: --screenshot needs chromium, chromium-driver and selenium")
    try:
        driver.set_window_size(900, 820)
        driver.get(url)
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("value"))
        driver.find_element(By.ID, "text").send_keys(sentence)
        driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.ID, "result").is_displayed())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(900, height + 140)  # the whole page (the window's frame aside)
        driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
    finally:
        driver.quit()
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, help="checkpoint trained on BENCH_DATA")
    parser.add_argument("--train-minutes", type=int, default=10, help="without --ckpt: train")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench-serve")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--seconds", type=float, default=10.0, help="per client count")
    parser.add_argument("--rss-requests", type=int, default=10_000, help="0: skip the RSS check")
    parser.add_argument("--screenshot", type=Path, help="only save a screenshot of the page")
    parser.add_argument("--sentence", default="Nous ne sommes pas encore prêts à partir.")
    parser.add_argument(
        "--threads", type=int, help="OMP_NUM_THREADS of nmt-serve and nmt-translate"
    )
    parser.add_argument("--server", nargs="*", default=[], help="nmt-serve overrides: threads=1")
    parser.add_argument("--only", choices=["load", "ceiling", "rss"], nargs="*")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    SERVER_OVERRIDES.extend(args.server)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.ckpt or train(args.out / "train", args.train_minutes)
    if args.screenshot:
        return screenshot(ckpt, args.screenshot, args.sentence)
    cfg = compose(args.out, *BENCH_DATA)
    sentences = [s for s, _ in test_split(cfg)]
    src = args.out / "test.fr"
    src.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    machine = describe_machine(cfg)
    print(f"{len(sentences)} test sentences, checkpoint {ckpt}\n{machine}", flush=True)
    parts = set(args.only or ["load", "ceiling", "rss"])
    results = {"machine": machine, "checkpoint": str(ckpt), "seconds": args.seconds,
               "threads": args.threads, "server": args.server}  # fmt: skip
    if "ceiling" in parts:
        results["ceiling"] = ceiling(ckpt, src, len(sentences))
    if "load" in parts:
        results["load"] = load_rows(ckpt, sentences, args)
    if "rss" in parts and args.rss_requests:
        results["rss"] = rss_growth(ckpt, sentences, args.rss_requests)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
