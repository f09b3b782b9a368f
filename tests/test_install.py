"""The package as a user installs it: a wheel in a fresh virtual environment, its console
commands run from an empty folder, a user's config folder composed on top of the packaged one.

The fresh environment reuses this one's installed dependencies (a ``.pth`` line naming its
site-packages: no download, offline) and gets the project itself only from the wheel, installed
with ``--no-deps``; the checkout is on no path of the commands run."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from packaging.version import Version

from helpers import ROOT

FLOORS = ROOT / ".ci" / "floors.txt"  # the versions CI's second environment installs

# A debug setting of the user's own, composed on top of the packaged debug=limit.
USER_DEBUG = """# @package _global_
defaults:
  - limit
model:
  emb_size: 32
  hidden_size: 32
trainer:
  max_epochs: 2
"""


def run(cmd: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """``cmd`` in ``cwd``; its output is shown when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def build_wheel(out: Path) -> Path:
    """A wheel of a copy of the checkout's package files (nothing is built inside the checkout)."""
    src = out / "src-copy"
    shutil.copytree(
        ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    run([*cmd, "-w", str(out / "dist"), str(src)], out, os.environ.copy())
    (wheel,) = (out / "dist").glob("seq2seq_nmt-*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A virtual environment whose only extra path is this one's site-packages; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (Path(site) / "_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """The fresh environment's bin folder with the wheel installed, and the commands' environment."""
    tmp = tmp_path_factory.mktemp("install")
    wheel, python = build_wheel(tmp), fresh_venv(tmp / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"XDG_CACHE_HOME": str(tmp / "cache"), "OMP_NUM_THREADS": "1"}
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp, env)
    return python.parent, env


@pytest.mark.slow
def test_the_import_comes_from_the_wheel(installed, tmp_path):
    """The package, its sample corpus and web page, and the Optuna sweeper plugin."""
    bin_dir, env = installed
    code = (
        "import seq2seq_nmt, hydra_plugins.nmt_optuna_sweeper as s; from seq2seq_nmt.data import corpus; "
        "print(seq2seq_nmt.__file__, s.__file__, corpus.SAMPLE_PATH)"
    )
    where = run([bin_dir / "python", "-c", code], tmp_path, env).stdout.split()
    assert len(where) == 3 and Path(where[2]).is_file(), where
    assert (Path(where[0]).parent / "serve" / "static" / "index.html").is_file()  # the web page
    for path in map(Path, where):
        assert path.is_relative_to(bin_dir.parent) and not path.is_relative_to(ROOT), path


@pytest.mark.slow
def test_installed_commands_train_translate_average_and_report(installed, tmp_path):
    """From an empty folder: nmt-train on the bundled sample with a debug option from the user's
    own config folder, nmt-translate with its checkpoint, nmt-average and nmt-report on its run,
    nmt-serve refusing a missing checkpoint in one line."""
    bin_dir, env = installed
    user_conf = tmp_path / "my_conf"
    (user_conf / "debug").mkdir(parents=True)
    (user_conf / "debug" / "tiny.yaml").write_text(USER_DEBUG)
    work = tmp_path / "work"
    work.mkdir()
    run([bin_dir / "nmt-train", "--config-dir", user_conf, "debug=tiny", "hydra.run.dir=sweep/0"],
        work, env)  # fmt: skip
    job = work / "sweep" / "0"
    cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
    assert (cfg.model.hidden_size, cfg.trainer.limit_train_batches) == (32, 5)  # tiny on limit
    ckpt = job / "checkpoints" / "last.ckpt"
    payload = torch.load(ckpt, map_location="cpu", weights_only=True)["nmt"]
    assert payload["model"]["hidden_size"] == 32
    out = run([bin_dir / "nmt-translate", f"ckpt={ckpt}", "text=Je suis grand."], work, env)
    assert out.stdout.strip() and out.stdout.count("\n") == 1, out.stdout
    run([bin_dir / "nmt-average", job, "--last", "2", "-o", work / "avg.ckpt"], work, env)
    out = run([bin_dir / "nmt-translate", f"ckpt={work / 'avg.ckpt'}", "text=Il est grand."],
              work, env)  # fmt: skip
    assert out.stdout.strip(), out.stderr
    report = run([bin_dir / "nmt-report", work / "sweep"], work, env).stdout
    assert "1 jobs" in report and "completed" in report, report
    serve = subprocess.run([bin_dir / "nmt-serve", "ckpt=missing.ckpt"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert serve.returncode == 2 and serve.stderr.startswith("error: "), serve.stderr
    assert sorted(p.name for p in work.iterdir()) == ["avg.ckpt", "sweep"]  # nothing else written


def test_ci_tests_the_floor_of_every_dependency_pyproject_allows():
    """Each ``>=`` floor of pyproject.toml (extras included, ruff aside) is pinned in .ci/floors.txt."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on, as in CI
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra
    ]
    floors = dict(re.findall(r"^([\w.-]+)(?:\[[\w,]+\])?>=([\w.]+)", "\n".join(deps), re.M))
    floors.pop("ruff")
    pinned = dict(re.findall(r"^([\w.-]+)==([\w.]+)$", FLOORS.read_text(), re.M))
    assert {k: Version(v) for k, v in pinned.items()} == {k: Version(v) for k, v in floors.items()}
