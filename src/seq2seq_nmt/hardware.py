"""What a config asks of the machine, checked before any data is read: the devices of
``trainer.accelerator`` (``trainer=gpu``, ``trainer=ddp trainer.accelerator=gpu``) and the
system a sweep launcher submits to (``hydra/launcher=slurm``). Each is a ``Requirement`` in a
registry: a new accelerator or launcher is one line there."""

import shutil
import sys
from collections.abc import Callable
from typing import Any, Protocol

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf


class HardwareError(ValueError):
    """A device or system the config asks for that this machine lacks (one-line message)."""


class Requirement(Protocol):
    def missing(self) -> str | None:
        """What is absent, in words (None: present)."""
        ...


class Devices:
    """``count()`` devices of a kind, named ``what``."""

    def __init__(self, what: str, count: Callable[[], int]):
        self.what, self.count = what, count

    def missing(self) -> str | None:
        return None if self.count() else f"no {self.what} on this machine"


class Commands:
    """The commands ``names`` of a system ``what`` on the PATH."""

    def __init__(self, what: str, *names: str):
        self.what, self.names = what, names

    def missing(self) -> str | None:
        absent = [n for n in self.names if shutil.which(n) is None]
        return f"no {self.what} here ({', '.join(absent)} not found on PATH)" if absent else None


def _cuda() -> int:
    return torch.cuda.device_count()


def _mps() -> int:
    return int(torch.backends.mps.is_available())


# trainer.accelerator -> the devices it needs (auto and cpu need none)
ACCELERATORS: dict[str, Devices] = {
    "gpu": Devices("CUDA GPU", _cuda),
    "cuda": Devices("CUDA GPU", _cuda),
    "mps": Devices("Apple MPS device", _mps),
}
# hydra.launcher._target_ -> the system it submits jobs to
LAUNCHERS: dict[str, Requirement] = {
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher": Commands(
        "SLURM", "sbatch", "srun"
    ),
}


def _device_count(devices: Any) -> int | None:
    """How many devices ``trainer.devices`` asks for (None: auto or a form not counted here)."""
    if isinstance(devices, ListConfig | list):
        return len(devices)
    return devices if isinstance(devices, int) and not isinstance(devices, bool) else None


def check_devices(cfg: DictConfig) -> None:
    """HardwareError when ``trainer.accelerator`` needs devices this machine lacks, or
    ``trainer.devices`` asks for more of them than it has."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator")
    need = ACCELERATORS.get(str(accelerator))
    if need is None:
        return
    if why := need.missing():
        raise HardwareError(f"trainer.accelerator={accelerator}: {why}; use trainer=cpu")
    asked, has = _device_count(OmegaConf.select(cfg, "trainer.devices")), need.count()
    if asked is not None and asked > has:
        raise HardwareError(f"trainer.devices={asked}: this machine has {has} {need.what}(s)")


def check_launcher(hydra_cfg: DictConfig) -> None:
    """HardwareError when the sweep launcher's system (SLURM) is absent."""
    target = OmegaConf.select(hydra_cfg, "launcher._target_")
    need = LAUNCHERS.get(str(target))
    if need is not None and (why := need.missing()):
        name = OmegaConf.select(hydra_cfg, "runtime.choices", default={}).get("hydra/launcher")
        raise HardwareError(f"hydra/launcher={name or target}: {why}")


class LauncherCheck(Callback):
    """Hydra callback (conf/hydra/default.yaml): before a multirun launches any job, a launcher
    whose system is absent is one line on stderr and exit status 2."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_launcher(config.hydra)
        except HardwareError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
