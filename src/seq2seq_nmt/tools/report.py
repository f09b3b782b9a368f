"""Summarise a sweep: ``nmt-report multirun/<date>/<time> [--out DIR]``.

Reads each job directory (``0/``, ``1/``, ...): its overrides (``.hydra/overrides.yaml``) and
outcome (``metrics.json``); prints a table of the overrides that vary, best validation BLEU,
test BLEU, steps, wall time and status, and writes it as ``report.csv`` and ``report.png``.
Jobs that failed, were killed, or never wrote a summary are listed with that status.
"""

import argparse
import csv
import math
import re
import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from seq2seq_nmt.train.records import METRICS_FILE, RUNNING, read_json

RESULTS = ("status", "val_bleu", "test_bleu", "steps", "wall_time_s")
NO_SUMMARY, UNFINISHED = "no summary", "unfinished"


class ReportError(Exception):
    """A sweep directory that cannot be reported on (one line for the user)."""


def parse_overrides(job_dir: Path) -> dict[str, str]:
    """``key=value`` overrides of a job (``+``/``++`` dropped, ``~key`` shown as deleted)."""
    path = job_dir / ".hydra" / "overrides.yaml"
    items = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        if key.startswith("~"):
            out[key[1:]] = "(deleted)"
        else:
            out[key.lstrip("+")] = value
    return out


def read_job(job_dir: Path) -> dict:
    """One row: job number, overrides, and the outcome recorded in ``metrics.json``."""
    summary = read_json(job_dir / METRICS_FILE)
    row = {"job": job_dir.name, **parse_overrides(job_dir)}
    if summary is None:
        return row | {"status": NO_SUMMARY}
    metrics = summary.get("metrics") or {}
    status = summary.get("status")
    return row | {
        "status": UNFINISHED if status == RUNNING else status,
        "val_bleu": metrics.get("val/bleu"),
        "test_bleu": metrics.get("test/bleu"),
        "steps": summary.get("steps"),
        "wall_time_s": summary.get("wall_time_s"),
        "error": summary.get("error"),
    }


def read_sweep(sweep_dir: Path) -> list[dict]:
    """Rows of the numbered job directories of ``sweep_dir``, in job order."""
    if not sweep_dir.is_dir():
        raise ReportError(f"not a directory: {sweep_dir}")
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    if not jobs:
        raise ReportError(
            f"no job directories (0/, 1/, ...) in {sweep_dir}: is it a multirun sweep?"
        )
    return [read_job(p) for p in jobs]


def override_keys(rows: list[dict]) -> tuple[list[str], dict[str, str]]:
    """Override keys whose value differs between jobs, and the overrides common to all (jobs
    whose overrides are unknown, having no ``.hydra/``, are left out of the comparison)."""
    known = [r for r in rows if set(r) - {"job", "error", *RESULTS}]
    keys = [
        k for k in dict.fromkeys(k for r in known for k in r) if k not in ("job", "error", *RESULTS)
    ]
    varying = [k for k in keys if len({r.get(k) for r in known}) > 1]
    common = {k: known[0][k] for k in keys if k not in varying}
    return varying, common


def fmt(value) -> str:
    """A table cell: results to two decimals, long sampled floats (Optuna's) to four digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value)
    if len(text) > 8 and re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", text):
        return f"{float(text):.4g}"
    return text


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table, one row per job."""
    cells = [columns] + [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def write_csv(rows: list[dict], columns: list[str], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in columns} for r in rows)


def plot(rows: list[dict], varying: list[str], path: Path) -> None:
    """Horizontal bars of best validation and test BLEU per job (none for jobs without them)."""
    labels = [
        f"{r['job']}: " + ", ".join(f"{k}={fmt(r.get(k))}" for k in varying)
        + ("" if r["status"] == "completed" else f" [{r['status']}]")
        for r in rows
    ]  # fmt: skip
    fig = Figure(figsize=(9, 1.2 + 0.45 * len(rows)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = range(len(rows))
    for shift, key, name in ((-0.2, "val_bleu", "best val BLEU"), (0.2, "test_bleu", "test BLEU")):
        values = [r.get(key) if isinstance(r.get(key), int | float) else 0.0 for r in rows]
        ax.barh([y + shift for y in ys], values, height=0.4, label=name)
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("BLEU")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def report(sweep_dir: Path, out_dir: Path | None = None) -> str:
    """The report text; ``report.csv`` and ``report.png`` written to ``out_dir`` (the sweep's)."""
    rows = read_sweep(sweep_dir)
    varying, common = override_keys(rows)
    out_dir = out_dir or sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, ["job", *varying, *common, *RESULTS, "error"], out_dir / "report.csv")
    plot(rows, varying, out_dir / "report.png")
    lines = [f"sweep {sweep_dir}: {len(rows)} jobs"]
    if common:
        lines.append("common overrides: " + " ".join(f"{k}={v}" for k, v in common.items()))
    lines.append(table(rows, ["job", *varying, *RESULTS]))
    scored = [r for r in rows if isinstance(r.get("val_bleu"), int | float)]
    if scored:
        best = max(scored, key=lambda r: r["val_bleu"])
        lines.append(f"best val BLEU: job {best['job']} ({best['val_bleu']:.2f})")
    lines += [f"job {r['job']} {r['status']}: {r['error']}" for r in rows if r.get("error")]
    if optuna := read_optuna(sweep_dir):
        lines.append(optuna)
    lines.append(f"wrote {out_dir / 'report.csv'} and {out_dir / 'report.png'}")
    return "\n".join(lines)


def read_optuna(sweep_dir: Path) -> str | None:
    """The Optuna sweeper's best parameters and value, when it wrote them."""
    path = sweep_dir / "optimization_results.yaml"
    if not path.is_file():
        return None
    result = OmegaConf.load(path)
    params = " ".join(f"{k}={v}" for k, v in (result.get("best_params") or {}).items())
    return f"optuna best: {params} -> {result.get('best_value')}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nmt-report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "sweep_dir", type=Path, help="a multirun directory, e.g. multirun/<date>/<time>"
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write report.csv/.png")
    args = parser.parse_args(argv)
    try:
        print(report(args.sweep_dir, args.out))
    except ReportError as e:
        sys.exit(f"report: {e}")


if __name__ == "__main__":
    main()
