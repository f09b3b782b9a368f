"""Translation speed on the benchmark data's test split (``benchlib.BENCH_DATA``): sentences/s
for greedy and beam search, batched vs one sentence at a time, and fp32 against bf16 and int8
(``Translator``'s ``precision``) for greedy, beam and sampling, with the BLEU of each.

    python bench/translate_bench.py --ckpt PATH          # a checkpoint trained on BENCH_DATA
    python bench/translate_bench.py --train-minutes 10   # or train one first (train.py, CPU)
    python bench/translate_bench.py --ckpt PATH --json bench/results/translate_bench-NAME.json

The precisions are timed in interleaved rounds (each round runs every precision once, in a
rotated order); a speed is the median of ``--rounds`` runs and a speed ratio to fp32 the median
of the rounds' ratios, in wall-clock and in CPU time (steadier where other processes share the
cores), so that the ratios hold on a machine whose speed drifts. A precision is marked ``keep``
when both median ratios reach 1.3 and its BLEU is within 0.3 of fp32's.

It also writes the split as ``OUT/test.fr`` and ``OUT/test.en`` (normalised, as in training), so
``python translate.py ckpt=PATH input=OUT/test.fr reference=OUT/test.en beam_size=5`` scores it.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from benchlib import BENCH_DATA, compose, describe_machine
from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq_nmt.data.preprocess import filter_pairs
from seq2seq_nmt.data.split import split_pairs
from seq2seq_nmt.decoding.options import DecodingOptions
from seq2seq_nmt.metrics import corpus_bleu
from seq2seq_nmt.translate.translator import PRECISIONS, Translator

ROOT = Path(__file__).resolve().parents[1]
KEEP_SPEEDUP, KEEP_BLEU_DROP = 1.3, 0.3  # a precision worth keeping: this much faster, no worse
Seconds = tuple[float, float]  # wall clock, CPU time
Runs = dict[tuple[str, str], list[Seconds]]  # one per round, by (precision, search)
Outputs = dict[tuple[str, str], tuple[list[str], int]]  # translations and their tokens


def test_split(cfg: DictConfig) -> list[tuple[str, str]]:
    """The (source, reference) pairs of the benchmark data's test split, as training makes it."""
    dm = instantiate(cfg.dataset)
    s = dm.settings()
    pairs = filter_pairs(dm.corpus.pairs(Counter()), s.normalization, s.langs,
                         s.max_length, s.prefixes, Counter())  # fmt: skip
    test = split_pairs(pairs, s.val_size, s.test_size, s.seed)[2]
    dm.setup("test")
    if [t for _, t in test] != list(dm.datasets["test"].refs):
        raise SystemExit(
            "error: this test split differs from the datamodule's; update test_split()"
        )
    return test


def train(out: Path, minutes: int) -> Path:
    """Train on the benchmark data for ``minutes`` of wall time; the last checkpoint."""
    subprocess.run(
        [sys.executable, "train.py", *BENCH_DATA, "logger=csv",
         f"trainer.max_time=00:00:{minutes:02d}:00", "trainer.enable_progress_bar=false",
         "~callbacks.progress_bar", f"paths.output_dir={out}"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    return out / "checkpoints" / "last.ckpt"


def timed(
    translator: Translator, lines: list[str], repeats: int, options: DecodingOptions,
    batch_size: int,
) -> tuple[float, list[str]]:  # fmt: skip
    """Sentences/s of the fastest of ``repeats`` runs (a shared machine only ever slows a run)."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = [translator.text(r) for r in translator.search(lines, options, batch_size)]
        seconds.append(time.perf_counter() - start)
    return len(lines) / min(seconds), out


def decode(
    translator: Translator, lines: list[str], options: DecodingOptions, batch_size: int
) -> tuple[Seconds, list[str], int]:
    """Wall-clock and CPU seconds to translate ``lines``, the translations, and their tokens
    (EOS included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    results = translator.search(lines, options, batch_size)
    out = [translator.text(r) for r in results]
    seconds = time.perf_counter() - wall, time.process_time() - cpu
    return seconds, out, sum(len(r.hypotheses[0].tokens) for r in results if r.hypotheses)


def searches(beam: int, sampling: bool) -> dict[str, DecodingOptions]:
    """The searches timed, by name: greedy, beam ``beam`` and, with ``sampling``, seeded sampling
    (whose draws, unlike the searches' outputs, depend on how the sentences are batched)."""
    found = {"greedy": DecodingOptions(), f"beam {beam}": DecodingOptions(beam_size=beam)}
    return found | ({"sample": DecodingOptions(strategy="sample", seed=1)} if sampling else {})


def batched_vs_single(
    translator: Translator, lines: list[str], refs: list[str], args: argparse.Namespace
) -> list[dict]:
    """Per search: batched and one-at-a-time sentences/s (best of ``--repeats``) and BLEU."""
    rows = []
    for name, options in searches(args.beam, sampling=False).items():
        batched, out = timed(translator, lines, args.repeats, options, args.batch_size)
        single, out1 = timed(translator, lines, args.repeats, options, 1)
        bleu, _ = corpus_bleu(out, refs)
        rows.append({"search": name, "batched_sent_per_s": batched,
                     "single_sent_per_s": single, "bleu": bleu, "same_outputs": out == out1})  # fmt: skip
        print(f"{name:>8}: batched ({args.batch_size}) {batched:7.1f} sent/s | one at a time "
              f"{single:6.1f} sent/s | speed-up {batched / single:5.1f}x | BLEU {bleu:5.2f} | "
              f"same outputs: {'yes' if out == out1 else 'NO'}")  # fmt: skip
    return rows


def time_precisions(ckpt: Path, lines: list[str], args: argparse.Namespace) -> tuple[Runs, Outputs]:
    """Each precision's seconds in ``--rounds`` interleaved rounds (in a rotated order), per
    search, and its outputs."""
    translators = {p: Translator.from_checkpoint(ckpt, precision=p) for p in PRECISIONS}
    seconds: Runs = {}
    outputs: Outputs = {}
    for name, options in searches(args.beam, sampling=True).items():
        for t in translators.values():  # warm-up
            t.search(lines[: args.batch_size], options, args.batch_size)
        for r in range(args.rounds):
            for p in PRECISIONS[r % len(PRECISIONS) :] + PRECISIONS[: r % len(PRECISIONS)]:
                s, out, tokens = decode(translators[p], lines, options, args.batch_size)
                seconds.setdefault((p, name), []).append(s)
                outputs[p, name] = out, tokens
    return seconds, outputs


def ratios(base: list[Seconds], runs: list[Seconds], i: int) -> dict:
    """Median, min and max over the rounds of fp32's seconds / these seconds (0: wall, 1: CPU)."""
    r = [f[i] / s[i] for f, s in zip(base, runs, strict=True)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r)}


def precision_rows(seconds: Runs, outputs: Outputs, refs: list[str]) -> list[dict]:
    """Per search and precision: median sentences/s and output tokens/s (wall clock), the
    per-round speed ratios to fp32 (wall clock and CPU time), BLEU and its difference to fp32's,
    and the verdict: ``keep`` when both median ratios reach 1.3 and BLEU drops 0.3 at most."""
    rows, order = [], list(dict.fromkeys(name for _, name in seconds))  # as timed
    for p, name in sorted(seconds, key=lambda k: (order.index(k[1]), PRECISIONS.index(k[0]))):
        (out, tokens), runs = outputs[p, name], seconds[p, name]
        base_out, base = outputs["fp32", name][0], seconds["fp32", name]
        wall, cpu = ratios(base, runs, 0), ratios(base, runs, 1)
        med = statistics.median(w for w, _ in runs)
        bleu = corpus_bleu(out, refs)[0]
        delta = bleu - corpus_bleu(base_out, refs)[0]
        fast = min(wall["median"], cpu["median"]) >= KEEP_SPEEDUP
        rows.append({
            "search": name, "precision": p, "sent_per_s": len(refs) / med,
            "tokens_per_s": tokens / med, "speedup_wall": wall, "speedup_cpu": cpu,
            "bleu": bleu, "bleu_delta": delta,
            "same_as_fp32": sum(a == b for a, b in zip(out, base_out, strict=True)) / len(out),
            "keep": p != "fp32" and fast and delta >= -KEEP_BLEU_DROP,
            "seconds_wall_cpu": runs,
        })  # fmt: skip
    return rows


def print_precisions(rows: list[dict]) -> None:
    """The precision table as Markdown."""
    print("| search | precision | sent/s | output tokens/s | × fp32, wall (range) "
          "| × fp32, CPU time (range) | BLEU | Δ BLEU | same output as fp32 | keep |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---|")  # fmt: skip
    for r in rows:
        w, c = r["speedup_wall"], r["speedup_cpu"]
        print(f"| {r['search']} | {r['precision']} | {r['sent_per_s']:,.1f} "
              f"| {r['tokens_per_s']:,.0f} | {w['median']:.2f}× ({w['min']:.2f}–{w['max']:.2f}) "
              f"| {c['median']:.2f}× ({c['min']:.2f}–{c['max']:.2f}) | {r['bleu']:.2f} "
              f"| {r['bleu_delta']:+.2f} | {r['same_as_fp32']:.1%} "
              f"| {'yes' if r['keep'] else '—' if r['precision'] == 'fp32' else 'no'} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, help="checkpoint trained on BENCH_DATA")
    parser.add_argument(
        "--train-minutes", type=int, default=10, help="without --ckpt: train this long"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench-translate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--repeats", type=int, default=3, help="time each row this often, keep the best"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved precision rounds (median)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = compose(args.out, *BENCH_DATA)
    pairs = test_split(cfg)
    lines, refs = [s for s, _ in pairs], [t for _, t in pairs]
    for name, text in (("test.fr", lines), ("test.en", refs)):
        (args.out / name).write_text("".join(t + "\n" for t in text), encoding="utf-8")
    ckpt = args.ckpt or train(args.out / "train", args.train_minutes)
    translator = Translator.from_checkpoint(ckpt)
    translator.search(lines[:50], DecodingOptions(beam_size=args.beam))  # warm-up
    machine = describe_machine(cfg)
    print(f"{len(lines)} test sentences of the benchmark data, checkpoint {ckpt}; split written "
          f"to {args.out}/test.{{fr,en}}\n{machine}")  # fmt: skip
    single = batched_vs_single(translator, lines, refs, args)
    print(f"\nbatched ({args.batch_size}), median of {args.rounds} interleaved rounds:")
    rows = precision_rows(*time_precisions(ckpt, lines, args), refs)
    print_precisions(rows)
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine, "checkpoint": str(ckpt), "sentences": len(lines),
            "threads": args.threads, "batch_size": args.batch_size, "rounds": args.rounds,
            "batched_vs_single": single, "precisions": rows,
        }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
