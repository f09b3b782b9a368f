"""The Hydra side of DDP jobs: the command line that reruns the current job as another rank, and
the Hydra callback that ends a job's ranks (``seq2seq_nmt.train.distributed`` launches them).

Lightning is not imported here: Hydra builds this callback before a run's config is checked, so a
bad setting is reported without waiting for Lightning to load.
"""

import os
import subprocess
import sys

import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from hydra.utils import get_original_cwd, to_absolute_path

# set by Lightning's launcher in the launching process; while set, Lightning launches nothing new
LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
launched: list[subprocess.Popen] = []  # the ranks this process launched for the current job


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


class DDPJobEnd(Callback):
    """At the end of a Hydra job: wait for the ranks this process launched (kill them if the job
    failed, or after ``timeout`` seconds), destroy the process group and clear the launcher's
    environment variables."""

    def __init__(self, timeout: float = 120.0):
        self.timeout = timeout

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if not launched:
            return
        for proc in launched:
            if job_return.status == JobStatus.FAILED:
                proc.kill()
            try:
                proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        launched.clear()
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for var in LAUNCHER_VARIABLES:
            os.environ.pop(var, None)
