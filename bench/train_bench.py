"""Training and translation throughput side by side, on the same data, model and batches.

    python bench/train_bench.py [--steps 150] [--ref-pairs 300] [--ckpt BEST.ckpt] [OVERRIDE ...]

Rows: (a) training through Lightning (a real ``pl.Trainer`` with the project's module and
datamodule), (b) the same model and batches in a bare PyTorch loop, (c) the tutorial's per-pair
loop (batch of one, a Python loop per source and target token, teacher forcing drawn per pair,
NLL summed over the steps, Adagrad) as the baseline, (d) greedy and beam-5 translation of the test
split; throughput counted after warm-up, with peak memory, and the ratios between them.
Data: the tutorial corpus filtered by the article's prefix list, ``max_length=12``, fr->en; model:
embedding 256, GRU 256, one layer, teacher forcing 0.5. OVERRIDEs are Hydra overrides of
``conf/train.yaml`` on top of that (e.g. ``model=luong batch_size=128 trainer.precision=bf16-mixed``).
"""

import argparse
import copy
import json
import random
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from benchlib import BENCH_DATA, PeakMemory, compose, describe_machine, device_of, sync
from hydra.utils import instantiate
from torch import nn

from seq2seq_nmt.data.vocab import EOS, PAD, SOS
from seq2seq_nmt.metrics import corpus_bleu
from seq2seq_nmt.model.decoder import Memory
from seq2seq_nmt.search import beam_search, greedy, output_limits
from seq2seq_nmt.training import build, instantiate_all
from seq2seq_nmt.translator import Translator


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


def lightning_rate(cfg, module, datamodule, steps: int, warmup: int, out_dir: Path) -> Rate:
    """(a) ``trainer.fit`` with the configured trainer and logger, no validation or checkpoints."""
    meter = Meter(warmup, device_of(cfg))
    trainer = instantiate(
        cfg.trainer, default_root_dir=str(out_dir), max_steps=warmup + steps, max_epochs=-1,
        max_time=None, limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[meter],
        logger=instantiate_all(cfg.get("logger")),
    )  # fmt: skip
    with PeakMemory(meter.device) as peak:
        trainer.fit(module, datamodule=datamodule)
    meter.rate.peak_mib = peak.mib
    return meter.rate


def autocast_dtype(cfg) -> torch.dtype | None:
    """The autocast type of ``trainer.precision`` (None: full precision)."""
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(cfg.trainer.precision))


def bare_rate(cfg, module, loader, steps: int, warmup: int) -> Rate:
    """(b) The same network, loss, optimizer, clipping and precision in a plain loop."""
    device, net = device_of(cfg), module.net
    optimizer, criterion = module.optimizer_factory(net.parameters()), module.criterion
    clip, dtype = cfg.trainer.get("gradient_clip_val"), autocast_dtype(cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    net.to(device).train()
    rate, batches = Rate(), iter(loader)
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
    device, hyps, refs, rate, dtype = device_of(cfg), [], [], Rate(), autocast_dtype(cfg)
    net.to(device).eval()
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    with PeakMemory(device) as peak, autocast:
        start = time.perf_counter()
        for batch in loader:
            src, src_len = batch["src"].to(device), batch["src_len"].to(device)
            limits = output_limits(src_len)
            if beam > 1:
                outs = [h[0].tokens for h in beam_search(net, src, src_len, limits, beam)]
            else:
                outs = greedy(net, src, src_len, limits)[0].tolist()
            hyps += [tokenizer.decode(o) for o in outs]
            refs += batch["refs"]
            rate.pairs += len(outs)
            rate.tokens += sum(len(tokenizer.pieces(o)) + 1 for o in outs)
        sync(device)
        rate.seconds = time.perf_counter() - start
    rate.peak_mib = peak.mib
    return rate, corpus_bleu(hyps, refs, cfg.metrics.tokenize)[0]


def training_rows(cfg, args, module, datamodule, out_dir: Path) -> dict[str, Rate]:
    """Rows (a)-(c), each from the same initial weights and batches; the best of the rounds."""
    init = copy.deepcopy(module.net.state_dict())
    rows: dict[str, Rate] = {}

    def keep(key: str, rate: Rate) -> None:
        if key not in rows or rate.tokens_per_s > rows[key].tokens_per_s:
            rows[key] = rate

    for _ in range(args.rounds):
        if "lightning" not in args.skip:
            module.net.load_state_dict(init)
            rate = lightning_rate(cfg, module, datamodule, args.steps, args.warmup, out_dir)
            keep("lightning", rate)
        if "bare" not in args.skip:
            module.net.load_state_dict(init)
            loader = datamodule.train_dataloader()
            keep("bare", bare_rate(cfg, module, loader, args.steps, args.warmup))
        if "ref" not in args.skip:
            net = copy.deepcopy(module.net)
            net.load_state_dict(init)
            keep("ref", per_pair_rate(
                cfg, net, datamodule.datasets["train"], args.ref_pairs, args.warmup,
                cfg.teacher_forcing_ratio, args.ref_lr,
            ))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="timed batches per batched row")
    parser.add_argument("--warmup", type=int, default=20, help="untimed batches (pairs) first")
    parser.add_argument("--ref-pairs", type=int, default=300, help="timed pairs of the reference")
    parser.add_argument("--ref-lr", type=float, default=0.01, help="the reference's Adagrad lr")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the training rows, keep the best"
    )
    parser.add_argument("--ckpt", help="a trained checkpoint for the translation rows")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["lightning", "bare", "ref", "translate"]
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    args = parser.parse_args()

    out_dir = Path(tempfile.mkdtemp(prefix="train-bench-"))
    cfg = compose(out_dir, *BENCH_DATA, *args.overrides)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    rows = training_rows(cfg, args, module, datamodule, out_dir)
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
    report(cfg, args, rows, bleu, datamodule)


def report(cfg, args, rows: dict[str, Rate], bleu: dict[str, float], datamodule) -> None:
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
        f" {cfg.optimizer._target_.split('.')[-1]}, precision {cfg.trainer.precision}"
    )
    print("\n| row | pairs (sentences)/s | target (output) tokens/s | peak memory MiB | BLEU |")
    print("|---|---:|---:|---:|---:|")
    for key, r in rows.items():
        score = f"{bleu[key]:.2f}" if key in bleu else ""
        print(
            f"| {names[key]} | {r.pairs_per_s:,.0f} | {r.tokens_per_s:,.0f} | "
            f"{r.peak_mib:,.0f} | {score} |"
        )
    ratios = {}
    if "lightning" in rows and "bare" in rows:
        ratios["lightning_overhead_pct"] = 100 * (
            rows["bare"].tokens_per_s / rows["lightning"].tokens_per_s - 1
        )
    for key in ("lightning", "bare"):
        if key in rows and "ref" in rows:
            ratios[f"{key}_vs_ref"] = rows[key].tokens_per_s / rows["ref"].tokens_per_s
    print()
    for key, value in ratios.items():
        unit = "%" if key.endswith("pct") else "x"
        print(f"{key}: {value:.1f}{unit}")
    if args.json:
        figures = {k: vars(r) | {"tokens_per_s": r.tokens_per_s} for k, r in rows.items()}
        payload = {"machine": describe_machine(cfg), "overrides": args.overrides, "rows": figures}
        args.json.write_text(json.dumps(payload | {"bleu": bleu, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
