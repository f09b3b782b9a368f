"""Shared fixtures: the real corpora, a trained run and its checkpoint (helpers: helpers.py)."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helpers import SHARED_DATA, make_cfg

# One intra-op thread per process: the models under test are tiny, and two spinning OpenMP
# threads per process slow everything down by an order of magnitude when processes share cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
# paths.data_dir of every composed config and train.py subprocess: the real corpora when present
if SHARED_DATA.is_dir():
    os.environ.setdefault("NMT_DATA_DIR", str(SHARED_DATA))


@pytest.fixture
def shared_data() -> Path:
    """The real corpora beside the checkout (see ../shared/data/README.md), else skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not available: {SHARED_DATA} does not exist")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A run directory of a short training on the sample corpus (checkpoints/, tensorboard/)."""
    from seq2seq_nmt.train.run import train

    out = tmp_path_factory.mktemp("trained")
    train(make_cfg(out, "debug=fast", "trainer.max_epochs=8", "teacher_forcing_ratio=1.0"))
    return out


@pytest.fixture(scope="session")
def trained_ckpt(trained_run) -> Path:
    """The last checkpoint of ``trained_run``."""
    return trained_run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def served(trained_ckpt) -> Iterator[str]:
    """The URL of an ``nmt-serve`` of ``trained_ckpt`` (batches wait up to 50 ms for others)."""
    pytest.importorskip("fastapi", reason="nmt-serve needs the .[serve] extra")
    from serving import server

    with server(trained_ckpt, "batching.max_wait_ms=50") as (_, url):
        yield url
