"""Lightning DDP under Hydra: every rank joins the one run directory that rank 0 owns.

Lightning's subprocess launcher restarts the script for ranks 1..N-1 with the original command
line plus ``hydra.run.dir=<run dir>``. Under ``--multirun`` that command line is the whole sweep,
so each rank would start a sweep of its own. :class:`HydraDDPStrategy` starts each rank as the
current job alone (its config name and task overrides) in the job's directory; the
``${rank_zero:...}`` settings of ``conf/hydra/`` keep the config copy and the log file to rank 0.
:class:`DDPJobEnd` (a Hydra callback) ends a job's ranks and process group, so that the next job
of a multirun starts its own.
"""

import os
import subprocess
import sys

import pytorch_lightning.strategies.launchers.subprocess_script as subprocess_script
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from hydra.utils import get_original_cwd, to_absolute_path
from pytorch_lightning.strategies import DDPStrategy

# set by Lightning's launcher in the launching process; while set, Lightning launches nothing new
LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_children: list[subprocess.Popen] = []  # the ranks this process launched for the current job


def hydra_job_command(local_rank: int) -> tuple[list[str], str]:
    """Command line and working directory that rerun the current Hydra job as rank ``local_rank``.

    Hydra overrides of the command line (``hydra.*``) other than the run directory are not
    passed on: the ranks > 0 write nothing of their own.
    """
    import __main__

    hc = HydraConfig.get()
    spec = getattr(__main__, "__spec__", None)
    script = ["-m", spec.name] if spec is not None else [to_absolute_path(sys.argv[0])]
    dirs = [
        f"--config-dir={s.path}" for s in hc.runtime.config_sources if s.provider == "command-line"
    ]
    overrides = [*hc.overrides.task, f'hydra.run.dir="{hc.runtime.output_dir}"']
    return [sys.executable, *script, f"--config-name={hc.job.config_name}", *dirs, *overrides], (
        get_original_cwd()
    )


class _HydraJobLauncher(subprocess_script._SubprocessScriptLauncher):
    """Lightning's launcher, building the ranks' command lines with :func:`hydra_job_command`."""

    def _call_children_scripts(self) -> None:
        default = subprocess_script._hydra_subprocess_cmd
        subprocess_script._hydra_subprocess_cmd = hydra_job_command
        try:
            super()._call_children_scripts()
        finally:
            subprocess_script._hydra_subprocess_cmd = default
        _children.extend(self.procs)


class HydraDDPStrategy(DDPStrategy):
    """``DDPStrategy`` whose launched ranks rerun the current Hydra job (also within a multirun).

    Where the processes are started by someone else (SLURM, torchrun) it is plain DDP.
    """

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        launcher = self._launcher
        if (
            type(launcher) is subprocess_script._SubprocessScriptLauncher
            and HydraConfig.initialized()
        ):
            self._launcher = _HydraJobLauncher(
                launcher.cluster_environment, launcher.num_processes, launcher.num_nodes
            )


class DDPJobEnd(Callback):
    """At the end of a Hydra job: wait for the ranks this process launched (kill them if the job
    failed, or after ``timeout`` seconds), destroy the process group and clear the launcher's
    environment variables."""

    def __init__(self, timeout: float = 120.0):
        self.timeout = timeout

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if not _children:
            return
        for proc in _children:
            if job_return.status == JobStatus.FAILED:
                proc.kill()
            try:
                proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _children.clear()
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for var in LAUNCHER_VARIABLES:
            os.environ.pop(var, None)
