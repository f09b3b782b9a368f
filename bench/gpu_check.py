"""The Python side of ``bench/gpu_check.sh`` (the GPU check in one call; run that script, not
this file). Subcommands:

    probe --json F              what this Python has: torch, CUDA, the GPU, the project's imports
    overrides [--data-dir D]    the benchmark's data and model overrides, one per line
    translate --run DIR --out D [OVERRIDE ...]   the run's best checkpoint on the test split,
                                on cuda, greedy, beam and sampling: in-process timing and
                                translate.py
    report --work DIR --json F  every step's figures and status, as one JSON

and the callback ``gpu_check.GpuClock`` that training runs get on the command line
(``+callbacks.gpu_clock._target_=gpu_check.GpuClock +callbacks.gpu_clock.path=F``).
"""

import argparse
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
# what training, translation and the tests import, beyond torch and Lightning
NEEDED = ("hydra", "omegaconf", "sacrebleu", "sentencepiece", "torchmetrics", "matplotlib",
          "scipy", "filelock", "tensorboard", "seq2seq_nmt")  # fmt: skip
OPTIONAL = {"triton", "pytest"}  # without them only the compiled runs or the tests fail
TUTORIAL = Path("tutorial") / "eng-fra.txt"


def mib(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 1)


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class GpuClock(pl.Callback):
    """Target tokens trained (padding excluded) against training time (validation excluded),
    at each validation and at the end, with peak GPU memory; written to ``path`` as JSON after
    each validation, so a run stopped from outside keeps its figures so far.

    Tokens are summed on the device and read only at validation: no extra sync per step."""

    def __init__(self, path: str):
        self.path, self.start, self.in_validation, self.val_started = Path(path), None, 0.0, 0.0
        self.tokens: int | torch.Tensor = 0
        self.rows: list[dict] = []
        self.final: dict | None = None

    def on_train_start(self, trainer, module) -> None:
        sync()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        from seq2seq_nmt.data.vocab import PAD

        self.tokens = self.tokens + (batch["tgt_out"] != PAD).sum()

    def on_validation_start(self, trainer, module) -> None:
        if self.start is not None and not trainer.sanity_checking:
            sync()
            self.val_started = time.perf_counter()

    def _point(self, trainer, now: float) -> dict:
        return {
            "seconds": round(now - self.start, 3),
            "train_seconds": round(now - self.start - self.in_validation, 3),
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "tokens": int(self.tokens),
        }

    def on_validation_end(self, trainer, module) -> None:
        if self.start is None or trainer.sanity_checking:
            return
        now = time.perf_counter()  # validation ends on the host: its outputs were read
        self.in_validation += now - self.val_started
        bleu = trainer.callback_metrics.get("val/bleu")
        self.rows.append(
            self._point(trainer, now) | {"val_bleu": None if bleu is None else float(bleu)}
        )
        self._write(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if self.start is None:
            return
        sync()
        self.final = self._point(trainer, time.perf_counter())
        self._write(trainer, module)

    def _write(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        cuda = module.device.type == "cuda"
        data = {
            "rows": self.rows, "final": self.final, "device": str(module.device),
            "gpu": torch.cuda.get_device_name(module.device) if cuda else None,
            "precision": str(trainer.precision), "strategy": type(trainer.strategy).__name__,
            "world_size": trainer.world_size,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "peak_gpu_mib": mib(torch.cuda.max_memory_allocated(module.device)) if cuda else None,
            "peak_gpu_reserved_mib": mib(torch.cuda.max_memory_reserved(module.device)) if cuda else None,
        }  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.path)


# probe


def probe(args) -> int:
    """Print and write what this Python has; 3 without CUDA, 4 when a needed import fails."""
    found = {
        "python": f"{sys.executable} ({platform.python_version()})",
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "cuda_devices": torch.cuda.device_count(),
        "pytorch_lightning": pl.__version__, "cpu_count": os.cpu_count(),
    }  # fmt: skip
    if found["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        found |= {
            "gpu": props.name, "gpu_memory_mib": mib(props.total_memory),
            "capability": f"{props.major}.{props.minor}",
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }  # fmt: skip
    missing = {}
    for name in (*NEEDED, *sorted(OPTIONAL)):
        try:
            module = importlib.import_module(name)
            found[f"{name}_version"] = getattr(module, "__version__", "?")
        except Exception as e:  # any failure to import is a finding
            missing[name] = f"{type(e).__name__}: {e}"
    found["missing"] = missing
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(found, indent=2))
    for key, value in found.items():
        print(f"  {key}: {value}")
    if not found["cuda_available"]:
        return 3
    return 4 if set(missing) - OPTIONAL else 0


# data


def data_overrides(data_dir: str | None, cache_dir: str | None) -> list[str]:
    """The benchmark's data and model settings (``benchlib.BENCH_DATA``, trainer left to the
    caller) read from ``data_dir`` without downloading; the bundled sample corpus (same model)
    when ``data_dir`` has no ``tutorial/eng-fra.txt``."""
    from benchlib import BENCH_DATA

    keep = [o for o in BENCH_DATA if not o.startswith("trainer")]
    cache = [f"paths.cache_dir={cache_dir}"] if cache_dir else []
    if data_dir and (Path(data_dir) / TUTORIAL).is_file():
        return [*keep, f"paths.data_dir={data_dir}", "dataset.corpus.download=false", *cache]
    return ["dataset=sample", *(o for o in keep if o.startswith(("model.", "teacher"))), *cache]


def overrides(args) -> int:
    print("\n".join(data_overrides(args.data_dir, args.cache_dir)))
    return 0


def test_split(out: Path, overrides: list[str]) -> tuple[list[str], list[str]]:
    """Sources and references of the test split (normalised, as training makes it), for any
    data overrides (``translate_bench.test_split``)."""
    from benchlib import compose
    from translate_bench import test_split as pairs_of

    test = pairs_of(compose(out, *overrides))
    return [src for src, _ in test], [ref for _, ref in test]


# translate


def best_checkpoint(run: Path) -> Path:
    metrics = read_json(run / "metrics.json") or {}
    best = metrics.get("best_checkpoint")
    return Path(best) if best and Path(best).is_file() else run / "checkpoints" / "last.ckpt"


def translate(args) -> int:
    """The run's best checkpoint on the test split on cuda, greedy, beam and seeded sampling:
    sentences/s of ``Translator.search`` (after a warm-up) and its BLEU, then ``translate.py
    device=cuda`` on the same files (its BLEU from stderr, and whether its output is the same:
    for sampling, whether the seed reproduces it in another process)."""
    from seq2seq_nmt.decoding.options import DecodingOptions
    from seq2seq_nmt.metrics import corpus_bleu
    from seq2seq_nmt.translate.translator import Translator

    out, ckpt = Path(args.out), best_checkpoint(Path(args.run))
    out.mkdir(parents=True, exist_ok=True)
    lines, refs = test_split(out / "split", args.overrides)
    source, reference = out / "test.src", out / "test.ref"
    source.write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    reference.write_text("".join(t + "\n" for t in refs), encoding="utf-8")
    translator = Translator.from_checkpoint(ckpt, device="cuda")
    result = {"checkpoint": str(ckpt), "sentences": len(lines), "batch_size": args.batch_size}
    searches = {"greedy": {}, f"beam{args.beam}": {"beam_size": args.beam},
                "sample": {"strategy": "sample", "seed": 1}}  # fmt: skip
    for key, settings in searches.items():
        options = DecodingOptions.from_mapping(settings)
        translator.search(lines[: args.batch_size], options, args.batch_size)  # warm-up
        sync()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        found = translator.search(lines, options, args.batch_size)
        hyps = [translator.text(r) for r in found]
        sync()
        seconds = time.perf_counter() - start
        row = {
            "sentences_per_s": round(len(lines) / seconds, 1), "seconds": round(seconds, 3),
            "bleu": round(corpus_bleu(hyps, refs)[0], 2),
            "peak_gpu_mib": mib(torch.cuda.max_memory_allocated()),
        }  # fmt: skip
        hyp_file = out / f"{key}.hyp"
        cli = [sys.executable, "translate.py", f"ckpt={ckpt}", f"input={source}",
               f"reference={reference}", "device=cuda", *(f"{k}={v}" for k, v in settings.items()),
               f"batch_size={args.batch_size}", f"output={hyp_file}"]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=300)
        row["cli_seconds"] = round(time.perf_counter() - start, 1)
        score = re.search(r"BLEU = ([0-9.]+)", proc.stderr)
        row["cli_status"] = "ok" if proc.returncode == 0 and score else "failed"
        row["cli_bleu"] = float(score.group(1)) if score else None
        if proc.returncode == 0 and hyp_file.is_file():
            row["cli_same_output"] = hyp_file.read_text(encoding="utf-8").splitlines() == hyps
        else:
            row["cli_error_tail"] = tail(proc.stderr, 20)
        result[key] = row
        print(f"{key}: {json.dumps(row)}")
    (out / "translate.json").write_text(json.dumps(result, indent=2))
    return (
        0
        if all(result[k]["cli_status"] == "ok" for k in result if isinstance(result[k], dict))
        else 1
    )


# report


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


def step_record(work: Path, name: str) -> dict:
    """What gpu_check.sh recorded of step ``name``: status (ok, failed, timeout, skipped),
    exit code, seconds, limit; the log's tail unless it passed."""
    raw = {}
    path = work / "steps" / f"{name}.step"
    if path.is_file():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            raw[key] = value
    if not raw:
        return {"status": "not run"}
    if raw.get("status") == "skipped":
        return {"status": "skipped", "reason": raw.get("reason", "")}
    rc = int(raw.get("rc", "1"))
    status = "ok" if rc == 0 else "timeout" if rc in (124, 137) else "failed"
    record = {"status": status, "rc": rc, "seconds": float(raw["seconds"]) if "seconds" in raw else None,
              "timeout_s": int(raw.get("timeout_s", "0"))}  # fmt: skip
    if status != "ok":
        record["error_tail"] = log_tail(work / "logs" / f"{name}.log")
    return record


def round2(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def rate(tokens: float, seconds: float) -> float | None:
    return round(tokens / seconds, 1) if seconds > 0 else None


def training_record(work: Path, name: str) -> dict:
    """A training step: its status, and the figures of its run directory."""
    record, run = step_record(work, name), work / "runs" / name
    if record["status"] in ("skipped", "not run"):
        return record | {"run_dir": str(run)}
    clock = read_json(run / "clock.json") or {}
    metrics = read_json(run / "metrics.json") or {}
    rows, final = clock.get("rows") or [], clock.get("final")
    last = final or (rows[-1] if rows else None)
    if record["status"] == "ok" and metrics.get("status") != "completed":
        record["status"] = "failed"
        record["error"] = metrics.get("error") or f"run status {metrics.get('status')}"
    record |= {
        "precision": clock.get("precision"), "strategy": clock.get("strategy"),
        "world_size": clock.get("world_size"),
        "train_seconds": last["train_seconds"] if last else None,
        "epochs": len(rows), "steps": last["step"] if last else None,
        "tokens_per_s": rate(last["tokens"], last["train_seconds"]) if last else None,
        # from the end of the first epoch: without compilation and warm-up
        "tokens_per_s_after_epoch_1": rate(
            rows[-1]["tokens"] - rows[0]["tokens"], rows[-1]["train_seconds"] - rows[0]["train_seconds"]
        ) if len(rows) > 1 else None,
        "train_seconds_at_first_validation": rows[0]["train_seconds"] if rows else None,
        "val_bleu": (metrics.get("metrics") or {}).get("val/bleu"),
        "last_val_bleu": round2(rows[-1]["val_bleu"]) if rows else None,
        # [seconds since training started (validation included), val BLEU] per validation
        "val_bleu_curve": [[round(r["seconds"], 1), round2(r["val_bleu"])] for r in rows],
        "peak_gpu_mib": clock.get("peak_gpu_mib"),
        "peak_gpu_reserved_mib": clock.get("peak_gpu_reserved_mib"),
        "float32_matmul_precision": clock.get("float32_matmul_precision"),
        "run_dir": str(run),
    }  # fmt: skip
    record["val_bleu"] = round2(record["val_bleu"])
    return record


def tests_record(work: Path) -> dict:
    record = step_record(work, "tests")
    try:
        suite = ET.parse(work / "tests.xml").getroot()
    except (OSError, ET.ParseError):
        return record
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    record |= counts
    skipped = [
        f"{case.get('name')}: {skip.get('message', '')}"
        for case in suite.iter("testcase")
        for skip in case.findall("skipped")
    ]
    if skipped:
        record["skipped_reasons"] = skipped
    return record


DEFINITIONS = {
    "tokens_per_s": "target tokens trained (padding excluded) per second of training, "
    "validation excluded, start-up, warm-up and compilation included",
    "tokens_per_s_after_epoch_1": "the same from the end of the first epoch to the last "
    "validation: without compilation and warm-up (null with fewer than 2 validations)",
    "val_bleu": "the best validation BLEU (greedy, sacrebleu 13a, normalised references)",
    "peak_gpu_mib": "torch.cuda.max_memory_allocated of the training process",
    "seconds": "wall time of the step's command (process start to exit)",
    "sentences_per_s": "Translator.translate of the whole test split after a warm-up, batch 64",
}


def report(args) -> int:
    work = Path(args.work)
    settings = read_json(work / "settings.json") or {}
    names, machine = settings.get("steps", []), read_json(work / "probe.json") or {}
    result = {
        "gpu_check": "bench/gpu_check.sh", "started": settings.get("started"),
        "wall_s": settings.get("wall_s"), "gpu": machine.get("gpu"), "torch": machine.get("torch"),
        "machine": machine,
        "settings": {k: v for k, v in settings.items() if k not in ("steps", "started", "wall_s")},
    }  # fmt: skip
    result["tests"] = tests_record(work) if "tests" in names else {"status": "not selected"}
    result["training"] = [training_record(work, n) for n in names if n.startswith("train-")]
    for entry in result["training"]:  # named train-<precision>-<eager|compiled>
        entry["name"] = Path(entry["run_dir"]).name
        precision, _, how = entry["name"].removeprefix("train-").rpartition("-")
        entry["precision_asked"], entry["compile"] = precision, how == "compiled"
    result["ddp"] = training_record(work, "ddp") if "ddp" in names else {"status": "not selected"}
    if "translate" in names:
        result["translation"] = step_record(work, "translate") | (
            read_json(work / "translate" / "translate.json") or {}
        )
    else:
        result["translation"] = {"status": "not selected"}
    result["definitions"] = DEFINITIONS
    steps = [result["tests"], *result["training"], result["ddp"], result["translation"]]
    bad = [s for s in steps if s.get("status") not in ("ok", "not selected")]
    result["status"] = "ok" if not bad else f"{len(bad)} of the steps not ok"
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    summary(result)
    if args.logs:
        with open(args.logs, "w") as f:
            for name in names:
                f.write(f"===== {name} (last 80 lines) =====\n")
                f.write(log_tail(work / "logs" / f"{name}.log", 80) + "\n")
    return 0 if not bad else 1


def summary(result: dict) -> None:
    """A short table of the figures on standard output."""
    m = result.get("machine") or {}
    print(f"\nGPU: {m.get('gpu')} | torch {m.get('torch')} (CUDA {m.get('torch_cuda')})")
    t = result["tests"]
    print(f"tests: {t.get('status')} ({t.get('passed', '?')} passed, {t.get('failures', '?')} "
          f"failed, {t.get('errors', '?')} errors, {t.get('skipped', '?')} skipped)")  # fmt: skip
    print("| run | status | tokens/s | after epoch 1 | val BLEU | epochs | peak GPU MiB | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in [*result["training"], result["ddp"] | {"name": "ddp"}]:
        print(f"| {r.get('name')} | {r.get('status')} | {r.get('tokens_per_s')} | "
              f"{r.get('tokens_per_s_after_epoch_1')} | {r.get('val_bleu')} | {r.get('epochs')} | "
              f"{r.get('peak_gpu_mib')} | {r.get('seconds')} |")  # fmt: skip
    tr = result["translation"]
    for key, r in tr.items():
        if isinstance(r, dict):
            print(f"translation {key}: {r['sentences_per_s']} sentences/s, BLEU {r['bleu']} "
                  f"(translate.py: {r.get('cli_bleu')}, same output: {r.get('cli_same_output')})")  # fmt: skip
    if "greedy" not in tr:
        print(f"translation: {tr.get('status')}")
    print(f"status: {result['status']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--json", required=True)
    p = sub.add_parser("overrides")
    p.add_argument("--data-dir")
    p.add_argument("--cache-dir")
    p = sub.add_parser("translate")
    p.add_argument("--run", required=True, help="a run directory trained on the same data")
    p.add_argument("--out", required=True)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("overrides", nargs="*", help="the data overrides the run was trained with")
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--logs", help="also write the tail of every step's log here")
    args = parser.parse_args()
    command = {"probe": probe, "overrides": overrides, "translate": translate, "report": report}
    return command[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
