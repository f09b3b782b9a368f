"""On a CUDA GPU (marker ``gpu``; each test skips with its reason where CUDA is absent): training
on the bundled sample corpus at ``32-true`` and ``bf16-mixed``, translation on ``cuda`` against
the CPU, and the compiled decoder (``model.compile=true``) against eager. ``bench/gpu_check.sh``
runs them (``pytest tests/test_gpu.py -m gpu``). The ``RunIf`` tests at the end run anywhere."""

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from runif import RunIf

from helpers import make_cfg, run_translate
from seq2seq_nmt.data.corpus import SAMPLE_PATH
from seq2seq_nmt.data.vocab import PAD
from seq2seq_nmt.decoding.options import DecodingOptions
from seq2seq_nmt.train.records import read_json
from seq2seq_nmt.train.run import build, train
from seq2seq_nmt.translate.translator import Translator

ON_CUDA = ("debug=fast", "trainer=gpu", "logger=csv")  # no TensorBoard figures: faster
BEAM_5 = DecodingOptions(beam_size=5)


def train_on_cuda(out: Path, *overrides: str) -> dict[str, float]:
    """``train`` on the sample corpus on the GPU; fails unless it allocated CUDA memory."""
    torch.cuda.reset_peak_memory_stats()
    metrics = train(make_cfg(out, *ON_CUDA, "test=false", *overrides))
    assert torch.cuda.max_memory_allocated() > 0, "the run allocated no CUDA memory"
    return metrics


def french_lines(n: int) -> list[str]:
    """The first ``n`` French sentences of the bundled sample corpus (``English<TAB>French``)."""
    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()[:n]
    return [line.split("\t")[1] for line in lines]


@pytest.fixture(scope="module")
def cuda_ckpt(tmp_path_factory) -> Path:
    """last.ckpt of 8 epochs on cuda at 32-true with teacher forcing 1.0: a model whose greedy
    choices are clear, so CPU and GPU arithmetic pick the same words."""
    out = tmp_path_factory.mktemp("cuda-run")
    train_on_cuda(out, "trainer.max_epochs=8", "teacher_forcing_ratio=1.0")
    return out / "checkpoints" / "last.ckpt"


@pytest.mark.gpu
@pytest.mark.parametrize(
    "precision",
    ["32-true", pytest.param("bf16-mixed", marks=RunIf(min_cuda_gpus=1, bf16_cuda=True))],
)
@RunIf(min_cuda_gpus=1)
def test_training_on_cuda_gives_finite_losses_and_a_checkpoint(tmp_path, precision):
    metrics = train_on_cuda(tmp_path, f"trainer.precision={precision}", "trainer.max_epochs=2")
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/loss"])
    assert 0.0 <= metrics["val/bleu"] <= 100.0
    assert read_json(tmp_path / "metrics.json")["status"] == "completed"
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    model = Translator.from_checkpoint(ckpt).model  # loads on the CPU
    # mixed precision trains float32 weights: the checkpoint holds no bfloat16
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


@pytest.mark.gpu
@RunIf(min_cuda_gpus=1)
def test_translation_on_cuda_equals_the_cpu_translation(tmp_path, cuda_ckpt):
    source = tmp_path / "source.fr"
    source.write_text("".join(line + "\n" for line in french_lines(40)), encoding="utf-8")
    outputs = {}
    for device in ("cpu", "cuda"):
        proc = run_translate(f"ckpt={cuda_ckpt}", f"input={source}", f"device={device}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs[device] = proc.stdout.splitlines()
    assert len(outputs["cuda"]) == 40 and any(outputs["cuda"])
    assert outputs["cuda"] == outputs["cpu"]


@pytest.mark.gpu
@RunIf(min_cuda_gpus=1)
def test_beam_search_on_cuda_equals_the_cpu_beam_search(cuda_ckpt):
    lines = french_lines(40)
    found = {}
    for device in ("cpu", "cuda"):
        results = Translator.from_checkpoint(cuda_ckpt, device).search(lines, BEAM_5)
        found[device] = [r.hypotheses[0].tokens for r in results]  # the best of each
        found[f"{device} scores"] = torch.tensor([float(r.hypotheses[0].score) for r in results])
    assert found["cuda"] == found["cpu"]
    torch.testing.assert_close(found["cuda scores"], found["cpu scores"], rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@RunIf(min_cuda_gpus=1)
def test_seeded_sampling_on_cuda_reproduces_its_samples(cuda_ckpt):
    """The seed's generators live on the GPU: the same seed draws the same samples again."""
    translator, lines = Translator.from_checkpoint(cuda_ckpt, "cuda"), french_lines(40)
    options = DecodingOptions(strategy="sample", seed=1, nbest=2, temperature=1.5)
    runs = [[[h.tokens for h in r.hypotheses] for r in translator.search(lines, options, 16)]
            for _ in range(2)]  # fmt: skip
    assert runs[0] == runs[1] and all(len(r) == 2 for r in runs[0])


def unwrapped(state: dict) -> dict:
    """A state dict without ``torch.compile``'s ``_orig_mod.`` wrapper prefixes."""
    return {k.replace("_orig_mod.", ""): v for k, v in state.items()}


@pytest.mark.gpu
@RunIf(min_cuda_gpus=1, triton=True)
@pytest.mark.parametrize("mode", ["inference", "training"])
def test_compiled_decoder_matches_eager_on_cuda(tmp_path, monkeypatch, mode):
    """The same weights and batches through ``model.compile=true`` and the eager network: logits
    (and in training, loss gradients) agree. A forward calls the step once per target token,
    so later calls replay the compiled (CUDA-graph) code, whose outputs must not be overwritten
    by the next replay while still in use. Dropout 0: neither draws random numbers."""
    from torch._dynamo.utils import counters

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # compare float32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.compiler.reset()  # nothing compiled earlier in this process is reused
    nets = {}
    for compiled in (False, True):
        pl.seed_everything(0)
        cfg = make_cfg(
            tmp_path, *ON_CUDA, "model.dropout=0.0", f"model.compile={str(compiled).lower()}"
        )
        datamodule, module = build(cfg)
        nets[compiled] = module.net.cuda().train(mode == "training")
    nets[False].load_state_dict(unwrapped(nets[True].state_dict()))
    loader = list(datamodule.val_dataloader())
    batches = [loader[0], loader[-1]]  # two lengths: the second compiles with dynamic shapes
    counters.clear()
    for batch in batches:
        src, src_len, tgt_in, tgt_out = (
            batch[k].cuda() for k in ("src", "src_len", "tgt_in", "tgt_out")
        )
        logits, grads = {}, {}
        for compiled, net in nets.items():
            net.zero_grad(set_to_none=True)
            with torch.set_grad_enabled(mode == "training"):
                logits[compiled] = net(src, src_len, tgt_in, 1.0)[0].clone()
            if mode == "training":
                F.cross_entropy(
                    logits[compiled].flatten(0, 1), tgt_out.flatten(), ignore_index=PAD
                ).backward()
                grads[compiled] = unwrapped(
                    {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
                )
        torch.testing.assert_close(logits[True], logits[False], rtol=1e-4, atol=1e-4)
        if mode == "training":
            assert grads[True].keys() == grads[False].keys() and grads[True]
            torch.testing.assert_close(grads[True], grads[False], rtol=1e-3, atol=1e-4)
    assert counters["stats"]["unique_graphs"] > 0, "model.compile=true compiled no code here"


# RunIf itself, on any machine


def test_runif_needs_the_cuda_gpus_it_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    mark = RunIf(min_cuda_gpus=1)
    assert mark.name == "skipif" and mark.args == (True,)
    assert mark.kwargs["reason"] == "requires at least 1 CUDA GPU (found 0)"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert RunIf(min_cuda_gpus=2).args == (False,)
    assert RunIf(min_cuda_gpus=3).kwargs["reason"] == "requires at least 3 CUDA GPUs (found 2)"
    assert RunIf().args == (False,)


def test_runif_bf16_needs_a_gpu_that_supports_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert "bfloat16" in RunIf(bf16_cuda=True).kwargs["reason"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert RunIf(bf16_cuda=True).args == (True,)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert RunIf(min_cuda_gpus=1, bf16_cuda=True).args == (False,)


def test_runif_names_every_missing_requirement(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr("runif.has_module", lambda name: False)
    reason = RunIf(min_cuda_gpus=1, triton=True, min_torch="999.0").kwargs["reason"]
    assert reason.startswith("requires at least 1 CUDA GPU (found 0), Triton")
    assert "torch >= 999.0" in reason
    monkeypatch.setattr("runif.has_module", lambda name: True)
    assert RunIf(triton=True, min_torch="1.0").args == (False,)
    assert RunIf(min_cuda_gpus=1, strict=True).kwargs["strict"] is True
