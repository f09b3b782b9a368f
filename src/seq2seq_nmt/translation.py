"""Load a checkpoint safely; translate raw sentences from text, files or standard input; score them."""

import logging
import pickle
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from omegaconf import OmegaConf

from .data.batch import collate
from .data.normalize import get_normalizer
from .data.vocab import EOS, PAD, SOS, UNK, Vocab
from .ensemble import Ensemble
from .metrics import corpus_bleu, corpus_chrf
from .model import Seq2Seq
from .search import Hypothesis, beam_search, greedy_hypotheses, output_limits

log = logging.getLogger(__name__)
CHECKPOINT_KEY = "nmt"  # where a checkpoint keeps what translation needs
# translate.yaml keys passed on to Translator.search
SEARCH_KEYS = (
    "beam_size", "nbest", "length_penalty", "batch_size", "max_output_ratio", "max_output_offset",
)  # fmt: skip


# the parts of checkpoints' nmt entries that must agree to ensemble or to average them
ENSEMBLE_PARTS = ("src_vocab", "tgt_vocab", "normalization")
AVERAGE_PARTS = ("model", *ENSEMBLE_PARTS)
_PART_NAMES = {
    "model": "model configuration", "src_vocab": "source vocabulary",
    "tgt_vocab": "target vocabulary", "normalization": "normalisation",
}  # fmt: skip


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable, unsafe or not ours (one-line message)."""


def _first_line(e: BaseException, limit: int = 120) -> str:
    """``Type: first line`` of an exception, cut to ``limit`` characters."""
    line = (str(e).strip().splitlines() or [""])[0]
    text = f"{type(e).__name__}: {line}" if line else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load(weights_only=True)`` with one-line errors; checks it is a seq2seq-nmt checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, not a plain-type checkpoint ({_first_line(e)})"
        ) from e
    except Exception as e:  # truncated zip, foreign bytes, ...
        raise CheckpointError(f"{path}: unreadable checkpoint ({_first_line(e)})") from e
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a seq2seq-nmt checkpoint (no '{CHECKPOINT_KEY}' entry)")
    return ckpt


def _part(meta: dict, name: str):
    return meta.get("data", {}).get(name) if name == "normalization" else meta.get(name)


def check_compatible(
    paths: Sequence[str | Path], ckpts: Sequence[dict], parts: Sequence[str]
) -> None:
    """CheckpointError naming the first of ``parts`` (of the nmt entries) that differs from the
    first checkpoint's: see ``ENSEMBLE_PARTS`` and ``AVERAGE_PARTS``."""
    first = ckpts[0][CHECKPOINT_KEY]
    for path, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        for name in parts:
            if _part(ckpt[CHECKPOINT_KEY], name) != _part(first, name):
                raise CheckpointError(
                    f"{path}: its {_PART_NAMES[name]} differs from that of {paths[0]}"
                )


def load_network(path: str | Path, ckpt: dict) -> Seq2Seq:
    """The network of a loaded checkpoint (CheckpointError when its parts do not fit)."""
    prefix = "net."
    try:
        model = Seq2Seq(**ckpt[CHECKPOINT_KEY]["model"])
        model.load_state_dict(
            {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        )
    except (TypeError, KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({_first_line(e)})") from e
    return model


@dataclass
class Translation:
    """One input line: its normalised source words as the model saw them, its outputs best first."""

    source: list[str]
    hypotheses: list[Hypothesis]  # empty for an empty line


class Translator:
    """A trained model with its vocabularies and preprocessing: raw sentences in, translations out."""

    def __init__(
        self, model: Seq2Seq | Ensemble, src_vocab: Vocab, tgt_vocab: Vocab, data_config: dict
    ):
        self.model = model.eval()
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.data_config = dict(data_config)
        self.normalize = get_normalizer(data_config["normalization"])
        self.max_length = model.max_length

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Translator":
        return cls.from_checkpoints([path], device)

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | Path], device: str = "cpu") -> "Translator":
        """One checkpoint's model, or the ensemble of several with the same vocabularies and
        normalisation (CheckpointError, one line, otherwise)."""
        if not paths:
            raise CheckpointError("no checkpoint given")
        ckpts = [load_checkpoint(p) for p in paths]
        check_compatible(paths, ckpts, ENSEMBLE_PARTS)
        models = [load_network(p, c) for p, c in zip(paths, ckpts, strict=True)]
        meta = ckpts[0][CHECKPOINT_KEY]
        try:
            translator = cls(
                models[0] if len(models) == 1 else Ensemble(models),
                Vocab.from_dict(meta["src_vocab"]),
                Vocab.from_dict(meta["tgt_vocab"]),
                meta["data"],
            )
        except (TypeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{paths[0]}: inconsistent checkpoint ({_first_line(e)})") from e
        translator.model.to(device)
        return translator

    def encode(self, line: str, lineno: int = 0) -> list[str]:
        """Normalised source words; for the tutorial attention, cut to its ``max_length`` slots."""
        words = self.normalize(line).split()
        if self.max_length is not None and len(words) >= self.max_length:
            log.warning(
                "line %d: %d words, but the tutorial attention sees only the first %d; "
                "the rest is not translated",
                lineno, len(words), self.max_length - 1,
            )  # fmt: skip
            words = words[: self.max_length - 1]
        return words

    @torch.no_grad()
    def search(
        self,
        lines: Sequence[str],
        beam_size: int = 1,
        nbest: int = 1,
        length_penalty: float = 1.0,
        batch_size: int = 64,
        max_output_ratio: float = 1.5,
        max_output_offset: int = 5,
        first_lineno: int = 1,
    ) -> list[Translation]:
        """Decode ``lines`` in length-sorted batches (greedy when ``beam_size`` is 1), in order.

        Outputs are at most ``max_output_ratio * source tokens + max_output_offset`` tokens long.
        """
        out = [Translation(self.encode(s, i), []) for i, s in enumerate(lines, first_lineno)]
        todo = sorted((i for i, t in enumerate(out) if t.source), key=lambda i: len(out[i].source))
        device = next(self.model.parameters()).device
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            ids = [np.asarray(self.src_vocab.encode(" ".join(out[i].source))) for i in idx]
            batch = collate([(s, s, None) for s in ids])
            src, src_len = batch["src"].to(device), batch["src_len"].to(device)
            limits = output_limits(src_len, max_output_ratio, max_output_offset)
            if beam_size == 1:
                hyps = greedy_hypotheses(self.model, src, src_len, limits, length_penalty)
            else:
                hyps = beam_search(
                    self.model, src, src_len, limits, beam_size, length_penalty, nbest
                )
            for i, n, h in zip(idx, src_len.tolist(), hyps, strict=True):
                out[i].hypotheses = [
                    Hypothesis(x.tokens, x.score, x.norm_score, x.attn[:, :n].cpu()) for x in h
                ]
        return out

    def output(
        self, tr: Translation, rank: int = 0, replace_unk: bool = False, eos: bool = False
    ) -> tuple[list[str], torch.Tensor]:
        """Words of hypothesis ``rank`` (with ``<eos>`` if asked and reached) and their attention rows.

        ``replace_unk``: each ``<unk>`` becomes the source word it attends to most.
        """
        if not tr.hypotheses:
            return [], torch.empty(0, len(tr.source) + 1)
        hyp = tr.hypotheses[rank]
        rows = [
            j for j, t in enumerate(hyp.tokens) if t not in (PAD, SOS, EOS) or (eos and t == EOS)
        ]
        words = [self.tgt_vocab.index2word[hyp.tokens[j]] for j in rows]
        if replace_unk:
            src_pos = hyp.attn[rows, : len(tr.source)].argmax(-1).tolist()
            unk = self.tgt_vocab.index2word[UNK]
            words = [tr.source[p] if w == unk else w for w, p in zip(words, src_pos, strict=True)]
        return words, hyp.attn[rows]

    def translate(self, lines: Sequence[str], replace_unk: bool = False, **search) -> list[str]:
        """The best translation of each line (empty lines give empty strings)."""
        return [" ".join(self.output(t, 0, replace_unk)[0]) for t in self.search(lines, **search)]


def quote_text_arg(arg: str) -> str:
    """Quote a ``text=...`` override so that any sentence passes Hydra's override grammar.

    Quotes are dropped by normalisation anyway, so when a sentence holds both kinds, its double
    quotes become single ones.
    """
    key, sep, value = arg.partition("=")
    if key.lstrip("+") != "text" or not sep or value[:1] in ("'", '"'):
        return arg
    value = value.rstrip("\\")
    if '"' in value and "'" not in value:
        return f"{key}='{value}'"
    return f'{key}="' + value.replace('"', "'") + '"'


def split_lines(text: str) -> list[str]:
    """Lines as ``wc -l`` counts them ("\\n" only; a final newline ends the last line)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_file(path: str | Path, what: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return split_lines(path.read_bytes().decode("utf-8", errors="replace"))


def read_source(cfg, stdin: TextIO) -> list[str] | None:
    """All lines of ``text``, ``input`` or piped standard input; None when stdin is a terminal."""
    if cfg.get("text") is not None:
        return str(cfg.text).split("\n")
    if cfg.get("input"):
        return read_file(cfg.input, "input")
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


def check_options(cfg) -> dict:
    """The search options of ``cfg``, validated (ValueError with a one-line message)."""
    opts = {k: cfg[k] for k in SEARCH_KEYS}
    if not (isinstance(opts["beam_size"], int) and opts["beam_size"] >= 1):
        raise ValueError(f"beam_size must be an integer >= 1, got {opts['beam_size']!r}")
    if not (isinstance(opts["nbest"], int) and 1 <= opts["nbest"] <= opts["beam_size"]):
        raise ValueError(
            f"nbest must be an integer in [1, beam_size={opts['beam_size']}], got {opts['nbest']!r}"
        )
    if not (isinstance(opts["batch_size"], int) and opts["batch_size"] >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {opts['batch_size']!r}")
    if opts["length_penalty"] < 0 or opts["max_output_ratio"] < 0 or opts["max_output_offset"] < 1:
        raise ValueError("length_penalty and max_output_ratio must be >= 0, max_output_offset >= 1")
    device = str(cfg.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device}, but no CUDA GPU is available")
    return opts


def format_lines(
    translator: Translator, results: list[Translation], first: int, nbest: int, replace_unk: bool
) -> list[str]:
    """One line per input, or with ``nbest`` > 1 ``LINENO<TAB>SCORE<TAB>TRANSLATION`` lines."""
    if nbest == 1:
        return [" ".join(translator.output(r, 0, replace_unk)[0]) for r in results]
    lines = []
    for n, r in enumerate(results, first):
        for rank in range(nbest):
            score = r.hypotheses[rank].norm_score if r.hypotheses else 0.0
            text = " ".join(translator.output(r, rank, replace_unk)[0])
            lines.append(f"{n}\t{score:.4f}\t{text}")
    return lines


def plot(
    translator: Translator, results: list[Translation], first: int, out_dir: Path, replace_unk: bool
) -> None:
    """One heatmap per non-empty line: ``out_dir/LINENO.png`` (line numbers from 1, 5 digits)."""
    from .plot import save_attention

    for n, r in enumerate(results, first):
        if r.hypotheses:
            words, attn = translator.output(r, 0, replace_unk, eos=True)
            save_attention([*r.source, "<eos>"], words, attn.numpy(), out_dir / f"{n:05d}.png")


def report_scores(hyps: list[str], refs: list[str], normalization: str) -> None:
    """BLEU and chrF with their sacrebleu signatures, on standard error."""
    bleu, bleu_sig = corpus_bleu(hyps, refs)
    chrf, chrf_sig = corpus_chrf(hyps, refs)
    print(
        f"BLEU = {bleu:.2f} | chrF = {chrf:.2f} | {len(hyps)} lines | references normalised "
        f"with the checkpoint's '{normalization}' normaliser, as the training targets were\n"
        f"BLEU signature: {bleu_sig}\nchrF signature: {chrf_sig}",
        file=sys.stderr,
    )


def prepare(cfg, stdin: TextIO) -> tuple[Translator, dict, Iterable[list[str]], list[str] | None]:
    """Checked options, the translator, the input in batches and the normalised references."""
    opts = check_options(cfg)
    ckpts = list(cfg.ckpt) if OmegaConf.is_list(cfg.ckpt) else [cfg.ckpt]
    translator = Translator.from_checkpoints(ckpts, str(cfg.device))
    lines = read_source(cfg, stdin)
    refs = None
    if cfg.get("reference"):
        if lines is None:
            raise ValueError("reference= needs text=, input= or piped standard input")
        refs = [translator.normalize(r) for r in read_file(cfg.reference, "reference")]
        if len(refs) != len(lines):
            raise ValueError(f"{len(lines)} input lines but {len(refs)} reference lines")
    if cfg.get("plot_attention"):
        Path(cfg.plot_attention).mkdir(parents=True, exist_ok=True)
    return translator, opts, prompt(stdin) if lines is None else [lines], refs


def run(cfg, stdin: TextIO | None = None) -> None:
    """translate.py's body: translations on stdout (or ``output``), scores and errors on stderr.

    Bad input (checkpoint, files, options) gives a one-line error and exit status 2.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    with ExitStack() as stack:
        try:
            translator, opts, batches, refs = prepare(cfg, stdin or sys.stdin)
            out = (
                stack.enter_context(open(cfg.output, "w", encoding="utf-8"))
                if cfg.get("output")
                else sys.stdout
            )
        except (CheckpointError, OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        best = write_translations(translator, batches, out, opts, cfg)
    if refs is not None:
        report_scores(best, refs, translator.data_config["normalization"])


def write_translations(
    translator: Translator, batches: Iterable[list[str]], out: TextIO, opts: dict, cfg
) -> list[str]:
    """Translate, write and plot each batch of lines as it comes; return the best translations."""
    best, first = [], 1
    try:
        for lines in batches:
            results = translator.search(lines, first_lineno=first, **opts)
            text = format_lines(translator, results, first, opts["nbest"], cfg.replace_unk)
            out.write("".join(line + "\n" for line in text))
            out.flush()
            if cfg.get("plot_attention"):
                plot(translator, results, first, Path(cfg.plot_attention), cfg.replace_unk)
            best += [" ".join(translator.output(r, 0, cfg.replace_unk)[0]) for r in results]
            first += len(lines)
    except KeyboardInterrupt:
        print(file=sys.stderr)
    return best
