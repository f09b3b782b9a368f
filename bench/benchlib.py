"""What the bench scripts share: the benchmark's data and model settings, config composition,
the machine's description, peak-memory measurement, a validation-BLEU clock and the command line
of the scripts timed in interleaved rounds."""

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from seq2seq_nmt.data.datamodule import _lengths as token_lengths
from seq2seq_nmt.data.vocab import PAD
from seq2seq_nmt.train.lightning_module import TranslationModule
from seq2seq_nmt.train.precision import device_type
from seq2seq_nmt.train.run import build

ROOT = Path(__file__).resolve().parents[1]
# paths.data_dir of the benches: the real corpora beside the checkout unless NMT_DATA_DIR says
os.environ.setdefault("NMT_DATA_DIR", str(ROOT.parent / "shared" / "data"))

# The tutorial corpus with the article's prefix list and max_length=12, French -> English;
# embedding 256, GRU 256, one layer; teacher forcing 0.5.
BENCH_DATA = (
    "dataset=tutorial",
    "dataset.prefixes=article",
    "dataset.max_length=12",
    "dataset.src_lang=fr",
    "dataset.tgt_lang=en",
    "model.emb_size=256",
    "model.hidden_size=256",
    "model.num_layers=1",
    "model.cell=gru",
    "teacher_forcing_ratio=0.5",
    "trainer=cpu",
)


def rounds_parser(doc: str, steps: int, rounds: int, steps_help: str) -> argparse.ArgumentParser:
    """``--steps``, ``--warmup``, ``--rounds`` and Hydra overrides: the command line of a script
    that times ways of training in interleaved rounds (its description: ``doc``'s first part)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=steps, help=steps_help)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    return parser


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def compose(out_dir: Path, *overrides: str) -> DictConfig:
    """``conf/train.yaml`` as ``python train.py`` would compose it; a later override of a key
    replaces an earlier one (so the command line can change any of ``BENCH_DATA``)."""
    merged = {_key(o): o for o in (f"paths.root_dir={ROOT}", f"paths.output_dir={out_dir}")}
    merged |= {_key(o): o for o in overrides}
    with initialize_config_dir(str(ROOT / "src" / "seq2seq_nmt" / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=list(merged.values()))


def device_of(cfg: DictConfig) -> torch.device:
    """Where the configured trainer runs (``seq2seq_nmt.train.precision.device_type``)."""
    return torch.device(device_type(cfg.trainer.accelerator))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    cpu = platform.processor() or "CPU"
    if Path("/proc/cpuinfo").is_file():
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return cpu


def build_bench(
    prefix: str, *overrides: str
) -> tuple[DictConfig, pl.LightningDataModule, TranslationModule]:
    """The benchmark's config with ``overrides`` (runs under a new temporary folder named
    ``prefix``), seeded, and its datamodule (set up) and module, as ``train.py`` builds them."""
    cfg = compose(Path(tempfile.mkdtemp(prefix=prefix)), *BENCH_DATA, *overrides)
    pl.seed_everything(cfg.seed, workers=True)
    return cfg, *build(cfg)


def describe_machine(cfg: DictConfig) -> str:
    """CPU model, cores, torch threads, GPU (or none), torch version and the load average."""
    cpu = cpu_name()
    gpu = torch.cuda.get_device_name() if device_of(cfg).type == "cuda" else "no GPU"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()}-core {cpu} CPU ({torch.get_num_threads()} torch threads), {gpu}; "
        f"torch {torch.__version__}; load average {load}"
    )


def padding_shares(loader) -> tuple[float, float]:
    """The shares of padding in one epoch of ``loader``'s source and target tensors (each
    sentence one token longer than its ids: EOS, or SOS on the decoder's input)."""
    ds, batches = loader.dataset, loader.batch_sampler.batches()
    shares = []
    for side in (ds.src, ds.tgt):
        lengths = token_lengths(side)[ds.index] + 1
        padded = sum(len(b) * lengths[b].max() for b in batches)
        shares.append(1 - sum(lengths[b].sum() for b in batches) / padded)
    return shares[0], shares[1]


class PeakMemory:
    """Peak memory while the block runs, in MiB: CUDA's peak allocation on a GPU, else this
    process's resident set size sampled every 5 ms."""

    def __init__(self, device: torch.device):
        self.device, self.mib, self._stop = device, 0.0, threading.Event()

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as f:
            while True:
                f.seek(0)
                self.mib = max(self.mib, int(f.read().split()[1]) * page / 2**20)
                if self._stop.wait(0.005):
                    return

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif Path("/proc/self/statm").is_file():
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif hasattr(self, "_thread"):
            self._stop.set()
            self._thread.join()


class BleuClock(pl.Callback):
    """Appends a CSV row at each validation: seconds since training started (validation
    included), of which training alone, epoch, step, val/bleu, val/loss and the target tokens
    (padding excluded) trained on per second of training."""

    FIELDS = ("seconds", "train_seconds", "epoch", "step", "val_bleu", "val_loss", "tokens_per_s")

    def __init__(self, path: str):
        self.path, self.start, self.in_validation = Path(path), 0.0, 0.0
        self.val_started, self.tokens = 0.0, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.tokens += int((batch["tgt_out"] != PAD).sum())

    def on_train_start(self, trainer, module) -> None:
        self.start = time.perf_counter()
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(",".join(self.FIELDS) + "\n")

    def on_validation_start(self, trainer, module) -> None:
        self.val_started = time.perf_counter()

    def on_validation_end(self, trainer, module) -> None:
        now = time.perf_counter()
        if trainer.sanity_checking:  # before on_train_start: not inside the clock
            return
        self.in_validation += now - self.val_started
        if not trainer.is_global_zero:
            return
        m, train_seconds = trainer.callback_metrics, now - self.start - self.in_validation
        row = (
            now - self.start, train_seconds, trainer.current_epoch, trainer.global_step,
            float(m["val/bleu"]), float(m["val/loss"]), self.tokens / train_seconds,
        )  # fmt: skip
        with self.path.open("a") as f:
            f.write(",".join(f"{x:.2f}" if isinstance(x, float) else str(x) for x in row) + "\n")
