"""translate.py's command line: read the input (text, file, piped standard input or a prompt),
translate it with a ``Translator``, write one line per input (or n-best lines), plot attention,
score against references. Bad input is one line on stderr and exit status 2."""

import logging
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import fields
from pathlib import Path
from typing import TextIO

import torch
from omegaconf import OmegaConf

from seq2seq_nmt.checkpoint import CheckpointError
from seq2seq_nmt.data.io import CorpusError, atomic_text, text_lines
from seq2seq_nmt.decoding.options import DecodingOptions, check_batch_size
from seq2seq_nmt.metrics import BLEU_TOKENIZERS, corpus_bleu, corpus_chrf
from seq2seq_nmt.translate.translator import (
    NO_REPLACE_UNK,
    Translation,
    Translator,
    check_precision,
)

# translate.yaml keys that make its DecodingOptions
OPTION_KEYS = tuple(f.name for f in fields(DecodingOptions))


def take_text_arg(argv: list[str]) -> tuple[list[str], str | None]:
    """``argv`` without its ``text=...`` arguments, and the last one's value exactly as typed.

    The sentence never reaches Hydra, so its override grammar and interpolation (quotes,
    ``${...}``, brackets) cannot alter it."""
    rest, text = [], None
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "text":
            text = value
        else:
            rest.append(arg)
    return rest, text


def split_lines(text: str) -> list[str]:
    """Lines as ``wc -l`` counts them ("\\n" only; a final newline ends the last line)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_file(path: str | Path, what: str, encoding: str | None = None) -> list[str]:
    """The lines of a text file, read as corpus files are (``io.text_lines``: a byte-order mark
    dropped, a legacy encoding refused unless ``encoding`` names it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return list(text_lines(path, Counter(), encoding, option="encoding"))


def read_source(cfg, stdin: TextIO, text: str | None = None) -> list[str] | None:
    """All lines of ``text`` (else ``cfg.text``), ``input`` or piped standard input; None when
    stdin is a terminal."""
    text = cfg.get("text") if text is None else text
    if text is not None:
        return str(text).split("\n")
    if cfg.get("input"):
        return read_file(cfg.input, "input", cfg.get("encoding"))
    if stdin.isatty():
        return None
    raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
    return split_lines(raw.decode("utf-8", errors="replace"))


def prompt(stdin: TextIO) -> Iterator[list[str]]:
    """Lines typed at a terminal, one at a time, until Ctrl-D."""
    print("Type a sentence and press Enter; Ctrl-D ends.", file=sys.stderr)
    while True:
        print("> ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        if not line:
            print(file=sys.stderr)
            return
        yield [line.rstrip("\r\n")]


def check_options(cfg) -> DecodingOptions:
    """The decoding options of ``cfg``, validated with the rest of its settings (ValueError with
    a one-line message)."""
    options = DecodingOptions.from_mapping({k: cfg[k] for k in OPTION_KEYS})
    check_batch_size(cfg.batch_size)
    if cfg.metrics.tokenize not in BLEU_TOKENIZERS:
        raise ValueError(
            f"metrics.tokenize={cfg.metrics.tokenize!r}: one of {', '.join(BLEU_TOKENIZERS)}"
        )
    device = str(cfg.device)
    check_precision(cfg.precision, device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device}, but no CUDA GPU is available")
    return options


def format_lines(
    translator: Translator, results: list[Translation], first: int, nbest: int, replace_unk: bool
) -> list[str]:
    """One line per input, or with ``nbest`` > 1 ``LINENO<TAB>SCORE<TAB>TRANSLATION`` lines."""
    if nbest == 1:
        return [translator.text(r, 0, replace_unk) for r in results]
    lines = []
    for n, r in enumerate(results, first):
        for rank in range(nbest):
            score = r.hypotheses[rank].norm_score if r.hypotheses else 0.0
            text = translator.text(r, rank, replace_unk)
            lines.append(f"{n}\t{score:.4f}\t{text}")
    return lines


def plot(
    translator: Translator, results: list[Translation], first: int, out_dir: Path, replace_unk: bool
) -> None:
    """One heatmap per non-empty line: ``out_dir/LINENO.png`` (line numbers from 1, 5 digits)."""
    from seq2seq_nmt.translate.plot import save_attention

    for n, r in enumerate(results, first):
        if r.hypotheses:
            words, attn = translator.output(r, 0, replace_unk, eos=True)
            save_attention([*r.source, "<eos>"], words, attn.numpy(), out_dir / f"{n:05d}.png")


def report_scores(hyps: list[str], refs: list[str], translator: Translator, tokenize: str) -> None:
    """BLEU and chrF with their sacrebleu signatures, on standard error."""
    bleu, bleu_sig = corpus_bleu(hyps, refs, tokenize)
    chrf, chrf_sig = corpus_chrf(hyps, refs)
    if translator.subwords:
        refs_are = "references as given (raw), against detokenised output"
    else:
        normalization = translator.data_config["normalization"]
        refs_are = (
            f"references normalised with the checkpoint's '{normalization}' normaliser, "
            "as the training targets were"
        )
    print(
        f"BLEU = {bleu:.2f} | chrF = {chrf:.2f} | {len(hyps)} lines | {refs_are}\n"
        f"BLEU signature: {bleu_sig}\nchrF signature: {chrf_sig}",
        file=sys.stderr,
    )


def translator_and_inputs(
    cfg, stdin: TextIO, text: str | None = None
) -> tuple[Translator, DecodingOptions, Iterable[list[str]], list[str] | None]:
    """The translator, checked options, the input in batches and the normalised references."""
    opts = check_options(cfg)
    ckpts = list(cfg.ckpt) if OmegaConf.is_list(cfg.ckpt) else [cfg.ckpt]
    translator = Translator.from_checkpoints(ckpts, str(cfg.device), cfg.precision)
    if cfg.replace_unk and translator.subwords:
        raise ValueError(NO_REPLACE_UNK)
    lines = read_source(cfg, stdin, text)
    refs = None
    if cfg.get("reference"):
        if lines is None:
            raise ValueError("reference= needs text=, input= or piped standard input")
        refs = read_file(cfg.reference, "reference", cfg.get("encoding"))
        if not translator.subwords:
            refs = [translator.normalize(r) for r in refs]
        if len(refs) != len(lines):
            raise ValueError(f"{len(lines)} input lines but {len(refs)} reference lines")
    if cfg.get("plot_attention"):
        Path(cfg.plot_attention).mkdir(parents=True, exist_ok=True)
    return translator, opts, prompt(stdin) if lines is None else [lines], refs


def run(cfg, stdin: TextIO | None = None, text: str | None = None) -> None:
    """translate.py's body: translations on stdout (or ``output``), scores, warnings and errors
    on stderr. ``text``: the raw ``text=`` argument (``take_text_arg``), used instead of ``cfg.text``.

    Bad input (checkpoint, files, options) or an output that cannot be written gives a one-line
    error and exit status 2.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        with ExitStack() as stack:
            try:
                translator, opts, batches, refs = translator_and_inputs(
                    cfg, stdin or sys.stdin, text
                )
                out = (
                    stack.enter_context(atomic_text(cfg.output))
                    if cfg.get("output")
                    else sys.stdout
                )
            except (CheckpointError, CorpusError, OSError, ValueError) as e:
                print(f"error: {e}", file=sys.stderr)
                raise SystemExit(2) from None
            best = write_translations(translator, batches, out, opts, cfg)
    except OSError as e:  # a full disk: output= is written whole or not at all (io.atomic_text)
        print(f"error: cannot write {cfg.get('output') or 'the translations'}: {e.strerror or e}",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2) from None
    if refs is not None:
        report_scores(best, refs, translator, cfg.metrics.tokenize)


def write_translations(
    translator: Translator,
    batches: Iterable[list[str]],
    out: TextIO,
    opts: DecodingOptions,
    cfg,
) -> list[str]:
    """Translate, write and plot each batch of lines as it comes; return the best translations."""
    best, first = [], 1
    try:
        for lines in batches:
            results = translator.search(lines, opts, cfg.batch_size, first_lineno=first)
            text = format_lines(translator, results, first, opts.nbest, cfg.replace_unk)
            out.write("".join(line + "\n" for line in text))
            out.flush()
            if cfg.get("plot_attention"):
                plot(translator, results, first, Path(cfg.plot_attention), cfg.replace_unk)
            best += [translator.text(r, 0, cfg.replace_unk) for r in results]
            first += len(lines)
    except KeyboardInterrupt:
        print(file=sys.stderr)
    return best
