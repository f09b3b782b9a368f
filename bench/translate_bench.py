"""Translation speed on the benchmark data's test split (``benchlib.BENCH_DATA``): sentences/s
for greedy and beam search, batched vs one sentence at a time, with the BLEU of each.

    python bench/translate_bench.py --ckpt PATH          # a checkpoint trained on BENCH_DATA
    python bench/translate_bench.py --train-minutes 10   # or train one first (train.py, CPU)

It also writes the split as ``OUT/test.fr`` and ``OUT/test.en`` (normalised, as in training), so
``python translate.py ckpt=PATH input=OUT/test.fr reference=OUT/test.en beam_size=5`` scores it.
"""

import argparse
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from benchlib import BENCH_DATA, compose
from hydra.utils import instantiate

from seq2seq_nmt.data.preprocess import filter_pairs
from seq2seq_nmt.data.split import split_pairs
from seq2seq_nmt.metrics import corpus_bleu
from seq2seq_nmt.translator import Translator

ROOT = Path(__file__).resolve().parents[1]


def test_split() -> list[tuple[str, str]]:
    """The (source, reference) pairs of the benchmark data's test split, as training makes it."""
    dm = instantiate(compose(ROOT / "outputs" / "bench-translate", *BENCH_DATA).dataset)
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
    translator: Translator, lines: list[str], repeats: int, **search
) -> tuple[float, list[str]]:
    """Sentences/s of the fastest of ``repeats`` runs (a shared machine only ever slows a run)."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = translator.translate(lines, **search)
        seconds.append(time.perf_counter() - start)
    return len(lines) / min(seconds), out


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = test_split()
    lines, refs = [s for s, _ in pairs], [t for _, t in pairs]
    for name, text in (("test.fr", lines), ("test.en", refs)):
        (args.out / name).write_text("".join(t + "\n" for t in text), encoding="utf-8")
    ckpt = args.ckpt or train(args.out / "train", args.train_minutes)
    translator = Translator.from_checkpoint(ckpt)
    translator.translate(lines[:50], beam_size=args.beam)  # warm-up
    print(f"{len(lines)} test sentences of the benchmark data, {args.threads} threads, "
          f"checkpoint {ckpt}; split written to {args.out}/test.{{fr,en}}")  # fmt: skip
    for beam in (1, args.beam):
        mode = "greedy" if beam == 1 else f"beam {beam}"
        batched, out = timed(
            translator, lines, args.repeats, beam_size=beam, batch_size=args.batch_size
        )
        single, out1 = timed(translator, lines, args.repeats, beam_size=beam, batch_size=1)
        bleu, _ = corpus_bleu(out, refs)
        print(f"{mode:>8}: batched ({args.batch_size}) {batched:7.1f} sent/s | one at a time "
              f"{single:6.1f} sent/s | speed-up {batched / single:5.1f}x | BLEU {bleu:5.2f} | "
              f"same outputs: {'yes' if out == out1 else 'NO'}")  # fmt: skip


if __name__ == "__main__":
    main()
