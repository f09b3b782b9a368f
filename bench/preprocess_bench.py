"""Preprocessing at Europarl scale: wall time and peak memory for a synthetic 2M-line corpus.

    python bench/preprocess_bench.py [--lines 2000000] [--max-length 50] [--prefixes none]
                                     [--tokenizer words|sentencepiece] [--vocab-size 8000]

Writes a synthetic corpus in the Europarl v7 format (``europarl-v7.fr-en.{en,fr}``, sentence-
aligned, Zipf-distributed words, accents, punctuation, numbers, some empty lines) into a temporary
folder, then preprocesses it in a fresh subprocess (read, clean, filter, split,
tokenizer training, token id arrays into the cache; ``words`` cleans the article's Europarl way,
``sentencepiece`` with ``unicode``) and prints that subprocess's wall time and peak RSS; a second
subprocess shows the cache being reused.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAMES = ("europarl-v7.fr-en.en", "europarl-v7.fr-en.fr")


def vocabulary(rng: np.random.Generator, size: int, letters: str) -> list[str]:
    """Pseudo-words of 1-12 letters; a few are numbers, punctuation or elided forms."""
    alphabet = np.array(list(letters))
    words = ["".join(rng.choice(alphabet, rng.integers(1, 13))) for _ in range(size)]
    words[1:40] = [",", ".", "(", ")", "-", ":", "?", "1999", "2000", "15", "l'", "d'", "qu'"] * 3
    return words


def write_corpus(folder: Path, lines: int, seed: int = 0) -> None:
    """Two aligned files of ``lines`` lines (lengths like Europarl's: mean ~27 words, long tail)."""
    rng = np.random.default_rng(seed)
    vocabs = (
        vocabulary(rng, 40_000, "abcdefghijklmnopqrstuvwxyz"),
        vocabulary(rng, 50_000, "abcdefghijklmnopqrstuvwxyzéèàçêô"),
    )
    zipf = 1.0 / np.arange(1, 50_001)
    en_len = np.clip(rng.lognormal(3.0, 0.7, lines), 1, 250).astype(int)
    lengths = en_len, np.clip(en_len * rng.normal(1.1, 0.1, lines), 1, 300).astype(int)
    for name, vocab, n in zip(NAMES, vocabs, lengths, strict=True):
        p = zipf[: len(vocab)] / zipf[: len(vocab)].sum()
        empty = rng.random(lines) < 0.003  # Europarl has empty lines on one side
        with (folder / name).open("w", encoding="utf-8") as f:
            for start in range(0, lines, 100_000):
                block = n[start : start + 100_000]
                ids = rng.choice(len(vocab), size=int(block.sum()), p=p)
                ends = np.cumsum(block)
                out = []
                for i, (a, b) in enumerate(zip(ends - block, ends, strict=True)):
                    out.append("" if empty[start + i] else " ".join(vocab[j] for j in ids[a:b]))
                f.write("\n".join(out) + "\n")


def child(folder: Path, cache: Path, args: argparse.Namespace) -> None:
    """Preprocess (or reuse) the corpus in ``folder``; print a JSON line of what came out."""
    from seq2seq_nmt.data.cache import Settings, prepare
    from seq2seq_nmt.data.corpus import EuroparlCorpus
    from seq2seq_nmt.data.preprocess import resolve_prefixes
    from seq2seq_nmt.data.tokenizer import SentencePiece, Words

    start, cpu = time.perf_counter(), time.process_time()
    corpus = EuroparlCorpus(paths={"en": folder / NAMES[0], "fr": folder / NAMES[1]})
    if args.tokenizer == "sentencepiece":
        tokenizer, normalization = SentencePiece(args.vocab_size), "unicode"
    else:
        tokenizer, normalization = Words(), "europarl"
    settings = Settings(
        normalization, ("fr", "en"), args.max_length, resolve_prefixes(args.prefixes),
        0.05, 0.05, 0, (2, 2), (None, None), tokenizer.settings(),
    )  # fmt: skip
    data = prepare(corpus, settings, cache, tokenizer=tokenizer)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    sizes = {name: len(src) for name, (src, _, _) in data.splits.items()}
    print(json.dumps({"seconds": seconds, "cpu": cpu, "sizes": sizes, "stats": dict(data.stats), "oov": data.oov,
                      "vocab": [len(data.src_tokenizer), len(data.tgt_tokenizer)]}))  # fmt: skip


def run_child(folder: Path, cache: Path, args: argparse.Namespace) -> tuple[dict, float]:
    """Run ``child`` in a fresh interpreter; its result and the peak RSS (MiB) of that process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cmd = [sys.executable, __file__, "--child", str(folder), str(cache),
           "--max-length", str(args.max_length), "--prefixes", args.prefixes,
           "--tokenizer", args.tokenizer, "--vocab-size", str(args.vocab_size)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux; max over children
    return json.loads(out.strip().splitlines()[-1]), max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--max-length", type=int, default=50)
    parser.add_argument("--prefixes", default="none")
    parser.add_argument("--tokenizer", choices=("words", "sentencepiece"), default="words")
    parser.add_argument("--vocab-size", type=int, default=8000, help="sentencepiece's")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args)
    with tempfile.TemporaryDirectory(prefix="preprocess-bench-") as tmp:
        folder, cache = Path(tmp) / "corpus", Path(tmp) / "cache"
        folder.mkdir()
        start = time.perf_counter()
        write_corpus(folder, args.lines)
        size = sum((folder / n).stat().st_size for n in NAMES) / 2**20
        print(f"synthetic corpus: {args.lines:,} lines, {size:.0f} MiB, written in "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        first, peak = run_child(folder, cache, args)
        print(f"preprocess (tokenizer={args.tokenizer}, max_length={args.max_length}, prefixes={args.prefixes}): "
              f"{first['seconds']:.1f} s wall, {first['cpu']:.1f} s CPU, peak RSS {peak:.0f} MiB")  # fmt: skip
        print(f"  kept {first['stats']['pairs_kept']:,} of {first['stats']['lines_read']:,} pairs; "
              f"splits {first['sizes']}; vocab src/tgt {first['vocab']}; stats {first['stats']}")  # fmt: skip
        second, _ = run_child(folder, cache, args)
        print(f"second run (cache reused): {second['seconds']:.2f} s wall")


if __name__ == "__main__":
    main()
