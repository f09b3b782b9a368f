"""Training precision: bf16 keeps the fused optimizer and clipping, caches its weight casts, and
falls back to float32 (with a warning) on a CPU without native bf16."""

import logging
import os

import pytest
import torch

from helpers import make_cfg
from seq2seq_nmt.train import precision
from seq2seq_nmt.train.precision import Bf16Mixed, effective_precision, has_native_bf16
from seq2seq_nmt.train.run import make_trainer

ZEN3 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"  # AVX2 only
XEON = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd atomics\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [(ZEN3, False), (XEON, True), (ZEN4, True), (GRAVITON3, True), (GRAVITON2, False)],
)
def test_native_bf16_is_read_off_the_cpu_flags(cpuinfo, native):
    assert has_native_bf16(cpuinfo) is native


@pytest.mark.parametrize(
    ("flags", "speedup", "pays"),
    [(True, 3.0, True), (True, 0.6, False), (True, 1.1, False), (False, 3.0, False)],
)
def test_bf16_pays_only_with_the_flag_and_a_faster_matmul(monkeypatch, flags, speedup, pays):
    """AVX512-BF16 without AMX has been measured at 0.6x float32: the flag alone is not enough.
    The decision is left in the environment, where the run's other processes read it."""
    monkeypatch.delenv(precision.DECISION_ENV, raising=False)
    probed = []
    monkeypatch.setattr(precision, "has_native_bf16", lambda text: flags)
    monkeypatch.setattr(precision, "bf16_matmul_speedup", lambda: probed.append(1) or speedup)
    assert precision.native_bf16_cpu.__wrapped__() is pays
    assert probed == ([1] if flags else [])  # no flag: no probe
    assert precision.native_bf16_cpu.__wrapped__() is pays  # inherited, not probed again
    assert len(probed) <= 1 and os.environ[precision.DECISION_ENV] == ("1" if pays else "0")


def test_the_probe_times_a_real_matmul():
    assert 0.05 < precision.bf16_matmul_speedup(rows=16, size=64, repeats=2) < 100


@pytest.mark.parametrize("asked", ["bf16-mixed", "bf16-true"])
def test_bf16_falls_back_to_fp32_with_a_warning_on_a_cpu_without_it(monkeypatch, caplog, asked):
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    with caplog.at_level(logging.WARNING, logger="seq2seq_nmt.train.precision"):
        assert effective_precision(asked, "cpu") == "32-true"
    (record,) = caplog.records
    assert f"trainer.precision={asked}" in record.getMessage() and "\n" not in record.getMessage()
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)
    assert effective_precision(asked, "cpu") == asked
    assert effective_precision("16-mixed", "cpu") == "16-mixed"


def test_bf16_mixed_trainer_keeps_fused_adam_clips_and_caches_casts(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)
    cfg = make_cfg(tmp_path, "debug=fast", "trainer.precision=bf16-mixed")
    trainer = make_trainer(cfg, logger=False)
    plugin = trainer.precision_plugin
    assert isinstance(plugin, Bf16Mixed) and plugin.scaler is None
    with plugin.forward_context():
        assert torch.is_autocast_cache_enabled()
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    weight = torch.nn.Parameter(torch.full((3,), 10.0))
    weight.grad = torch.full((3,), 4.0)
    optimizer = torch.optim.Adam([weight], fused=True)
    plugin.clip_gradients(optimizer, clip_val=1.0)  # Lightning's own plugin refuses this
    assert torch.isclose(weight.grad.norm(), torch.tensor(1.0))


def test_fp32_fallback_reaches_the_trainer(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    trainer = make_trainer(make_cfg(tmp_path, "debug=fast", "trainer.precision=bf16-mixed"))
    assert not isinstance(trainer.precision_plugin, Bf16Mixed)
    assert trainer.precision == "32-true"
