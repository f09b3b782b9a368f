"""nmt-serve: batching across requests, outputs equal to nmt-translate's for concurrent clients,
one-line JSON errors for bad requests, start-up failures, SIGTERM and CORS."""

import asyncio
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from helpers import ROOT, imported, make_cfg
from seq2seq_nmt.data.corpus import SAMPLE_PATH

pytest.importorskip("fastapi", reason="nmt-serve needs the .[serve] extra")
from serving import request, server  # noqa: E402

from seq2seq_nmt.serve.batcher import Batcher  # noqa: E402
from seq2seq_nmt.translate.command import run  # noqa: E402


def sample_sentences(n: int) -> list[str]:
    """``n`` French sentences of the sample corpus, of varied lengths."""
    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()[3::37][:n]
    return [line.split("\t")[1] for line in lines]


def run_batcher(max_batch_size: int, max_wait_ms: float, jobs, decode=None):
    """Submit ``jobs`` (key, texts) at once to a Batcher; their results and the batches decoded."""
    batches = []

    def default_decode(key, texts):
        batches.append((key, list(texts)))
        return [f"{key}:{t}" for t in texts]

    async def main():
        batcher = Batcher(decode or default_decode, max_batch_size, max_wait_ms)
        task = asyncio.create_task(batcher.run())
        results = await asyncio.gather(
            *(batcher.submit(k, t) for k, t in jobs), return_exceptions=True
        )
        task.cancel()
        return results

    return asyncio.run(main()), batches


def test_batcher_gathers_requests_up_to_the_batch_size_and_keeps_keys_apart():
    jobs = [("a", ["1", "2"]), ("b", ["3"]), ("a", ["4", "5", "6"]), ("a", ["7"])]
    results, batches = run_batcher(4, 200, jobs)
    assert results == [[f"{k}:{t}" for t in texts] for k, texts in jobs]
    assert batches == [("a", ["1", "2", "4", "5"]), ("b", ["3"]), ("a", ["6", "7"])]


def test_batcher_with_batch_size_1_decodes_one_sentence_at_a_time():
    _, batches = run_batcher(1, 200, [("a", ["1", "2"]), ("a", ["3"])])
    assert [texts for _, texts in batches] == [["1"], ["2"], ["3"]]


def test_a_failed_decode_fails_its_requests_and_the_batcher_goes_on():
    def decode(key, texts):
        if key == "bad":
            raise RuntimeError("boom")
        return texts

    results, _ = run_batcher(8, 50, [("bad", ["x"]), ("good", ["y"])], decode)
    assert isinstance(results[0], RuntimeError) and results[1] == ["y"]


def test_a_cancelled_request_is_not_decoded():
    decoded = []

    async def main():
        batcher = Batcher(lambda k, t: decoded.extend(t) or t, 8, 100)
        task = asyncio.create_task(batcher.run())
        gone = asyncio.create_task(batcher.submit("k", ["gone"]))
        await asyncio.sleep(0.01)
        gone.cancel()
        kept = await batcher.submit("k", ["kept"])
        task.cancel()
        return kept

    assert asyncio.run(main()) == ["kept"] and decoded == ["kept"]


@pytest.mark.parametrize("options", [{}, {"beam_size": 3}], ids=["greedy", "beam3"])
def test_concurrent_clients_get_what_nmt_translate_prints(
    served, trained_ckpt, tmp_path, capsys, options
):
    sentences = sample_sentences(48)
    src = tmp_path / "src.fr"
    src.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    args = [f"{k}={v}" for k, v in options.items()]
    capsys.readouterr()
    run(make_cfg(tmp_path, f"ckpt={trained_ckpt}", f"input={src}", *args, config="translate"))
    expected = capsys.readouterr().out.splitlines()
    _, before, _ = request(served + "health")

    def one(sentence: str) -> str:
        status, body, _ = request(served + "translate", {"text": sentence, **options})
        assert status == 200, body
        return body["translations"][0]["text"]

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, sentences))
    assert got == expected
    _, after, _ = request(served + "health")
    sentences_decoded = after["sentences"] - before["sentences"]
    assert sentences_decoded == len(sentences)
    assert after["batches"] - before["batches"] < sentences_decoded  # some were batched together


def test_texts_nbest_and_attention_shapes(served):
    body = {"texts": ["Je suis grand.", "", "Il est petit."], "beam_size": 3, "nbest": 2}
    status, out, _ = request(served + "translate", body | {"attention": True})
    assert status == 200 and out["model"] == "fr-en"
    first, empty, _ = out["translations"]
    assert len(first["hypotheses"]) == 2 and first["text"] == first["hypotheses"][0]["text"]
    assert first["hypotheses"][0]["score"] >= first["hypotheses"][1]["score"]
    assert empty["text"] == "" and empty["hypotheses"] == [] and empty["attention"] == []
    attn = torch.tensor(first["attention"])
    assert attn.shape == (len(first["target_pieces"]), len(first["source_pieces"]))
    assert first["source_pieces"][-1] == "<eos>"
    assert torch.allclose(attn.sum(1), torch.ones(1), atol=1e-2)  # a distribution per row
    _, plain, _ = request(served + "translate", body)
    assert "attention" not in plain["translations"][0]


def test_models_and_health(served):
    status, out, _ = request(served + "models")
    assert status == 200 and out["default"] == "fr-en"
    (model,) = out["models"]
    described = (model["src_lang"], model["tgt_lang"], model["tokenizer"]["src"])
    assert described == ("fr", "en", "words")
    assert model["metrics"]["epoch"] >= 0 and "val/bleu (best)" in model["metrics"]
    assert not any("/" in str(v) and "ckpt" in str(v) for v in model.values())  # no file paths
    assert request(served + "health")[1]["status"] == "ok"
    page = request(served + "openapi.json")[1]
    assert {"/translate", "/models", "/health"} <= set(page["paths"])


BAD_REQUESTS = {
    "malformed JSON": (b'{"text": ', 400, "malformed JSON"),
    "nested too deeply": (b"[" * 100_000, 400, "nested too deeply"),
    "not UTF-8": ('{"text": "caf\xe9"}'.encode("latin-1"), 400, "not UTF-8"),
    "not an object": (b'["Je suis grand."]', 422, "JSON object"),
    "wrong type": ({"text": 3}, 422, "text: Input should be a valid string"),
    "neither text nor texts": ({"beam_size": 2}, 422, "either text"),
    "both text and texts": ({"text": "a", "texts": ["b"]}, 422, "either text"),
    "empty text list": ({"texts": []}, 422, "texts is empty"),
    "unknown model": ({"text": "a", "model": "xx-yy"}, 404, "unknown model 'xx-yy'"),
    "out-of-range option": ({"text": "a", "beam_size": 0}, 422, "beam_size"),
    "unknown option": ({"text": "a", "beam": 2}, 422, "unknown decoding option 'beam'"),
    "text too long": ({"text": "a" * 1001}, 422, "1001 characters"),
    "too many texts": ({"texts": ["a"] * 65}, 422, "65 texts"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_a_bad_request_is_a_one_line_json_error_and_the_server_goes_on(served, case):
    body, status, message = BAD_REQUESTS[case]
    got, out, _ = request(served + "translate", body)
    assert (got, list(out)) == (status, ["error"])
    assert message in out["error"] and "\n" not in out["error"]
    assert request(served + "translate", {"text": "Il est grand."})[0] == 200


def test_an_unknown_route_is_a_json_404(served):
    assert request(served + "nothing")[:2] == (404, {"error": "Not Found"})


def serve_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seq2seq_nmt.cli.serve", "port=1", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("what", ["pickled", "both", "limit"])
def test_a_checkpoint_that_does_not_load_or_a_bad_setting_is_one_line_and_exit_2(
    tmp_path, trained_ckpt, what
):
    path = tmp_path / "bad.ckpt"
    if what == "pickled":
        torch.save({"nmt": {}, "state_dict": {}, "x": threading.Lock}, path)
    args = {
        "pickled": [f"ckpt={path}"], "limit": [f"ckpt={trained_ckpt}", "limits.max_texts=0"],
        "both": [f"ckpt={trained_ckpt}", f"models={{a: {trained_ckpt}}}"],
    }[what]  # fmt: skip
    proc = serve_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_sigterm_lets_requests_in_flight_finish_then_exits_0(trained_ckpt):
    # batches wait 3 s for company: the request is in flight when SIGTERM comes after 1 s
    overrides = ["batching.max_wait_ms=3000", "cors_origins=[http://allowed.example]"]
    with server(trained_ckpt, *overrides) as (proc, url):
        origin = {"Origin": "http://allowed.example"}
        allowed = request(url + "health", headers=origin)[2]
        assert allowed["access-control-allow-origin"] == origin["Origin"]
        other = request(url + "health", headers={"Origin": "http://other.example"})[2]
        assert "access-control-allow-origin" not in {k.lower() for k in other}
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(request, url + "translate", {"texts": ["Il est grand."] * 3})
            threading.Event().wait(1.0)
            proc.send_signal(signal.SIGTERM)
            status, out, _ = pending.result(30)
        assert status == 200 and len(out["translations"]) == 3
        assert proc.wait(30) == 0


def test_no_cors_headers_unless_configured(served):
    headers = request(served + "health", headers={"Origin": "http://elsewhere.example"})[2]
    assert "access-control-allow-origin" not in {k.lower() for k in headers}


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(served):
    host, port = served.removeprefix("http://").strip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000001\r\n\r\n"
        )
        response = sock.makefile("rb")
        status = response.readline()
        headers = dict(
            line.decode().lower().split(": ", 1) for line in iter(response.readline, b"\r\n")
        )
        body = response.read(int(headers["content-length"]))
    assert status.startswith(b"HTTP/1.1 413") and b"the limit is 1000000" in body


@pytest.fixture(scope="module")
def app_client(trained_ckpt):
    """An in-process app with tight limits: bodies of 200 bytes, 0.2 s a request, and batches
    that wait 2 s for company (so a request times out)."""
    from fastapi.testclient import TestClient
    from omegaconf import OmegaConf

    from seq2seq_nmt.serve.app import Limits, create_app
    from seq2seq_nmt.serve.models import load_models

    cfg = OmegaConf.create({"ckpt": str(trained_ckpt), "device": "cpu", "precision": "fp32"})
    app = create_app(load_models(cfg), Limits(max_body_bytes=200, timeout_s=0.2), max_wait_ms=2000)
    with TestClient(app) as client:
        yield client


def test_a_request_over_its_time_limit_is_a_503(app_client):
    response = app_client.post("/translate", json={"text": "Il est grand."})
    assert response.status_code == 503 and "0.2 s" in response.json()["error"]


def test_a_streamed_body_over_the_limit_is_a_413(app_client):
    chunks = (b'{"text": "' if i == 0 else b"a" * 50 for i in range(10))
    response = app_client.post("/translate", content=chunks)
    assert response.status_code == 413 and "200 bytes" in response.json()["error"]


def test_several_models_by_name(trained_ckpt):
    from fastapi.testclient import TestClient
    from omegaconf import OmegaConf

    from seq2seq_nmt.serve.app import create_app
    from seq2seq_nmt.serve.models import load_models

    paths = {"first": str(trained_ckpt), "second": str(trained_ckpt)}
    cfg = OmegaConf.create({"models": paths, "device": "cpu", "precision": "fp32"})
    with TestClient(create_app(load_models(cfg))) as client:
        listed = client.get("/models").json()
        assert listed["default"] == "first"
        assert [m["name"] for m in listed["models"]] == ["first", "second"]
        out = client.post("/translate", json={"text": "Il est grand.", "model": "second"}).json()
        assert out["model"] == "second" and out["translations"][0]["text"]
        refused = client.post("/translate", json={"text": "a", "model": "fr-en"})
        assert refused.status_code == 404 and "one of first, second" in refused.json()["error"]


def test_a_seeded_sample_is_batched_alone_and_equals_nmt_translate(served, trained_ckpt):
    from seq2seq_nmt.decoding.options import DecodingOptions
    from seq2seq_nmt.translate.translator import Translator

    options = {"strategy": "sample", "seed": 7, "nbest": 2}
    jobs = [sample_sentences(24)[i::8] for i in range(8)]  # 8 requests of 3 sentences
    translator = Translator.from_checkpoint(trained_ckpt)
    expected = [
        [[translator.text(r, k) for k in range(2)] for r in translator.search(texts, DecodingOptions(**options))]
        for texts in jobs
    ]  # fmt: skip

    def one(texts: list[str]) -> list[list[str]]:
        status, out, _ = request(served + "translate", {"texts": texts, **options})
        assert status == 200, out
        return [[h["text"] for h in t["hypotheses"]] for t in out["translations"]]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, jobs)) == expected


def test_serving_and_averaging_start_without_lightning():
    """nmt-serve (its app and model loading) and nmt-average load torch, not Lightning
    (docs/performance.md, start-up time)."""
    code = "import seq2seq_nmt.cli.serve, seq2seq_nmt.serve.app, seq2seq_nmt.tools.average"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    modules = imported(out.stderr)
    assert {"torch", "fastapi"} <= modules and not {"pytorch_lightning", "torchmetrics"} & modules
