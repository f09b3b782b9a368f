"""Helpers the tests share: paths of the checkout and Hydra composition outside an app.

Fast settings are the config group ``debug=fast`` (conf/debug/fast.yaml), not a list here.
"""

import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import seq2seq_nmt  # noqa: F401  (registers the resolvers the configs use)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "src" / "seq2seq_nmt" / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"


def make_cfg(out_dir: Path, *overrides: str, config: str = "train") -> DictConfig:
    """Compose ``conf/<config>.yaml`` as ``python train.py`` would, writing under ``out_dir``."""
    paths = [f"paths.root_dir={ROOT}", f"paths.output_dir={out_dir}"] if config == "train" else []
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(config, overrides=[*paths, *overrides])


def run_translate(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python translate.py ARGS`` in the checkout, standard output and error captured as text."""
    return subprocess.run(
        [sys.executable, "translate.py", *args], cwd=ROOT, capture_output=True, text=True, **kwargs
    )


def imported(stderr: str) -> set[str]:
    """The modules a ``python -X importtime`` process imported, read from its standard error."""
    lines = (line for line in stderr.splitlines() if line.startswith("import time:"))
    return {line.rsplit("|", 1)[-1].strip() for line in lines}


def not_imports(stderr: str) -> list[str]:
    """The lines of a ``python -X importtime`` process's standard error that ``imported`` skips."""
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]
