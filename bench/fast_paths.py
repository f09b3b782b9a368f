"""The model's fast training paths against its general ones, on the same batches and weights.

    python bench/fast_paths.py [--steps 60] [--rounds 8] [OVERRIDE ...]

Row (b) of ``train_bench.py`` (the bare loop) in interleaved rounds, two ways: ``fast`` as the
model trains (the attend-first GRU decoder's fused loop ``Decoder.run_attend_first``, the
one-layer GRU encoder over the padded batch) and ``general`` (``Decoder.step`` once per token,
the encoder over a packed sequence), which give the same values and gradients (tested in
``tests/test_model.py``). Prints each round's tokens/s and the median ratio. OVERRIDEs as for
``train_bench.py`` (e.g. ``model.bidirectional=true model.bridge=true batch_size=128``).
"""

import copy
import statistics

from benchlib import build_bench, describe_machine, rounds_parser
from train_bench import bare_rate

from seq2seq_nmt.model.seq2seq import Seq2Seq


def use_general_paths(net: Seq2Seq, general: bool) -> None:
    """Route training through ``Decoder.step`` and the packed encoder (or back)."""
    for module, name in ((net.decoder, "fused_gru"), (net.encoder, "forward_padded")):
        module.__dict__.pop(name, None)
    if general:
        net.decoder.fused_gru = lambda: False
        net.encoder.forward_padded = net.encoder.forward_packed


def main() -> None:
    args = rounds_parser(__doc__, 60, 8, "timed batches per row and round").parse_args()
    cfg, datamodule, module = build_bench("fast-paths-", *args.overrides)
    init = copy.deepcopy(module.net.state_dict())
    rates: dict[str, list[float]] = {"general": [], "fast": []}
    for round_ in range(args.rounds):
        order = list(rates) if round_ % 2 == 0 else list(rates)[::-1]
        for name in order:
            module.net.load_state_dict(init)
            use_general_paths(module.net, name == "general")
            loader = datamodule.train_dataloader()
            rates[name].append(bare_rate(cfg, module, loader, args.steps, args.warmup).tokens_per_s)
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()))
    use_general_paths(module.net, False)
    ratios = [f / g for f, g in zip(rates["fast"], rates["general"], strict=True)]
    print(f"\n{describe_machine(cfg)}\noverrides: {' '.join(args.overrides) or '(none)'}")
    for name, values in rates.items():
        print(f"{name}: median {statistics.median(values):,.0f} target tokens/s")
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"fast / general: median {statistics.median(ratios):.3f}x (rounds: {rounds})")


if __name__ == "__main__":
    main()
