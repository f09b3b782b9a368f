"""Summarise a sweep: settings, seeds aggregated, learning curves, final BLEU and its spread.

``nmt-report multirun/<date>/<time> [--out DIR]``; also written by itself at the end of every
multirun (:mod:`seq2seq_nmt.tools.sweep_report`).

Reads each job directory (``0/``, ``1/``, ...): its overrides and composed config (``.hydra/``),
outcome (``metrics.json``) and learning curve (``curve.csv``). Jobs that differ only by ``seed``
are replicates of one setting: the report gives their mean, standard deviation and per-seed
values, marks the differences between settings that exceed the seeds' spread (mean ± 2 std
intervals that do not overlap) and on the test sentences (sacrebleu's paired bootstrap over the
seeds' test outputs, ``test.hyp.txt``), and flags jobs that did unequal work (steps, or target tokens
under a token or epoch budget, more than 10% off the sweep's median). It writes ``report.csv``
(a row per job), ``settings.csv`` (a row per setting), ``curves.png`` (validation BLEU against
steps, target tokens and training time, mean and band over seeds), ``bleu.png`` (final BLEU per
setting with its spread) and, for an Optuna search, ``importance.png``.
"""

import argparse
import csv
import math
import re
import statistics
import sys
import warnings
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from seq2seq_nmt.train.records import METRICS_FILE, RUNNING, TEST_HYPS, TEST_REFS, read_json

NO_SUMMARY, UNFINISHED = "no summary", "unfinished"
REPLICATE_KEY = "seed"
UNEQUAL = 0.10  # relative difference from the median that flags unequal work
RESULTS = ("status", "val_bleu", "test_bleu", "steps", "tokens", "tokens_per_s", "wall_time_s")
CURVE_AXES = (("step", "steps"), ("tokens", "target tokens"), ("train_time_s", "training time (s)"))


class ReportError(Exception):
    """A sweep directory that cannot be reported on (one line for the user)."""


def unescape(value: str) -> str:
    """An override value as the user means it: Hydra's ``\\:`` and friends unescaped."""
    return re.sub(r"\\(.)", r"\1", value)


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
            out[key.lstrip("+")] = unescape(value)
    return out


def read_curve(job_dir: Path) -> list[dict[str, float]]:
    """The job's validations (``curve.csv``): step, tokens, training time, BLEU, loss."""
    path = job_dir / "curve.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def read_job(job_dir: Path) -> dict:
    """One row: job number, overrides, composed config, the outcome and the learning curve."""
    config_path = job_dir / ".hydra" / "config.yaml"
    row = {
        "job": job_dir.name,
        "dir": job_dir,
        "overrides": parse_overrides(job_dir),
        "config": OmegaConf.load(config_path) if config_path.is_file() else None,
        "curve": read_curve(job_dir),
    }
    summary = read_json(job_dir / METRICS_FILE)
    if summary is None:
        return row | {"status": NO_SUMMARY}
    metrics = summary.get("metrics") or {}
    tokens, seconds = number(metrics.get("train/tgt_tokens")), number(summary.get("train_time_s"))
    status = summary.get("status")
    return row | {
        "status": UNFINISHED if status == RUNNING else status,
        "val_bleu": number(metrics.get("val/bleu")),
        "test_bleu": number(metrics.get("test/bleu")),
        "steps": summary.get("steps"),
        "tokens": tokens,
        "tokens_per_s": tokens / seconds if tokens and seconds else None,
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


def leaves(node: Any, prefix: str = "") -> dict[str, str]:
    """The leaves of a config node as ``dotted.key -> value`` (interpolations unresolved, as
    written: ``${seed}``; values as text)."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if not isinstance(node, dict):
        return {prefix: str(node)}
    out = {}
    for key, value in node.items():
        out |= leaves(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def meaning(key: str, rows: list[dict]) -> tuple[str, list[str | None]]:
    """What a varying override means: a group choice (``model=luong``) that changes a single
    setting of the composed config is shown as that setting (``model.attention``)."""
    values = [r["overrides"].get(key) for r in rows]
    configs = [r["config"] for r in rows]
    if "." in key or any(c is None or not isinstance(c.get(key), DictConfig) for c in configs):
        return key, values
    trees = [leaves(c[key], key) for c in configs]
    changed = {k for t in trees for k in t if len({t.get(k) for t in trees}) > 1}
    if len(changed) != 1:
        return key, values
    (leaf,) = changed
    return leaf, [t.get(leaf) for t in trees]


def settings(rows: list[dict]) -> list[str]:
    """Each job's setting label (``attention=luong_general, teacher_forcing_ratio=0.5``): the
    overrides that vary between jobs, by meaning, ``seed`` left out (its jobs are replicates)."""
    known = [r for r in rows if r["overrides"]]
    keys = dict.fromkeys(k for r in known for k in r["overrides"] if k != REPLICATE_KEY)
    varying = [k for k in keys if len({r["overrides"].get(k) for r in known}) > 1]
    columns = [meaning(k, known) for k in varying]
    short = [name.rpartition(".")[2] for name, _ in columns]
    names = [
        s if short.count(s) == 1 else name for s, (name, _) in zip(short, columns, strict=True)
    ]
    for i, row in enumerate(known):
        row["settings"] = {n: values[i] for n, (_, values) in zip(names, columns, strict=True)}
        row["setting"] = (
            ", ".join(f"{n}={fmt(v)}" for n, v in row["settings"].items()) or "(one setting)"
        )
    for row in rows:
        row.setdefault("setting", f"job {row['job']} (no .hydra/)")
        row.setdefault("settings", {})
    return names


def budget_unit(row: dict) -> str:
    """What measures a job's work: steps under a step or time budget, else target tokens."""
    config = row["config"]
    budget = config.get("budget") if config is not None else None
    unit = next(
        (u for u in ("tokens", "steps", "epochs", "time") if budget and budget.get(u) is not None),
        None,
    )
    return "steps" if unit in ("steps", "time") or row.get("tokens") is None else "tokens"


def flag_unequal_work(rows: list[dict]) -> list[str]:
    """Mark jobs whose work (steps, or tokens) is more than 10% off the median of the sweep's
    finished jobs; one line per flagged job."""
    done = [r for r in rows if r.get("status") in ("completed", "interrupted")]
    lines = []
    for unit in ("steps", "tokens"):
        group = [r for r in done if budget_unit(r) == unit and isinstance(r.get(unit), int | float)]
        if len(group) < 2:
            continue
        median = statistics.median(r[unit] for r in group)
        for r in group:
            if median and abs(r[unit] - median) / median > UNEQUAL:
                r["unequal_work"] = True
                lines.append(
                    f"unequal work: job {r['job']} ({r['setting']}) trained {r[unit]:,.0f} {unit}, "
                    f"the sweep's median is {median:,.0f}"
                )
    return lines


def spread(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def seed_of(row: dict) -> str:
    """The job's seed: its override, else its composed config's."""
    config = row["config"]
    seed = config.get(REPLICATE_KEY) if config is not None else None
    return str(row["overrides"].get(REPLICATE_KEY, "-" if seed is None else seed))


def aggregate(rows: list[dict]) -> list[dict]:
    """One entry per setting (jobs that differ only by seed), in order of first appearance."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(repr(r["settings"]) if r["settings"] else r["setting"], []).append(r)
    out = []
    for jobs in groups.values():
        entry = {"setting": jobs[0]["setting"], "settings": jobs[0]["settings"], "jobs": jobs}
        entry["seeds"] = [seed_of(j) for j in jobs]
        for key in ("val_bleu", "test_bleu"):
            values = [j[key] for j in jobs if j.get(key) is not None]
            entry[key] = values
            entry[f"{key}_mean"], entry[f"{key}_std"] = spread(values) if values else (None, None)
        for key in ("steps", "tokens", "tokens_per_s", "wall_time_s"):
            values = [j[key] for j in jobs if isinstance(j.get(key), int | float)]
            entry[key] = statistics.fmean(values) if values else None
        statuses = [j.get("status") for j in jobs]
        entry["status"] = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        entry["flags"] = "unequal work" if any(j.get("unequal_work") for j in jobs) else ""
        out.append(entry)
    return out


def beyond_spread(entries: list[dict], key: str = "test_bleu") -> list[str]:
    """Differences between settings larger than the seeds' spread: mean ± 2 std intervals (two
    or more seeds each) that do not overlap."""
    lines = []
    rated = [e for e in entries if len(e[key]) > 1]
    for a, b in combinations(rated, 2):
        hi, lo = (a, b) if a[f"{key}_mean"] >= b[f"{key}_mean"] else (b, a)
        if lo[f"{key}_mean"] + 2 * lo[f"{key}_std"] < hi[f"{key}_mean"] - 2 * hi[f"{key}_std"]:
            gap = hi[f"{key}_mean"] - lo[f"{key}_mean"]
            lines.append(f"  {hi['setting']}  >  {lo['setting']}  (+{gap:.2f})")
    return lines


def read_lines(path: Path) -> list[str] | None:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else None


def paired_bootstrap(entries: list[dict], samples: int = 1000) -> list[str]:
    """Pairs of settings whose test BLEU differs on the test sentences at p < 0.05: sacrebleu's
    paired bootstrap resampling over every seed's outputs (seeds matched in job order, the
    references repeated). Settings whose jobs wrote no test outputs are left out; none is rated
    when the jobs were tested on different references."""
    tested = [(e, [j for j in e["jobs"] if (j["dir"] / TEST_HYPS).is_file()]) for e in entries]
    tested = [(e, jobs) for e, jobs in tested if jobs]
    refs = [read_lines(j["dir"] / TEST_REFS) for _, jobs in tested for j in jobs]
    if len(tested) < 2 or any(r != refs[0] for r in refs):
        return []
    seeds = min(len(jobs) for _, jobs in tested)
    systems = [
        (e["setting"], [h for j in jobs[:seeds] for h in read_lines(j["dir"] / TEST_HYPS)])
        for e, jobs in tested
    ]
    config = tested[0][1][0]["config"]
    tokenize = OmegaConf.select(config, "metrics.tokenize") if config is not None else None
    bleu = BLEU(tokenize=str(tokenize or "13a"))
    lines = []
    for i in range(len(systems) - 1):
        _, scores = PairedTest(systems[i:], {"BLEU": bleu}, [refs[0] * seeds], "bs", samples)()
        base = scores["BLEU"][0]
        for (name, _), result in zip(systems[i + 1 :], scores["BLEU"][1:], strict=True):
            if result.p_value < 0.05:
                pair = sorted(
                    [(systems[i][0], base.score), (name, result.score)], key=lambda x: -x[1]
                )
                (hi, hs), (lo, ls) = pair
                lines.append(f"  {hi}  >  {lo}  ({hs:.2f} vs {ls:.2f}, p = {result.p_value:.3f})")
    return lines


def fmt(value: Any) -> str:
    """A table cell: results to two decimals, long sampled floats (Optuna's) to four digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    text = str(value)
    if len(text) > 8 and re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", text):
        return f"{float(text):.4g}"
    return text


def count(value: float | None) -> str:
    """A mean of counts or seconds, to the unit."""
    return "-" if value is None else f"{value:,.0f}"


def mean_std(entry: dict, key: str) -> str:
    """``mean ± std [per-seed values]`` (one value: itself)."""
    values, mean, std = entry[key], entry[f"{key}_mean"], entry[f"{key}_std"]
    if not values:
        return "-"
    if std is None:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f} [" + " ".join(f"{v:.2f}" for v in values) + "]"


def table(cells: list[list[str]]) -> str:
    """A plain-text table; the first row is the header."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


SETTING_COLUMNS = (
    "seeds",
    "val BLEU",
    "test BLEU",
    "steps",
    "tgt tokens",
    "tokens/s",
    "wall s",
    "status",
    "flags",
)


def setting_cells(names: list[str], entry: dict) -> list[str]:
    return [
        *(fmt(entry["settings"].get(n)) for n in names), ",".join(map(str, entry["seeds"])),
        mean_std(entry, "val_bleu"), mean_std(entry, "test_bleu"),
        *(count(entry[k]) for k in ("steps", "tokens", "tokens_per_s", "wall_time_s")),
        entry["status"], entry["flags"],
    ]  # fmt: skip


SETTING_FIELDS = ("seeds", "val_bleu_mean", "val_bleu_std", "val_bleu_per_seed", "test_bleu_mean",
                  "test_bleu_std", "test_bleu_per_seed", "steps", "tokens", "tokens_per_s",
                  "wall_time_s", "status", "flags")  # fmt: skip


def setting_row(names: list[str], entry: dict) -> list[Any]:
    """A row of ``settings.csv``: numbers as numbers, per-seed values space-separated."""
    bleu = [
        value for key in ("val_bleu", "test_bleu")
        for value in (entry[f"{key}_mean"], entry[f"{key}_std"], " ".join(map(str, entry[key])))
    ]  # fmt: skip
    return [
        *(entry["settings"].get(n) for n in names), " ".join(map(str, entry["seeds"])), *bleu,
        *(entry[k] for k in ("steps", "tokens", "tokens_per_s", "wall_time_s")),
        entry["status"], entry["flags"],
    ]  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)


def band(curves: list[list[dict]], x: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and standard deviation of validation BLEU over seeds on a common ``x`` grid (each
    seed's curve interpolated, up to where the shortest one ends)."""
    curves = [[p for p in c if x in p and "val_bleu" in p] for c in curves]
    curves = [c for c in curves if c]
    if not curves:
        return None
    end = min(c[-1][x] for c in curves)
    grid = np.array(sorted({p[x] for c in curves for p in c if p[x] <= end}))
    ys = np.array([np.interp(grid, [p[x] for p in c], [p["val_bleu"] for p in c]) for c in curves])
    return grid, ys.mean(axis=0), ys.std(axis=0, ddof=1) if len(ys) > 1 else np.zeros_like(grid)


def plot_curves(entries: list[dict], path: Path) -> None:
    """Validation BLEU against steps, target tokens and training time: a line per setting (the
    mean over its seeds), a band of ± 1 std."""
    fig = Figure(figsize=(15, 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(CURVE_AXES), sharey=True)
    for ax, (x, name) in zip(axes, CURVE_AXES, strict=True):
        for i, entry in enumerate(entries):
            if (found := band([j["curve"] for j in entry["jobs"]], x)) is None:
                continue
            grid, mean, std = found
            n = len(entry["jobs"])
            ax.plot(grid, mean, color=f"C{i % 10}", label=f"{entry['setting']} (n={n})")
            ax.fill_between(grid, mean - std, mean + std, color=f"C{i % 10}", alpha=0.2)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation BLEU (mean ± 1 std over seeds)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * math.ceil(len(labels) / 2), 1, 1))
    fig.savefig(path, dpi=100)


def plot_bleu(entries: list[dict], path: Path) -> None:
    """Best validation and final test BLEU per setting: mean ± 1 std and each seed's value."""
    fig = Figure(figsize=(9, 1.5 + 0.5 * len(entries)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for shift, key, name in (
        (-0.18, "val_bleu", "best val BLEU"),
        (0.18, "test_bleu", "test BLEU"),
    ):
        ys = [y + shift for y in range(len(entries))]
        means = [e[f"{key}_mean"] if e[f"{key}_mean"] is not None else np.nan for e in entries]
        stds = [e[f"{key}_std"] or 0.0 for e in entries]
        color = "C0" if key == "val_bleu" else "C1"
        ax.errorbar(
            means, ys, xerr=stds, fmt="o", color=color, capsize=4, label=f"{name}, mean ± std"
        )
        for y, e in zip(ys, entries, strict=True):
            ax.scatter(e[key], [y] * len(e[key]), color=color, marker="x", s=20, alpha=0.6)
    ax.set_yticks(
        range(len(entries)), [f"{e['setting']} [{e['status']}]" for e in entries], fontsize=8
    )
    ax.invert_yaxis()
    ax.set_xlabel("BLEU (x: one seed)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def read_optuna(sweep_dir: Path) -> str | None:
    """The Optuna sweeper's best parameters and value, when it wrote them."""
    path = sweep_dir / "optimization_results.yaml"
    if not path.is_file():
        return None
    result = OmegaConf.load(path)
    params = " ".join(f"{k}={v}" for k, v in (result.get("best_params") or {}).items())
    return f"optuna best: {params} -> {result.get('best_value')}"


def plot_importance(rows: list[dict], names: list[str], path: Path) -> str | None:
    """Optuna's hyperparameter importance (PED-ANOVA: no scikit-learn needed, Optuna's default
    from 5.0) over the completed trials, drawn by Optuna; None when Optuna is not installed or
    there is too little to rate."""
    try:
        import optuna
        from optuna.importance import PedAnovaImportanceEvaluator
        from optuna.visualization.matplotlib import plot_param_importances
    except ImportError:
        return None
    done = [r for r in rows if r.get("val_bleu") is not None and r["settings"]]
    if len(done) < 2 or not names:
        return None

    def value(v: str) -> float | str:
        try:
            return float(v)
        except (TypeError, ValueError):
            return str(v)

    params = [{n: value(r["settings"].get(n)) for n in names} for r in done]
    dists = {}
    for n in names:
        values = [p[n] for p in params]
        if all(isinstance(v, float) for v in values) and min(values) < max(values):
            dists[n] = optuna.distributions.FloatDistribution(min(values), max(values))
        else:
            dists[n] = optuna.distributions.CategoricalDistribution(sorted(set(map(str, values))))
            for p in params:
                p[n] = str(p[n])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for p, r in zip(params, done, strict=True):
        study.add_trial(
            optuna.trial.create_trial(params=p, distributions=dists, value=r["val_bleu"])
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            ax = plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        except (ValueError, RuntimeError) as e:
            return f"importance not rated: {e}"
    ax.figure.set_size_inches(8, 1.5 + 0.5 * len(names))
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=100)
    importances = optuna.importance.get_param_importances(
        study, evaluator=PedAnovaImportanceEvaluator()
    )
    return "importance (PED-ANOVA, val BLEU): " + ", ".join(
        f"{k} {v:.2f}" for k, v in importances.items()
    )


def report(sweep_dir: Path, out_dir: Path | None = None) -> str:
    """The report text; its CSV files and figures written to ``out_dir`` (the sweep's)."""
    rows = read_sweep(sweep_dir)
    names = settings(rows)
    warnings_ = flag_unequal_work(rows)
    entries = aggregate(rows)
    out_dir = out_dir or sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    job_header = ["job", "setting", *names, REPLICATE_KEY, *RESULTS, "unequal_work", "error"]
    write_csv(out_dir / "report.csv", job_header, [
        [r["job"], r["setting"], *(r["settings"].get(n) for n in names),
         seed_of(r), *(r.get(k) for k in RESULTS),
         bool(r.get("unequal_work")), r.get("error")] for r in rows
    ])  # fmt: skip
    cells = [[*names, *SETTING_COLUMNS], *(setting_cells(names, e) for e in entries)]
    write_csv(
        out_dir / "settings.csv",
        [*names, *SETTING_FIELDS],
        [setting_row(names, e) for e in entries],
    )
    plot_curves(entries, out_dir / "curves.png")
    plot_bleu(entries, out_dir / "bleu.png")
    seeds = max(len(e["jobs"]) for e in entries)
    lines = [f"sweep {sweep_dir}: {len(rows)} jobs, {len(entries)} settings x up to {seeds} seeds"]
    lines.append(table(cells))
    lines += warnings_
    if seeds > 1:
        if beyond := beyond_spread(entries):
            lines += [
                "test BLEU differences beyond the seeds' spread (mean ± 2 std apart):",
                *beyond,
            ]
        else:
            lines.append(
                "no test BLEU difference between settings exceeds the seeds' spread (mean ± 2 std)"
            )
    if bootstrap := paired_bootstrap(entries):
        lines += ["test BLEU differences on the test sentences (sacrebleu paired bootstrap, "
                  "1000 resamples, every seed's outputs):", *bootstrap]  # fmt: skip
    scored = [e for e in entries if e["val_bleu_mean"] is not None]
    if scored:
        best = max(scored, key=lambda e: e["val_bleu_mean"])
        lines.append(f"best val BLEU: {best['setting']} ({best['val_bleu_mean']:.2f})")
    lines += [f"job {r['job']} {r['status']}: {r['error']}" for r in rows if r.get("error")]
    written = ["report.csv", "settings.csv", "curves.png", "bleu.png"]
    if optuna := read_optuna(sweep_dir):
        lines.append(optuna)
        if importance := plot_importance(rows, names, out_dir / "importance.png"):
            lines.append(importance)
            written += ["importance.png"] if (out_dir / "importance.png").is_file() else []
    lines.append(f"wrote {', '.join(written)} in {out_dir}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nmt-report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "sweep_dir", type=Path, help="a multirun directory, e.g. multirun/<date>/<time>"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the CSVs and figures"
    )
    args = parser.parse_args(argv)
    try:
        print(report(args.sweep_dir, args.out))
    except ReportError as e:
        sys.exit(f"report: {e}")


if __name__ == "__main__":
    main()
