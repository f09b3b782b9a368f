"""Training and translation throughput side by side, on the same data, model and batches.

    python bench/train_bench.py [--steps 300] [--rounds 5] [--variants "A" "B" ...] [OVERRIDE ...]

Rows: (a) training through Lightning as ``train.py`` runs it (the project's module, datamodule,
trainer, precision plugin, logger and callbacks; no validation or checkpoints), (b) the same
model and batches in a bare PyTorch loop, (c) the tutorial's per-pair loop (batch of one, a
Python loop per source and target token, teacher forcing drawn per pair, NLL summed over the
steps, Adagrad) as the baseline, (d) greedy and beam-5 translation of the test split;
throughput counted after warm-up, with peak memory. The training rows run in ``--rounds``
interleaved rounds (each variant's (a) and (b) one after the other), from the same initial
weights; the table shows each row's median round and the ratios are the medians of the
per-round ratios, printed with every round's value, so drift between rounds shows.
Data: the tutorial corpus filtered by the article's prefix list, ``max_length=12``, fr->en; model:
embedding 256, GRU 256, one layer, teacher forcing 0.5. OVERRIDEs are Hydra overrides of
``conf/train.yaml`` on top of that (e.g. ``model=luong batch_size=128``); ``--variants`` compares
override sets in one run (e.g. ``"trainer.precision=32-true" "trainer.precision=bf16-mixed"``).
"""

import argparse
import copy
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytorch_lightning as pl
import torch
from benchlib import (
    BENCH_DATA,
    PeakMemory,
    compose,
    describe_machine,
    device_of,
    padding_shares,
    sync,
)
from torch import nn

from seq2seq_nmt.data.vocab import EOS, PAD, SOS
from seq2seq_nmt.decoding.options import DecodingOptions
from seq2seq_nmt.decoding.strategies import decode
from seq2seq_nmt.metrics import corpus_bleu
from seq2seq_nmt.model.decoder import Memory
from seq2seq_nmt.train import precision
from seq2seq_nmt.train.callbacks import ModelCheckpoint
from seq2seq_nmt.train.precision import effective_precision
from seq2seq_nmt.train.run import build, instantiate_all, make_trainer
from seq2seq_nmt.translate.translator import Translator


class Rate:
    """Pairs and target tokens counted over a timed stretch."""

    def __init__(self, pairs: int = 0, tokens: int = 0, seconds: float = 0.0, peak_mib=None):
        self.pairs, self.tokens, self.seconds, self.peak_mib = pairs, tokens, seconds, peak_mib

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds


def batch_counts(batch: dict) -> tuple[int, int]:
    return batch["src"].size(0), int((batch["tgt_out"] != PAD).sum())


class Meter(pl.Callback):
    """Times Lightning's training from the end of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int, device: torch.device):
        self.warmup, self.device, self.rate, self.start = warmup, device, Rate(), 0.0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        sync(self.device)
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()
        elif trainer.global_step > self.warmup:
            pairs, tokens = batch_counts(batch)
            self.rate.pairs += pairs
            self.rate.tokens += tokens
            self.rate.seconds = time.perf_counter() - self.start


def run_callbacks(cfg) -> list[pl.Callback]:
    """The configured callbacks a run trains with, but for checkpoints (the bench saves none)."""
    return [c for c in instantiate_all(cfg.get("callbacks")) if not isinstance(c, ModelCheckpoint)]


def lightning_rate(cfg, module, datamodule, steps: int, warmup: int, out_dir: Path) -> Rate:
    """(a) ``trainer.fit`` as ``train.py`` runs it (the configured trainer, precision, logger and
    callbacks, progress bar included), without validation or checkpoints."""
    meter = Meter(warmup, device_of(cfg))
    trainer = make_trainer(
        cfg, default_root_dir=str(out_dir), max_steps=warmup + steps, max_epochs=-1,
        max_time=None, limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[*run_callbacks(cfg), meter],
        logger=instantiate_all(cfg.get("logger")),
    )  # fmt: skip
    with PeakMemory(meter.device) as peak:
        trainer.fit(module, datamodule=datamodule)
    meter.rate.peak_mib = peak.mib
    return meter.rate


def resolved_precision(cfg) -> str:
    """``trainer.precision`` as the trainer resolves it for this machine."""
    return effective_precision(cfg.trainer.precision, cfg.trainer.accelerator)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast type of a resolved precision (None: no autocast)."""
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)


def endless(loader) -> Iterator[dict]:
    """The loader's batches, epoch after epoch (its sampler reshuffles each time)."""
    while True:
        yield from loader


def bare_rate(cfg, module, loader, steps: int, warmup: int) -> Rate:
    """(b) The same network, loss, optimizer, clipping and precision in a plain loop."""
    device, net = device_of(cfg), module.net
    precision = resolved_precision(cfg)
    net.to(device, torch.bfloat16 if precision == "bf16-true" else None).train()
    optimizer, criterion = module.optimizer_factory(net.parameters()), module.criterion
    clip, dtype = cfg.trainer.get("gradient_clip_val"), autocast_dtype(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    rate, batches = Rate(), endless(loader)
    with PeakMemory(device) as peak:
        for step in range(warmup + steps):
            batch = next(batches)
            src, src_len, tgt_in, tgt_out = (
                batch[k].to(device) for k in ("src", "src_len", "tgt_in", "tgt_out")
            )
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits, _ = net(src, src_len, tgt_in, module.teacher_forcing_ratio)
                loss = criterion(logits.flatten(0, 1), tgt_out.flatten())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(net.parameters(), clip)
            scaler.step(optimizer)
            scaler.update()
            sync(device)
            if step == warmup - 1:
                start = time.perf_counter()
            elif step >= warmup:
                pairs, tokens = batch_counts(batch)
                rate.pairs, rate.tokens = rate.pairs + pairs, rate.tokens + tokens
    rate.seconds, rate.peak_mib = time.perf_counter() - start, peak.mib
    return rate


def per_pair_rate(cfg, net, dataset, n: int, warmup: int, tf: float, lr: float) -> Rate:
    """(c) The tutorial's loop: one pair per step, the encoder and the decoder each a Python loop
    over tokens, teacher forcing drawn once per pair, free running stopping at EOS, NLL summed
    over the steps, Adagrad."""
    if net.encoder.bidirectional:
        raise SystemExit("the per-pair reference runs a unidirectional encoder token by token")
    device, rng = device_of(cfg), random.Random(0)
    net.to(device).train()
    optimizer, nll = torch.optim.Adagrad(net.parameters(), lr=lr), nn.NLLLoss()
    rate = Rate()
    order = rng.sample(range(len(dataset)), warmup + n)
    with PeakMemory(device) as peak:
        for i, idx in enumerate(order):
            src, tgt, _ = dataset[idx]
            src, tgt = torch.as_tensor(src, device=device), torch.as_tensor(tgt, device=device)
            optimizer.zero_grad()
            hidden, outs = None, []
            for tok in src:
                emb = net.encoder.dropout(net.encoder.embedding(tok.view(1, 1)))
                out, hidden = net.encoder.rnn(emb, hidden)
                outs.append(out)
            keys = torch.cat(outs, dim=1)
            mask = torch.ones(1, keys.size(1), dtype=torch.bool, device=device)
            memory = Memory(keys, net.decoder.attention.precompute(keys), mask)
            y, loss, forced = torch.tensor([SOS], device=device), 0.0, rng.random() < tf
            for target in tgt:
                logits, hidden, _ = net.step(y, hidden, memory)
                loss = loss + nll(logits.log_softmax(-1), target.view(1))
                y = target.view(1) if forced else logits.argmax(-1).detach()
                if not forced and y.item() == EOS:
                    break
            loss.backward()
            optimizer.step()
            loss.item()
            if i == warmup - 1:
                start = time.perf_counter()
            elif i >= warmup:
                rate.pairs, rate.tokens = rate.pairs + 1, rate.tokens + len(tgt)
    rate.seconds, rate.peak_mib = time.perf_counter() - start, peak.mib
    return rate


def translate_rate(cfg, net, loader, tokenizer, beam: int) -> tuple[Rate, float]:
    """(d) Decode the whole test split in its length-bucketed batches (under autocast for a
    ``*-mixed`` precision): sentences/s, output tokens/s (``pairs``/``tokens``), peak memory and
    BLEU."""
    device, hyps, refs, rate = device_of(cfg), [], [], Rate()
    options = DecodingOptions(beam_size=beam)  # greedy for beam 1
    dtype = autocast_dtype(resolved_precision(cfg))
    net.to(device).eval()
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    with PeakMemory(device) as peak, autocast:
        start = time.perf_counter()
        for batch in loader:
            src, src_len = batch["src"].to(device), batch["src_len"].to(device)
            outs = [h[0].tokens for h in decode(net, src, src_len, options)]
            hyps += [tokenizer.decode(o) for o in outs]
            refs += batch["refs"]
            rate.pairs += len(outs)
            rate.tokens += sum(len(tokenizer.pieces(o)) + 1 for o in outs)
        sync(device)
        rate.seconds = time.perf_counter() - start
    rate.peak_mib = peak.mib
    return rate, corpus_bleu(hyps, refs, cfg.metrics.tokenize)[0]


def median_rate(rates: list[Rate]) -> Rate:
    """The round with the median tokens/s (the lower middle one for an even count)."""
    return sorted(rates, key=lambda r: r.tokens_per_s)[(len(rates) - 1) // 2]


def training_rows(cfgs, args, module, datamodule, out_dir: Path) -> tuple[dict[str, Rate], list]:
    """Rows (a)-(c), each from the same initial weights and batches, in interleaved rounds, for
    each variant of ``cfgs`` (rows ``lightning@VARIANT``, ``bare@VARIANT``): each row's median
    round, and every round's rows (for per-round ratios). Variants share the data and the
    network; ``model.compile`` is applied to it per variant."""
    init = copy.deepcopy(module.net.state_dict())
    rounds: list[dict[str, Rate]] = []

    def keep(key: str, rate: Rate) -> None:
        rounds[-1][key] = rate
        print(f"round {len(rounds)}: {key} {rate.tokens_per_s:,.0f} tokens/s", flush=True)

    def reset(cfg=None) -> None:
        module.net.float().load_state_dict(init)
        module.net.compiled = bool(cfg is not None and cfg.model.get("compile"))

    for _ in range(args.rounds):
        rounds.append({})
        for variant, cfg in cfgs.items():
            if "lightning" not in args.skip:
                reset(cfg)
                rate = lightning_rate(cfg, module, datamodule, args.steps, args.warmup, out_dir)
                keep(f"lightning@{variant}", rate)
            if "bare" not in args.skip:
                reset(cfg)
                loader = datamodule.train_dataloader()
                keep(f"bare@{variant}", bare_rate(cfg, module, loader, args.steps, args.warmup))
        if "ref" not in args.skip:
            reset()
            cfg = next(iter(cfgs.values()))
            keep("ref", per_pair_rate(
                cfg, copy.deepcopy(module.net), datamodule.datasets["train"], args.ref_pairs,
                args.warmup, cfg.teacher_forcing_ratio, args.ref_lr,
            ))  # fmt: skip
    reset()
    return {key: median_rate([r[key] for r in rounds]) for key in rounds[0]}, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed batches per batched row")
    parser.add_argument("--warmup", type=int, default=20, help="untimed batches (pairs) first")
    parser.add_argument("--ref-pairs", type=int, default=300, help="timed pairs of the reference")
    parser.add_argument("--ref-lr", type=float, default=0.01, help="the reference's Adagrad lr")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds of the training rows: medians"
    )
    parser.add_argument(
        "--variants", nargs="+", metavar="OVERRIDES",
        help="variants interleaved in each round, each a quoted list of overrides "
        "(e.g. trainer.precision=32-true trainer.precision=bf16-mixed model.compile=true)",
    )  # fmt: skip
    parser.add_argument("--ckpt", help="a trained checkpoint for the translation rows")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["lightning", "bare", "ref", "translate"]
    )
    parser.add_argument(
        "--as-asked", action="store_true",
        help="run a bf16 precision even where the probe would fall back to 32-true "
        "(to measure what the fallback avoids)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    args = parser.parse_args()

    if args.as_asked:
        precision.native_bf16_cpu = lambda: True
    out_dir = Path(tempfile.mkdtemp(prefix="train-bench-"))
    cfg = compose(out_dir, *BENCH_DATA, *args.overrides)
    variants = args.variants or [f"trainer.precision={cfg.trainer.precision}"]
    cfgs = {v: compose(out_dir, *BENCH_DATA, *args.overrides, *v.split()) for v in variants}
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    rows, rounds = training_rows(cfgs, args, module, datamodule, out_dir)
    bleu = {}
    if "translate" not in args.skip:
        if args.ckpt:
            translator = Translator.from_checkpoint(args.ckpt)
            net, vocab = translator.model, translator.tgt_tokenizer
            if translator.src_tokenizer.to_dict() != datamodule.src_tokenizer.to_dict():
                raise SystemExit(
                    f"error: {args.ckpt} was trained on other data (its tokenizer differs); "
                    "give a checkpoint of these settings, e.g. from bench/time_to_bleu.py"
                )
        else:
            net, vocab = module.net, datamodule.tgt_tokenizer
        for beam in sorted({1, args.beam}):
            key = "greedy" if beam == 1 else f"beam{beam}"
            rows[key], bleu[key] = translate_rate(
                cfg, net, datamodule.test_dataloader(), vocab, beam
            )
    report(cfg, args, rows, rounds, bleu, datamodule)


def round_ratios(rounds: list[dict[str, Rate]]) -> dict[str, list[float]]:
    """Each round's ratios: per variant, Lightning's tax against the bare loop (the bare loop's
    tokens/s over Lightning's, minus one, in %); each variant's Lightning tokens/s over the
    first variant's; the batched rows against (c)."""
    per_round: dict[str, list[float]] = {}
    for r in rounds:
        lightning = [k for k in r if k.startswith("lightning@")]
        ratios = {}
        for key in lightning:
            variant = key.split("@", 1)[1]
            if f"bare@{variant}" in r:
                bare = r[f"bare@{variant}"].tokens_per_s
                ratios[f"lightning_tax_pct@{variant}"] = 100 * (bare / r[key].tokens_per_s - 1)
            first = lightning[0].split("@", 1)[1]
            ratios[f"lightning_speedup@{variant} vs {first}"] = (
                r[key].tokens_per_s / r[lightning[0]].tokens_per_s
            )
        if "ref" in r:
            for key in r:
                if key != "ref":
                    ratios[f"{key}_vs_ref"] = r[key].tokens_per_s / r["ref"].tokens_per_s
        for key, value in ratios.items():
            per_round.setdefault(key, []).append(value)
    return per_round


def report(cfg, args, rows: dict[str, Rate], rounds, bleu: dict[str, float], datamodule) -> None:
    """Print the table (markdown) and the ratios; optionally write them as JSON."""
    names = {
        "lightning": "(a) training, Lightning", "bare": "(b) training, bare PyTorch loop",
        "ref": "(c) training, per-pair tutorial loop", "greedy": "(d) translation, greedy",
        f"beam{args.beam}": f"(d) translation, beam {args.beam}",
    }  # fmt: skip
    print(f"\nmachine: {describe_machine(cfg)}")
    model = cfg.model
    print(
        f"data: tutorial corpus, article prefixes, max_length {cfg.dataset.max_length}, "
        f"{cfg.dataset.src_lang}-{cfg.dataset.tgt_lang}, {len(datamodule.datasets['train'])} training pairs | model: "
        f"{model.attention} attention, emb {model.emb_size}, {model.cell} {model.hidden_size} x "
        f"{model.num_layers} | batch {cfg.batch_size}, teacher forcing {cfg.teacher_forcing_ratio},"
        f" {cfg.optimizer._target_.split('.')[-1]}"
    )
    src_pad, tgt_pad = padding_shares(datamodule.train_dataloader())
    print(f"padding of an epoch's training batches: source {src_pad:.1%}, target {tgt_pad:.1%}")
    print("\n| row | pairs (sentences)/s | target (output) tokens/s | peak memory MiB | BLEU |")
    print("|---|---:|---:|---:|---:|")
    for key, r in rows.items():
        score = f"{bleu[key]:.2f}" if key in bleu else ""
        row, _, variant = key.partition("@")
        name = names[row] + (f", `{variant}`" if variant else "")
        print(
            f"| {name} | {r.pairs_per_s:,.0f} | {r.tokens_per_s:,.0f} | "
            f"{r.peak_mib:,.0f} | {score} |"
        )
    per_round = round_ratios(rounds)
    ratios = {key: statistics.median(values) for key, values in per_round.items()}
    print(f"\nmedians over {len(rounds)} interleaved rounds (rows: the median round)")
    for key, value in ratios.items():
        fmt = ".1f" if "pct" in key else ".2f"
        each = ", ".join(f"{v:{fmt}}" for v in per_round[key])
        print(f"{key}: {value:{fmt}}{'%' if 'pct' in key else 'x'} (rounds: {each})")
    if args.json:
        figures = {k: vars(r) | {"tokens_per_s": r.tokens_per_s} for k, r in rows.items()}
        every = [{k: r.tokens_per_s for k, r in rnd.items()} for rnd in rounds]
        payload = {"machine": describe_machine(cfg), "overrides": args.overrides, "rows": figures}
        payload |= {"rounds": every, "round_ratios": per_round}
        args.json.write_text(json.dumps(payload | {"bleu": bleu, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
