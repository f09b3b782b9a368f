"""Quality levers, one at a time: a time-to-BLEU run per lever, then one table.

    python bench/levers.py [--minutes 4] [--only NAME ...] [--base OVERRIDE ...]
    python bench/levers.py --table-only

Each lever is a set of Hydra overrides on top of ``--base`` (default: none, i.e. the default
configuration on the benchmark data of ``benchlib.BENCH_DATA``), trained from scratch for
``--minutes`` with ``bench/time_to_bleu.py --name lever-NAME``; the table lists test BLEU (greedy
and beam 5, best checkpoint by val/bleu, on the disjoint test split), best val BLEU, epochs and
training tokens/s, read back from ``bench/results/time_to_bleu-lever-NAME.json``.
"""

import argparse
import json
import subprocess
import sys

from benchlib import ROOT

RESULTS = ROOT / "bench" / "results"
LEVERS: dict[str, list[str]] = {
    "baseline": [],
    "bidirectional+bridge": ["model.bidirectional=true", "model.bridge=true"],
    "deep_output": ["model.deep_output=true"],
    "dropout 0.3": ["model.dropout=0.3"],
    "tied embeddings": ["model.tie_embeddings=true"],
    "label smoothing 0.1": ["loss.label_smoothing=0.1"],
    "weight decay 1e-5": ["+optimizer.weight_decay=1e-5"],
    "batch 128, lr x1.4": ["batch_size=128", "optimizer.lr=0.0014"],
    "plateau + early stopping": ["scheduler=plateau", "callbacks=[default,early_stopping]"],
    "EMA 0.999": ["callbacks=[default,ema]"],
    "teacher forcing 1.0": ["teacher_forcing_ratio=1.0"],
    "luong attention": ["model=luong"],
    "luong + input feeding": ["model=luong", "model.input_feeding=true"],
}


def slug(name: str) -> str:
    return "lever-" + "".join(c if c.isalnum() else "_" for c in name).strip("_")


def table(names: list[str], base: list[str]) -> str:
    """A markdown table of the levers' results that exist on disk."""
    rows = [
        "| lever | overrides | test BLEU greedy | beam 5 | best val BLEU | epochs | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        path = RESULTS / f"time_to_bleu-{slug(name)}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        test = r["test_bleu"]
        over = " ".join(o for o in r["overrides"] if o not in base) or "(none)"
        rows.append(
            f"| {name} | `{over}` | {test['greedy']:.2f} | {test.get('beam 5', float('nan')):.2f} "
            f"| {r['best_val_bleu']:.2f} | {r['epochs']} | {r['train_tokens_per_s']:,.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--only", nargs="*", choices=sorted(LEVERS), default=None)
    parser.add_argument("--base", nargs="*", default=[], help="overrides every lever starts from")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    names = args.only or list(LEVERS)
    if not args.table_only:
        for name in names:
            cmd = [sys.executable, "bench/time_to_bleu.py", f"--minutes={args.minutes}",
                   f"--name={slug(name)}", *args.base, *LEVERS[name]]  # fmt: skip
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(table(names, args.base))


if __name__ == "__main__":
    main()
