"""Lightning DDP under Hydra: every rank joins the one run directory that rank 0 owns.

Lightning's subprocess launcher restarts the script for ranks 1..N-1 with the original command
line plus ``hydra.run.dir=<run dir>``. Under ``--multirun`` that command line is the whole sweep,
so each rank would start a sweep of its own. :class:`HydraDDPStrategy` starts each rank as the
current job alone (its config name and task overrides) in the job's directory; the
``${rank_zero:...}`` settings of ``conf/hydra/`` keep the config copy and the log file to rank 0.
``seq2seq_nmt.train.ddp_job.DDPJobEnd`` (a Hydra callback) ends a job's ranks and process
group, so that the next job of a multirun starts its own.
"""

import pytorch_lightning.strategies.launchers.subprocess_script as subprocess_script
from hydra.core.hydra_config import HydraConfig
from pytorch_lightning.strategies import DDPStrategy

from seq2seq_nmt.train.ddp_job import hydra_job_command, launched


class _HydraJobLauncher(subprocess_script._SubprocessScriptLauncher):
    """Lightning's launcher, building the ranks' command lines with :func:`hydra_job_command`."""

    def _call_children_scripts(self) -> None:
        default = subprocess_script._hydra_subprocess_cmd
        subprocess_script._hydra_subprocess_cmd = hydra_job_command
        try:
            super()._call_children_scripts()
        finally:
            subprocess_script._hydra_subprocess_cmd = default
        launched.extend(self.procs)


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
