"""The sweep's report, written by itself at the end of every multirun (a Hydra callback,
registered in ``conf/hydra/default.yaml``): the table on the console, the CSV files and figures in
the sweep directory (:mod:`seq2seq_nmt.tools.report`). Also when jobs failed: Hydra's sweepers
raise before their end-of-multirun callbacks then, so the report is written at exit instead."""

import atexit
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReport(Callback):
    """Writes ``nmt-report <sweep dir>`` once, when the multirun ends or its process exits."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.sweep_dir = enabled, None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if self.enabled:
            self.sweep_dir = Path(config.hydra.sweep.dir)
            atexit.register(self.write)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        atexit.unregister(self.write)
        self.write()

    def write(self) -> None:
        """Print the report; a sweep that cannot be reported on gets a warning, not an error."""
        if self.sweep_dir is None:
            return
        from seq2seq_nmt.tools.report import ReportError, report

        sweep_dir, self.sweep_dir = self.sweep_dir, None
        try:
            print(report(sweep_dir), flush=True)
        except (ReportError, OSError, ValueError) as e:
            log.warning("no report for the sweep %s: %s", sweep_dir, e)
