"""Shared fixtures: Hydra composition outside an app, the real corpora, a trained checkpoint."""

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import seq2seq_nmt  # noqa: F401  (registers the resolvers the configs use)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# One intra-op thread per process: the models under test are tiny, and two spinning OpenMP
# threads per process slow everything down by an order of magnitude when processes share cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

# Fast settings for the bundled sample corpus: small model, CPU, no progress bar.
FAST = [
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "model.emb_size=64",
    "model.hidden_size=64",
]


def make_cfg(out_dir: Path, *overrides: str, config: str = "train") -> DictConfig:
    """Compose ``conf/<config>.yaml`` as ``python train.py`` would, writing under ``out_dir``."""
    paths = [f"paths.root_dir={ROOT}", f"paths.output_dir={out_dir}"] if config == "train" else []
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(config, overrides=[*paths, *overrides])


@pytest.fixture
def shared_data() -> Path:
    """The real corpora beside the checkout (see ../shared/data/README.md), else skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not available: {SHARED_DATA} does not exist")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A run directory of a short training on the sample corpus (checkpoints/, tensorboard/)."""
    from seq2seq_nmt.training import train

    out = tmp_path_factory.mktemp("trained")
    train(make_cfg(out, *FAST, "trainer.max_epochs=8", "teacher_forcing_ratio=1.0"))
    return out


@pytest.fixture(scope="session")
def trained_ckpt(trained_run) -> Path:
    """The last checkpoint of ``trained_run``."""
    return trained_run / "checkpoints" / "last.ckpt"
