"""Time to BLEU: train from scratch for a wall-time budget, then test the best checkpoint.

    python bench/time_to_bleu.py [--minutes 10] [--name NAME] [OVERRIDE ...]

Trains on the benchmark's data and model (see ``benchlib.BENCH_DATA``; OVERRIDEs are Hydra
overrides of ``conf/train.yaml`` on top, e.g. ``model=luong``) with
``trainer.max_time=<minutes>``, validating every epoch. The best checkpoint (by val/bleu) is
then tested with greedy decoding (Lightning's test loop) and beam search. Writes
``bench/results/time_to_bleu-NAME.csv`` (val/bleu against wall time; the clock starts when
training starts and includes validation) and ``.png``; the run directory goes to
``outputs/time_to_bleu/NAME``.
"""

import argparse
import csv
import json
import textwrap
import time
from pathlib import Path

import matplotlib
import pytorch_lightning as pl
from benchlib import BENCH_DATA, ROOT, compose, describe_machine
from train_bench import translate_rate

from seq2seq_nmt.train.run import build, train
from seq2seq_nmt.translate.translator import Translator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def plot(rows: list[dict], test: dict[str, float], title: str, path: Path, target: float) -> None:
    """val/bleu against minutes, the test scores of the best checkpoint, and the target."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    minutes = [float(r["seconds"]) / 60 for r in rows]
    ax.plot(minutes, [float(r["val_bleu"]) for r in rows], marker=".", label="val BLEU (greedy)")
    for (name, score), marker in zip(test.items(), ("o", "s"), strict=False):
        ax.plot(
            [minutes[-1]], [score], marker=marker, linestyle="", label=f"test {name}: {score:.1f}"
        )
    ax.axhline(target, color="grey", linestyle="--", linewidth=0.8, label=f"target {target:g}")
    ax.set(xlabel="wall time since training started (min)", ylabel="BLEU")
    ax.set_title(textwrap.fill(title, 90), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--name", default="default", help="file stem of the CSV, PNG and run dir")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--target", type=float, default=48.0, help="BLEU line on the plot")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    args = parser.parse_args()

    run_dir = ROOT / "outputs" / "time_to_bleu" / args.name
    curve = RESULTS / f"time_to_bleu-{args.name}.csv"
    seconds = round(args.minutes * 60)
    cfg = compose(
        run_dir, *BENCH_DATA, f"trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}",
        "trainer.max_epochs=1000", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
        "+callbacks.bleu_clock._target_=benchlib.BleuClock", f"+callbacks.bleu_clock.path={curve}",
        *args.overrides,
    )  # fmt: skip
    machine = describe_machine(cfg)
    started = time.perf_counter()
    metrics = train(cfg)
    test = {"greedy": metrics["test/bleu"]}
    best = json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"]
    if args.beam > 1:
        pl.seed_everything(cfg.seed)
        datamodule, _ = build(cfg)
        translator = Translator.from_checkpoint(best)
        _, test[f"beam {args.beam}"] = translate_rate(
            cfg, translator.model, datamodule.test_dataloader(), translator.tgt_tokenizer, args.beam
        )
    with curve.open() as f:
        rows = list(csv.DictReader(f))
    title = f"{' '.join(args.overrides) or 'defaults'} ({args.minutes:g} min)"
    plot(rows, test, title, curve.with_suffix(".png"), args.target)
    first = next((r for r in rows if float(r["val_bleu"]) >= args.target), None)
    summary = {
        "machine": machine, "overrides": args.overrides, "minutes": args.minutes,
        "best_checkpoint": str(Path(best).relative_to(ROOT)), "best_val_bleu": metrics.get("val/bleu"),
        "test_bleu": test, "epochs": int(rows[-1]["epoch"]) + 1 if rows else 0,
        "train_tokens_per_s": float(rows[-1]["tokens_per_s"]) if rows else None,
        "val_reached_target_at_s": float(first["seconds"]) if first else None,
        "wall_s_total": time.perf_counter() - started,
    }  # fmt: skip
    curve.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
